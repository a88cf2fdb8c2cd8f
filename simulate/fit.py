"""Match the simulation to a user's image: ``synthcare fit``.

From one raw 2D image (and what the user knows: pixel size, NA, wavelength, PSF model, dark
frames or offset), :func:`fit_image` builds a complete configuration whose simulated images
look like it, one stage per module:

1. **Camera** (:mod:`simulate.fit_noise`): the photon-transfer line of :mod:`simulate.calibrate`
   from the image's high frequencies. When the image's skewness cannot place the offset (too
   flat, or offset-subtracted and clipped), the offset is taken between the bounds the data
   allow — the variance line's zero (no read noise) and the darkest regions' mean (no signal) —
   at a typical read noise (none for an amplifying detector), and the read noise follows from
   the darkest regions' variance; the report says which estimate was used. A conversion above
   ``AMPLIFIED_GAIN`` ADU/e⁻ means an amplifying detector, told apart by the noise's skewness:
   Poisson counts (a photon-counting detector, no multiplier), an EMCCD's register (F² = 2) or
   a PMT/HyD's narrower pulse heights (F² = 1 + em_spread).
2. **Resolution** (:mod:`simulate.fit_optics`): the image's power spectrum minus the white
   noise floor the camera fit predicts, matched by a power-law sample spectrum times the
   squared in-focus OTF of the PSF model scaled to a cutoff (cycles/pixel); with the pixel size
   this gives the NA (or with the NA, the pixel size).
3. **Photon level and background** (:mod:`simulate.fit_sample`): simulated images of the fitted
   config are compared with the image in electrons — a high percentile of a smoothed copy
   (photons) and the large-scale background (level, spread, length scale) — and the settings
   rescaled until they agree.
4. **Sample** (:mod:`simulate.fit_sample`): each structure type of the library at a few sizes
   and densities is simulated with the fitted camera and optics; candidates are scored by the
   distance between their signal power spectra, intensity distributions and object shapes and
   the image's; the best is used unless the user names one, and its simulations refine the NA.

Everything is deterministic (fixed seeds) and CPU-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import SimConfig, otf_cutoffs
from .config_io import load_preset
from .errors import SynthcareError
from .fit_noise import NOISE_BAND, check_raw, electrons, fit_camera
from .fit_optics import fit_cutoff, immersion_index
from .fit_sample import (
    candidate_sample,
    choose_sample,
    intensity_stats,
    match_intensity,
    rank_samples,
    refine_resolution,
    with_sample,
)
from .pairs import simulate_pair
from .tiff import save_figure

TRAIN_SHAPE = 256  # training images are at most this many pixels on a side


@dataclass
class Fit:
    """The outcome of :func:`fit_image`: the run settings (a dict a ``--config`` file holds)
    and what was found on the way (``report``: human-readable lines; ``ranking``: (candidate,
    score) best first)."""

    run: dict[str, Any]
    report: list[str] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)


# --- input -----------------------------------------------------------------------------------
def check_image(image: np.ndarray) -> np.ndarray:
    """A 2D float64 image fit can use; one clear error for anything else."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4:
        raise SynthcareError(f"the image looks like RGB(A) colour, shape {a.shape}: give one raw "
                             "fluorescence channel")
    a = np.squeeze(a)
    if a.ndim != 2:
        raise SynthcareError(f"fit for a 2D task needs one 2D image, got shape {np.shape(image)}: "
                             "give a single plane")
    if not np.issubdtype(a.dtype, np.number):
        raise SynthcareError(f"the image must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    check_raw(a, "fit")
    return a



# Training of a fitted config: denoise2d's, with the residual connection and 16 patches per
# simulated image. On simulated images of the confocal pair's fit (3 held-out 512² images, 5 CPU
# minutes each): 30.50 dB as denoise2d trains, 31.17 with the residual connection, 31.10 with 16
# patches per image (1383 steps instead of 834), against VST+BM3D's 31.42 (tuned on the truth).
FIT_TRAIN = {"residual": True, "patches_per_image": 16}


def fit_image(image: np.ndarray, *, pixel: float | None = None, na: float | None = None,
              ni: float | None = None, wavelength: float | None = None, psf: str | None = None,
              offset: float | None = None, dark: np.ndarray | None = None,
              sample: str | None = None, bits: int = 16, refine_psf: bool = True,
              progress=None) -> Fit:
    """A 2D denoising run configuration matched to one raw image (see the module docstring).

    Parameters
    ----------
    image : (y, x) raw camera image in ADU.
    pixel : pixel size in the sample, µm (from the file's metadata or the user); estimated from
        the resolution and ``na`` if None.
    na, ni, wavelength, psf : what is known of the optics (µm); NA is estimated from the
        resolution and ``pixel`` if None; ``psf`` defaults to widefield.
    offset, dark : a known camera offset (ADU) or dark frames.
    sample : a library candidate to use (see :data:`simulate.fit_sample.CANDIDATES`)
        instead of the best ranked.
    bits : the camera's bit depth (8 for 8-bit files).
    refine_psf : refine the NA by simulating the chosen sample (unless pixel and NA are given).
    progress : optional callable(label, score) told of every candidate scored.
    """
    pixel_given, na_given = pixel is not None, na is not None
    a = check_image(image)
    out = Fit(run={})
    cam, lines, line = fit_camera(a, offset=offset, dark=dark, bits=bits)
    conv = cam["gain"] * (cam.get("em_gain") or 1.0)  # ADU per electron of the simulated camera
    e = electrons(a, cam)

    def variance_e(m):
        return line.variance(np.asarray(m) * conv + cam["offset"]) / conv**2

    out.report += lines
    lam = wavelength or 0.52
    assumed = []
    if na is None and pixel is None:
        na = 0.8
        assumed.append(f"NA {na:g} (dry objective; no pixel size in the file or flags)")
    ref_na = na if na is not None else 0.8
    opt = {"psf": psf or "widefield", "wavelength": lam, "na": ref_na,
           "ni": ni or immersion_index(ref_na)}
    ref = SimConfig.model_validate({"optics": opt}).optics
    cutoff, resid = fit_cutoff(e, variance_e, ref)
    per_na = otf_cutoffs(ref)[1] / ref.na  # cutoff (cycles/µm) per unit NA: linear in NA
    if pixel is None:
        pixel = cutoff / (per_na * ref.na)
        assumed.append(f"pixel {pixel:.3g} µm from the resolution")
    elif na is None:
        want = cutoff / pixel / per_na
        na = float(np.clip(want, 0.05, 1.45))
        if not math.isclose(na, want):
            out.report.append(f"the resolution asks for NA {want:.3g}, outside what an objective "
                              f"has; using {na:.3g}")
        opt.update(na=round(na, 4), ni=ni or immersion_index(na))
        assumed.append(f"NA {na:.3g} from the resolution")
    out.report.append(f"resolution: OTF cutoff {cutoff:.3g} cycles/pixel (spectrum fit rms "
                      f"{resid:.2f}); " + "; ".join(assumed or ["pixel and NA as given"]))
    ny, nx = (min(TRAIN_SHAPE, n) // 8 * 8 for n in a.shape)
    st = intensity_stats(e)
    photons = max(st["peak"] - st["background"], 1.0)
    base = {"task": "denoise", "shape": [ny, nx], "optics": opt,
            "sampling": {"pixel": round(float(pixel), 5)},
            "camera": {**cam, "photons": round(photons, 3)},
            "sample": {**candidate_sample("microtubules"),
                       "background": round(max(st["background"], 0.0) / photons, 5)}}
    cfg = SimConfig.model_validate(base)
    if sample is None:
        ranked = rank_samples(cfg, e, variance_e, cutoff, progress=progress)
        out.ranking = [(label, d) for label, d, _ in ranked]
        cfg = with_sample(cfg, choose_sample(ranked))
        out.report.append("sample ranking (distance of spectrum and intensities, lower is closer): "
                          + ", ".join(f"{lab} {d:.3f}" for lab, d in out.ranking[:5]))
    else:
        cfg = with_sample(cfg, candidate_sample(sample))
        out.report.append(f"sample: {sample} (given)")
    if refine_psf and not (pixel_given and na_given):
        cfg, factor = refine_resolution(cfg, e, variance_e, cutoff)
        out.report.append(f"resolution refined by simulation: NA × {factor:g} → "
                          f"{cfg.optics.na:.3g} (ni {cfg.optics.ni:g})")
    cfg = match_intensity(cfg, st)
    out.report.append(f"photons {cfg.camera.photons:.4g} at the peak, background "
                      f"{cfg.sample.background:.3g} + smooth {cfg.sample.background_smooth:.3g} "
                      f"(fractions of the peak)")
    out.run = {**cfg.to_dict(), "train": {**load_preset("denoise2d")["train"], **FIT_TRAIN}}
    return out


def plot_fit(image: np.ndarray, run: dict[str, Any], path, *, seed: int = 0):
    """``fit.png``: the image beside an image simulated from the fitted configuration at the same
    size and display range, and their intensity and noise histograms overlaid (noise: the part
    of each image beyond :data:`simulate.fit_noise.NOISE_BAND`, as
    :func:`simulate.fit_noise.noise_line` measures it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = check_image(image)
    sim_cfg = SimConfig.model_validate({k: v for k, v in run.items() if k != "train"})
    sim_cfg = sim_cfg.with_overrides({"shape": [int(n) for n in a.shape]})
    sim = simulate_pair(sim_cfg, seed, 0).input.astype(np.float64)
    lo, hi = np.percentile(a, [0.5, 99.8])
    fig, ax = plt.subplots(2, 2, figsize=(11, 10), constrained_layout=True)
    for axis, img, title in ((ax[0, 0], a, "your image"), (ax[0, 1], sim, "simulated from the fit")):
        axis.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        axis.set_title(title)
        axis.axis("off")
    bins = np.linspace(np.percentile(a, 0.1), np.percentile(a, 99.9), 120)
    for img, label in ((a, "image"), (sim, "simulation")):
        ax[1, 0].hist(img.ravel(), bins=bins, histtype="step", density=True, label=label)
        keep = (np.abs(np.fft.fftfreq(img.shape[0]))[:, None] > NOISE_BAND) | (
            np.abs(np.fft.fftfreq(img.shape[1]))[None, :] > NOISE_BAND)
        r = np.real(np.fft.ifft2(np.fft.fft2(img) * keep))
        ax[1, 1].hist(r.ravel(), bins=120, range=tuple(np.percentile(r, [0.1, 99.9])),
                      histtype="step", density=True, label=label)
    ax[1, 0].set(xlabel="ADU", ylabel="density", title="intensities", yscale="log")
    ax[1, 1].set(xlabel="ADU", title=f"noise (frequencies above {NOISE_BAND} cycles/pixel)",
                 yscale="log")
    for axis in ax[1]:
        axis.legend()
    return save_figure(fig, path, dpi=90)
