"""Photon level, background and sample type of one image: steps 3 and 4 of ``synthcare fit``.

Simulated images of the fitted camera and optics are compared with the image in electrons: a
high percentile of a smoothed copy (photons) and the large-scale background (level, spread,
length scale) are matched by rescaling (:func:`match_intensity`); each structure type of the
library at a few sizes and densities is scored by the distance between its signal power
spectrum, intensity distribution and object morphology and the image's (:func:`rank_samples`);
the chosen sample's simulations then refine the NA (:func:`refine_resolution`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .config import SimConfig
from .errors import SynthcareError
from .fit_optics import immersion_index, noise_floor, radial_power, visible
from .pairs import simulate_pair


def intensity_stats(e: np.ndarray) -> dict[str, float]:
    """Photometric summary of an image in electrons: ``peak`` (99.9th percentile of a lightly
    smoothed copy), ``background`` (mean of a large-scale 10th-percentile filter), ``spread``
    (its standard deviation) and ``median``."""
    smooth = ndimage.gaussian_filter(e, 1.5)
    low = background_map(smooth, coarse=True)
    return {"peak": float(np.percentile(smooth, 99.9)),
            "background": float(low.mean()), "spread": float(low.std()),
            "median": float(np.median(smooth))}


def background_map(smooth: np.ndarray, coarse: bool = False) -> np.ndarray:
    """The large-scale background of a smoothed image: a 10th-percentile filter over an eighth
    of the image, smoothed (on a 4× coarser grid; ``coarse`` returns that grid)."""
    size = max(8, min(smooth.shape) // 8)
    low = ndimage.percentile_filter(smooth[::4, ::4], 10, size=max(2, size // 4))
    low = ndimage.gaussian_filter(low, max(1, size // 8))
    if coarse:
        return low
    zoom = [n / m for n, m in zip(smooth.shape, low.shape, strict=True)]
    return ndimage.zoom(low, zoom, order=1, mode="nearest")[: smooth.shape[0], : smooth.shape[1]]


def relative(e: np.ndarray, st: dict[str, float]) -> np.ndarray:
    """The image smoothed by :data:`MORPHOLOGY_SIGMA`, its local background removed and scaled
    so the peak above background is 1: what objects are thresholded on."""
    smooth = ndimage.gaussian_filter(e, MORPHOLOGY_SIGMA)
    return (smooth - background_map(smooth)) / max(st["peak"] - st["background"], 1e-9)


MATCH_IMAGES = 8  # simulated images whose mean statistics are matched to the image's


def match_intensity(cfg: SimConfig, target: dict[str, float], rounds: int = 3) -> SimConfig:
    """Rescale ``camera.photons``, ``sample.background`` and ``sample.background_smooth`` until
    simulated images (in electrons) have the image's peak and background statistics on average
    over :data:`MATCH_IMAGES` images. (The statistics of one simulated image spread widely, its
    peak above background by ±15 % and its background by ±30 % on the bacteria fit of
    ``benchmarks/realdata.py``: matched on two images, two fits of the same frame differed by
    16 % in photons, and the network trained on the dimmer one lost 0.4–0.7 dB.)"""
    for _ in range(rounds):
        e = _sim_electrons(cfg, MATCH_IMAGES)
        got = [intensity_stats(x) for x in e]
        peak = np.mean([g["peak"] - g["background"] for g in got])
        bg = np.mean([g["background"] for g in got])
        sp = np.mean([g["spread"] for g in got])
        want_sig = max(target["peak"] - target["background"], 1e-3)
        photons = cfg.camera.photons * want_sig / max(peak, 1e-6)
        photons = float(np.clip(photons, 0.1, 1e6))
        ratio = photons / cfg.camera.photons
        # the background scales with photons: express the wanted level in the new units
        level = cfg.sample.background + (target["background"] - bg) / photons
        smooth = cfg.sample.background_smooth * (target["spread"] / max(sp, 1e-6) if sp > 0 else 1.0)
        if cfg.sample.background_smooth == 0 and target["spread"] > 0:
            smooth = target["spread"] / (0.53 * photons)
        smooth /= ratio if sp > 0 and cfg.sample.background_smooth > 0 else 1.0
        cfg = cfg.with_overrides({"camera.photons": round(photons, 3),
                                  "sample.background": round(max(level, 0.0), 5),
                                  "sample.background_smooth": round(max(smooth, 0.0), 5)})
    return cfg


def _sim_electrons(cfg: SimConfig, n: int, seed: int = 7) -> list[np.ndarray]:
    """``n`` simulated inputs of a config, in electrons."""
    from .camera import Camera

    cam = Camera.from_config(cfg.camera)
    return [cam.photons_from_expected(simulate_pair(cfg, seed, i).input).astype(np.float64)
            * cfg.camera.qe for i in range(n)]


# --- sample ----------------------------------------------------------------------------------
_OFF = {"microtubules": {"density": 0.0}, "granules": {"density": 0.0}}

# library candidates at their reference size (scaled by fit); sizes in µm, 2D densities per µm²
CANDIDATES: dict[str, dict[str, Any]] = {
    "microtubules": {"microtubules": {"density": 0.4, "persistence": 15.0}},
    "granules": {"granules": {"density": 0.05, "radius": 0.3, "radius_spread": 0.3}},
    "nuclei": {"nuclei": {"density": 0.006, "radius": 5.0}},
    "cells": {"cells": {"density": 0.002, "radius": 10.0}},
    "membranes": {"membranes": {"coverage": 0.8, "radius": 4.0}},
    "mitochondria": {"mitochondria": {"density": 0.15, "length": 2.0, "radius": 0.2}},
    "actin": {"actin": {"density": 0.6, "fibres": 0.3}},
}
_SIZE_KEYS = ("radius", "length", "persistence")
_DENSITY_KEYS = ("density", "fibres")


def candidate_sample(name: str, size: float = 1.0, density: float = 1.0) -> dict[str, Any]:
    """The ``sample`` settings of a library candidate with sizes × ``size`` and densities ×
    ``density`` (2D densities also × 1/size², so the covered fraction stays put; membranes keep
    their coverage)."""
    if name not in CANDIDATES:
        raise SynthcareError(f"unknown sample '{name}'; known: {', '.join(CANDIDATES)}")
    out = {k: dict(v) for k, v in _OFF.items()}
    for struct, params in CANDIDATES[name].items():
        p = dict(params)
        for k in _SIZE_KEYS:
            if k in p:
                p[k] = p[k] * size
        for k in _DENSITY_KEYS:
            if k in p:
                p[k] = p[k] * density / (size**2 if struct != "actin" else size)
        if "coverage" in p:
            p["coverage"] = min(1.0, p["coverage"] * density)
        out[struct] = {**out.get(struct, {}), **p}
    return out


def features(e: np.ndarray, variance, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the sample is compared by: the log signal spectrum over rings below the cutoff
    (normalised to mean zero; NaN where the signal does not stand out of noise of variance
    ``variance(m)``), the quantiles of the smoothed image between its background and peak, and
    its objects' :func:`morphology`."""
    k, p, n = radial_power(e)
    noise_var = noise_floor(e, variance)
    s = p - noise_var
    err = noise_var * np.sqrt(2.0 / np.maximum(n, 1))
    ok = visible(k, s, err, noise_var) & (k < cutoff) & (k > 0.03)  # not the background's
    spec = np.where(ok, np.log(np.where(ok, s, 1.0)), np.nan)
    spec -= np.nanmean(spec) if ok.any() else 0.0
    st = intensity_stats(e)
    smooth = ndimage.gaussian_filter(e, 1.5)
    q = np.percentile(smooth, [5, 10, 25, 50, 75, 90, 95, 99, 99.9])
    rel = relative(e, st)
    return spec, (q - st["background"]) / max(st["peak"] - st["background"], 1e-9), morphology(rel)


def covered(e: np.ndarray, level: float = 0.45) -> float:
    """Fraction of the field where the smoothed image rises above ``level`` between its
    background (0) and peak (1): how much of it the objects cover."""
    return float(np.mean(relative(e, intensity_stats(e)) > level))


MORPHOLOGY_SIGMA = 2.0  # px: smoothing before thresholding (noise must not make the objects)


def morphology(rel: np.ndarray, levels: tuple[float, ...] = (0.25, 0.45, 0.65)) -> np.ndarray:
    """Shape statistics of the objects of a smoothed image scaled to background 0 and peak 1,
    thresholded at ``levels``: per level the log of the covered fraction, of the objects and of
    the enclosed holes per 10⁴ pixels, the size-weighted median log object size (pixels) and
    the size-weighted mean log elongation (√ of the ratio of the objects' second moments). Filaments, rods,
    blobs and cell outlines differ in these even where their spectra agree."""
    out = []
    per = 1e4 / rel.size
    for t in levels:
        fg = rel > t
        lab, n = ndimage.label(fg)
        size = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        big = size >= 12
        if big.any():
            yy, xx = np.indices(rel.shape)
            lr = lab.ravel()
            m = [np.bincount(lr, w.ravel(), minlength=n + 1)[1:] / np.maximum(size, 1)
                 for w in (yy, xx, yy * yy, xx * xx, yy * xx)]
            vy, vx, cxy = m[2] - m[0] ** 2, m[3] - m[1] ** 2, m[4] - m[0] * m[1]
            half = np.sqrt(np.maximum((vy - vx) ** 2 / 4 + cxy**2, 0))
            l1, l2 = (vy + vx) / 2 + half, np.maximum((vy + vx) / 2 - half, 1e-3)
            elong = 0.5 * np.log(np.maximum(l1 / l2, 1.0))
            order = np.argsort(size[big])
            cum = np.cumsum(size[big][order])
            med_size = float(np.log(size[big][order][np.searchsorted(cum, cum[-1] / 2)]))
            mean_el = float(np.average(elong[big], weights=size[big]))
        else:
            med_size, mean_el = 0.0, 0.0
        bg, nb = ndimage.label(~fg)
        border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
        holes = nb - np.count_nonzero(border)
        out += [np.log(fg.mean() + 1e-3), np.log(big.sum() * per + 0.1), med_size, mean_el,
                np.log(max(holes, 0) * per + 0.1)]
    return np.array(out)


def _spectrum_distance(a: tuple, b: tuple) -> float:
    """rms difference of two log signal spectra over their common rings (shape only)."""
    both = np.isfinite(a[0]) & np.isfinite(b[0])
    if both.sum() < 3:
        return math.inf
    d = a[0][both] - b[0][both]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def _distance(a: tuple, b: tuple) -> float:
    """How far two images' :func:`features` lie apart: the spectrum's shape (plus a penalty for
    rings where only one shows signal), the intensity quantiles and the morphology."""
    spec = _spectrum_distance(a, b)
    if math.isinf(spec):
        spec = 3.0
    else:
        spec += 0.5 * (np.isfinite(a[0]) ^ np.isfinite(b[0])).sum() / max(np.isfinite(a[0]).sum(), 1)
    return (spec + 2.0 * float(np.sqrt(np.mean((a[1] - b[1]) ** 2)))
            + 1.5 * float(np.sqrt(np.mean((a[2] - b[2]) ** 2))))


def rank_samples(cfg: SimConfig, image_e: np.ndarray, variance_e, cutoff: float,
                 names: list[str] | None = None, progress=None) -> list[tuple[str, float, dict]]:
    """Library candidates (type × size, each at the density that covers as much of the field as
    the image's objects do; then the best at finer sizes) ranked by how closely their simulated
    images match the image's features: (label, distance, sample settings),
    best first. ``cfg`` carries the fitted camera and optics; ``variance_e(m)`` is the image's
    noise variance in electrons² at local mean ``m`` electrons."""
    target = features(image_e, variance_e, cutoff)
    rows = []

    def score(label: str, sample: dict, key: tuple) -> None:
        c = with_sample(cfg, sample)
        var = sim_variance(c.camera)
        d = float(np.mean([_distance(target, features(x, var, cutoff)) for x in _sim_electrons(c, 2)]))
        rows.append((label, d, sample, key))
        if progress is not None:
            progress(label, d)

    want = covered(image_e)

    def matched(name: str, size: float) -> float:
        """The density factor that gives the image's covered fraction (one correction)."""
        got = covered(_sim_electrons(with_sample(cfg, candidate_sample(name, size)), 1)[0])
        return float(np.clip(want / max(got, 1e-4), 0.1, 10.0))

    for name in names or list(CANDIDATES):
        for size in (0.25, 0.5, 1.0, 2.0, 4.0):
            dens = matched(name, size)
            score(f"{name} ×{size:g} size ×{dens:.2g} density", candidate_sample(name, size, dens),
                  (name, size, dens))
    rows.sort(key=lambda r: r[1])
    firsts = {}
    for r in rows:  # the best size of the two closest types, finer
        firsts.setdefault(r[3][0], r[3])
    for name, size, _ in list(firsts.values())[:2]:
        for f in (0.7, 1.4):
            dens = matched(name, size * f)
            score(f"{name} ×{size * f:.2g} size ×{dens:.2g} density",
                  candidate_sample(name, size * f, dens), (name, size * f, dens))
    rows.sort(key=lambda r: r[1])
    return [r[:3] for r in rows]


MIX_WITHIN = 0.1  # a second type this close (relative distance) joins the first in a mixture
# per-image ranges around the fitted sample's density, brightness and sizes (log-uniform)
FIT_RANGES = {"density_range": [0.5, 2.0], "brightness_range": [0.5, 2.0], "size_range": [0.5, 2.0]}

RESOLUTION_FACTORS = (0.45, 0.55, 0.67, 0.8, 1.0, 1.2, 1.45)


def refine_resolution(cfg: SimConfig, image_e: np.ndarray, variance_e,
                      cutoff: float) -> tuple[SimConfig, float]:
    """The NA (hence PSF width) whose simulated images of the chosen sample have the signal
    spectrum closest in shape to the image's. The spectrum fit alone (:func:`fit_cutoff`)
    cannot tell a sample's own fall-off from the optics'; a simulation of the chosen sample
    can (on simulated images of known NA this lands within 15 %, where the fit alone was off by
    up to 2.8×). Returns the config and the factor applied to the NA."""
    target = features(image_e, variance_e, max(cutoff, 0.5))
    best = (math.inf, cfg, 1.0)
    for f in RESOLUTION_FACTORS:
        na = min(cfg.optics.na * f, 1.47)
        c = cfg.with_overrides({"optics.na": round(na, 4),
                                "optics.ni": max(cfg.optics.ni, immersion_index(na))})
        var = sim_variance(c.camera)
        d = float(np.mean([_spectrum_distance(target, features(x, var, max(cutoff, 0.5)))
                           for x in _sim_electrons(c, 3)]))
        if d < best[0]:
            best = (d, c, na / cfg.optics.na)
    return best[1], round(best[2], 3)


def choose_sample(ranked: list[tuple[str, float, dict]]) -> dict[str, Any]:
    """The sample settings to train on: the best candidate, drawn per image over a range around
    its fitted density, brightness and size (a mixture, :data:`FIT_RANGES`): the fit's estimates
    are uncertain and a real sample varies, so the network should not learn one exact size.
    If the best candidate of another type scores within :data:`MIX_WITHIN` of it, both types
    are drawn (each shown in an image with probability 0.75), so that a close call does not
    decide alone what the network learns."""
    best_label, best_d, sample = ranked[0]
    first = best_label.split(" ")[0]
    structs = list(CANDIDATES[first])
    mixed = dict(sample)
    presence = 1.0
    other = next((r for r in ranked if r[0].split(" ")[0] != first), None)
    if other is not None and other[1] <= best_d * (1 + MIX_WITHIN):
        second = other[0].split(" ")[0]
        for struct in CANDIDATES[second]:
            mixed[struct] = other[2][struct]
        structs += list(CANDIDATES[second])
        presence = 0.75
    mixed["mixture"] = {"types": structs, "presence": presence, **FIT_RANGES}
    return mixed


def with_sample(cfg: SimConfig, sample: dict[str, Any]) -> SimConfig:
    """``cfg`` with the structure settings of ``sample`` (each replaces that structure's)."""
    return cfg.with_overrides({f"sample.{k}": v for k, v in sample.items()})


def sim_variance(cam):
    """Noise variance (electrons²) of a simulated camera at mean ``m`` electrons: Poisson (times
    the multiplier's excess noise 1 + em_spread) plus read noise."""
    read = cam.read_noise / (cam.em_gain or 1.0)
    return lambda m: cam.excess * np.maximum(m, 0.0) + read**2
