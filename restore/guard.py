"""A guard against out-of-distribution inputs and hallucinated outputs (denoising models).

A network trained on simulation restores what it was trained on, not necessarily what is in a
user's image, and nothing in its output says so. This module checks two things per image,
against the forward model the network was trained with (its run configuration):

**in distribution** — does the input look like the training inputs?

* its noise: the variance-versus-mean slope (:func:`simulate.fit_noise.noise_line`) must match the
  model's camera (gain × EM gain × excess noise) within ``NOISE_TOLERANCE``;
* its photon level: the peak above background, in the camera's photons, within a factor
  ``PHOTON_FACTOR`` of the range the simulated training inputs span;
* its structure: its features (signal spectrum, intensity quantiles, object morphology;
  :func:`simulate.fit_sample.features`) against those of simulated training inputs, as an rms z-score
  over the features (each scaled by its spread among 8 training inputs, with a floor), at most
  ``STRUCTURE_Z``.

**output consistent** — does the output explain the input? For denoising the input is the output
recorded by the camera, so the residual (input − output) divided by the noise the camera model
predicts at the output must be white unit-variance noise: its mean square near 1 overall, no
32×32 block far above it, and no correlation between neighbours beyond the camera's own
(``camera.correlation``).
Painting structure that is not there, or smoothing away structure that is, leaves structure in
the residual.

A probabilistic (Laplace) model's mean predicted scale is reported too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from simulate import Camera, SimConfig, simulate_pair
from simulate.fit_noise import noise_line
from simulate.fit_sample import features, intensity_stats, sim_variance

from .workflows import WORKFLOWS, workflow

NOISE_TOLERANCE = 0.35  # relative mismatch of the noise slope that still counts as the same camera
PHOTON_FACTOR = 3.0  # photon level may differ from training by this factor either way
STRUCTURE_Z = 1.2  # rms z-score of the structure features beyond which an input is foreign
WHITE_CORRELATION = 0.04  # largest neighbour correlation of the normalised residual (real camera
# noise: below 0.02; its estimate on 256² pixels: ±0.004)
BLOCK = 32  # px: blocks in which the residual's mean square is tested


def _slope(cam) -> float:
    """The camera's variance-versus-mean slope, ADU: gain × EM gain × excess noise factor."""
    return cam.gain * (cam.em_gain or 1.0) * cam.excess


def _electrons(image: np.ndarray, cam) -> np.ndarray:
    """Photons of an image in ADU under the camera settings ``cam`` (its own inverse)."""
    return Camera.from_config(cam).photons_from_expected(image).astype(np.float64)


_MORPH_FLOOR = np.full(15, 0.3)  # 5 statistics × 3 levels of simulate.fit_sample.morphology


def _level(e: np.ndarray) -> float:
    """Photons above background at an image's brightest structures."""
    st = intensity_stats(e)
    return st["peak"] - st["background"]


def _vector(e: np.ndarray, var) -> np.ndarray:
    """The structure features of an image (:func:`simulate.fit_sample.features`) as one vector: log
    signal spectrum (0 where noise hides it), intensity quantiles, object morphology."""
    spec, quantiles, morph = features(e, var, 0.5)
    return np.concatenate([np.nan_to_num(spec, nan=0.0), quantiles, morph])


def in_distribution(image: np.ndarray, cfg: SimConfig, n_sims: int = 8) -> tuple[bool, list[str], dict]:
    """(verdict, reasons, numbers) for one 2D input against the model's simulation ``cfg``."""
    reasons, stats = [], {}
    cam = cfg.camera
    line = noise_line(image)
    want = _slope(cam)
    stats["noise_slope"] = line.slope
    stats["model_noise_slope"] = want
    if abs(line.slope / want - 1) > NOISE_TOLERANCE:
        reasons.append(f"noise: the variance grows {line.slope:.3g} ADU per ADU of signal, the "
                       f"model's camera {want:.3g}: another camera, gain or processing")
    e = _electrons(image, cam)
    shape = tuple(min(n, 256) for n in image.shape)
    over = {"shape": list(shape)}
    if cfg.sample.images.folder and not Path(cfg.sample.images.folder).is_dir():
        over["sample.images.folder"] = None  # a moved run: its restored images stay behind
    sim_cfg = cfg.model_copy(update={"device": "cpu"}).with_overrides(over)
    var = sim_variance(cam)
    sims = [_electrons(simulate_pair(sim_cfg, 3_000_000, i).input, cam) for i in range(n_sims)]
    level = _level(e)
    trained = [_level(x) for x in sims]
    stats["photons"] = level
    stats["training_photons"] = [min(trained), max(trained)]
    if not min(trained) / PHOTON_FACTOR <= level <= max(trained) * PHOTON_FACTOR:
        reasons.append(f"photons: about {level:.3g} above background at the brightest structures, "
                       f"the training images {min(trained):.3g}–{max(trained):.3g}")
    train = np.stack([_vector(x, var) for x in sims])
    crop = e[: shape[0], : shape[1]]
    diff = _vector(crop, var) - train.mean(axis=0)
    sd = train.std(axis=0, ddof=1)
    used = (sd > 1e-9) | (np.abs(diff) > 1e-9)  # not rings that are empty in every image
    # a floor under the spread of few training images: 0.3 in log units (spectrum, morphology),
    # 0.05 for the quantiles (fractions of the peak), so one feature that happens to be constant
    # in training (no holes, say) cannot decide alone
    n_spec = len(train[0]) - 9 - len(_MORPH_FLOOR)
    floor = np.concatenate([np.full(n_spec, 0.3), np.full(9, 0.05), _MORPH_FLOOR])
    z = diff[used] / np.maximum(sd[used], floor[used])
    d = float(np.sqrt(np.mean(z**2))) if used.any() else 0.0
    stats["structure_z"] = d
    if d > STRUCTURE_Z:
        reasons.append(f"structure: its spectrum and objects lie {d:.1f} standard deviations from "
                       "the training images': the network may draw what it was trained on instead "
                       "of what is there")
    return not reasons, reasons, stats


def output_consistent(image: np.ndarray, restored: np.ndarray,
                      cfg: SimConfig) -> tuple[bool, list[str], dict]:
    """(verdict, reasons, numbers): is input − output the camera's noise at the output?"""
    c = cfg.camera
    signal = np.maximum(np.asarray(restored, np.float64) - c.offset, 0.0)
    var_adu = _slope(c) * signal + (c.gain * c.read_noise) ** 2 + 1 / 12  # + rounding to ADU
    z = (np.asarray(image, np.float64) - restored) / np.sqrt(var_adu)
    reasons, stats = [], {}
    ms = float(np.mean(z**2))
    stats["residual_mean_square"] = ms
    ny, nx = (n // BLOCK * BLOCK for n in z.shape)
    blocks = (z[:ny, :nx] ** 2).reshape(ny // BLOCK, BLOCK, nx // BLOCK, BLOCK).mean(axis=(1, 3))
    # the mean square of BLOCK² unit normals has sd √(2 / BLOCK²) (0.044): a block beyond 1.5 plus
    # 6 sd holds more than the camera's noise, even allowing its model a 20 % error
    limit = 1.5 + 6 * math.sqrt(2 / BLOCK**2)
    bad = float(np.mean(blocks > limit)) if blocks.size else 0.0
    stats["blocks_off"] = bad
    rho = [float(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]),
           float(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1])]
    stats["neighbour_correlation"] = rho
    # the camera's own noise correlates neighbours by its correlation (y, x): only the excess
    # over it is structure
    excess = [rho[0] - c.correlation[1], rho[1] - c.correlation[0]]
    if not 1 / 1.3 <= ms <= 1.3:
        reasons.append(f"residual: input − output has {ms:.2f}× the variance the camera explains")
    if bad > 0:
        reasons.append(f"residual: in {100 * bad:.0f}% of the {BLOCK}×{BLOCK} blocks input − output "
                       "is far more than the camera's noise (structure added or removed there)")
    if max(abs(r) for r in excess) > WHITE_CORRELATION:
        reasons.append(f"residual: neighbouring pixels of input − output correlate "
                       f"({max(excess, key=abs):+.2f} beyond the camera's noise): it holds "
                       "structure, not only noise")
    return not reasons, reasons, stats


def report(image: np.ndarray, restored: np.ndarray, cfg: SimConfig,
           scale: np.ndarray | None = None) -> dict[str, Any]:
    """The guard's verdict on one restored 2D image (see the module docstring): keys
    ``in_distribution``, ``output_consistent`` (bools, None where the task is not guarded),
    ``reasons`` (list of str) and ``stats``."""
    image = np.squeeze(np.asarray(image, np.float64))
    restored = np.squeeze(np.asarray(restored, np.float64))
    if not workflow(cfg.task).guarded or image.ndim != 2 or min(image.shape) < 64:
        guarded = " or ".join(w.name for w in WORKFLOWS.values() if w.guarded)
        return {"in_distribution": None, "output_consistent": None, "stats": {},
                "reasons": [f"the guard checks 2D images of at least 64×64 pixels restored by "
                            f"{guarded} models"]}
    ok_in, why_in, s_in = in_distribution(image, cfg)
    ok_out, why_out, s_out = output_consistent(image, restored, cfg)
    stats = {**s_in, **s_out}
    if scale is not None:
        stats["laplace_scale_mean"] = float(np.mean(scale))
    return {"in_distribution": ok_in, "output_consistent": ok_out, "reasons": why_in + why_out,
            "stats": stats}
