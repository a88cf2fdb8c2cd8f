"""Resolution from one image's power spectrum: step 2 of ``synthcare fit``.

The signal spectrum (power minus the white noise floor the camera fit predicts) is matched by a
power-law sample spectrum times the squared in-focus OTF of the PSF model scaled to a cutoff
(:func:`fit_cutoff`, cycles/pixel); with the pixel size this gives the NA, or with the NA the
pixel size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from . import psf as psf_models
from .config import otf_cutoffs
from .errors import SynthcareError

MAX_BETA = 3.0  # steepest power-law fall of a sample's own spectrum (sharp edges in 2D)


def immersion_index(na: float) -> float:
    """A plausible immersion index for an NA: air below 0.95, water below 1.25, else oil."""
    return 1.0 if na < 0.95 else 1.33 if na < 1.25 else 1.518


def _window(shape: tuple[int, ...]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def noise_floor(image: np.ndarray, variance) -> float:
    """The white-noise level of :func:`radial_power` for noise of variance ``variance(m)`` at
    local mean ``m`` (the window weights the noise of the image's centre most)."""
    w2 = _window(image.shape) ** 2
    var = variance(ndimage.uniform_filter(image, 7, mode="reflect"))
    return float(np.sum(w2 * var) / np.sum(w2))


def radial_power(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of an image (mean removed, Hann-windowed): ring centres
    (cycles/pixel), mean power per ring (per pixel, so white noise of variance σ² gives σ²) and
    pixels per ring."""
    a = image - image.mean()
    win = _window(a.shape)
    f = np.fft.rfft2(a * win)
    p = np.abs(f) ** 2 / np.sum(win**2)
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    kx = np.fft.rfftfreq(a.shape[1])[None, :]
    k = np.hypot(ky, kx)
    edges = np.linspace(0, 0.5, 65)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < 64)
    n = np.bincount(idx[ok], minlength=64)
    s = np.bincount(idx[ok], p.ravel()[ok], minlength=64)
    return 0.5 * (edges[1:] + edges[:-1]), s / np.maximum(n, 1), n


def _otf_profile(optics) -> tuple[np.ndarray, np.ndarray]:
    """In-focus 2D OTF of a PSF model against frequency in units of its lateral cutoff."""
    kxy = otf_cutoffs(optics)[1]
    d = 1 / (4 * kxy)  # Nyquist at twice the cutoff
    n = 256
    h = psf_models.from_config(optics, (1, n, n), (d, d, d), thin_sample=True)[0]
    otf = np.abs(np.fft.rfft2(np.fft.ifftshift(h)))
    otf /= otf[0, 0]
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :]) / d / kxy
    order = np.argsort(k.ravel())
    ks, vs = k.ravel()[order], otf.ravel()[order]
    grid = np.linspace(0, 1.2, 121)
    idx = np.clip(np.round(ks / 0.01).astype(int), 0, len(grid))
    n = np.bincount(idx, minlength=len(grid) + 1)[:len(grid)]
    prof = np.bincount(idx, vs, minlength=len(grid) + 1)[:len(grid)] / np.maximum(n, 1)
    prof = np.where(n > 0, prof, 0.0)
    return grid, prof


FLOOR_TOLERANCE = 0.15  # relative error of the predicted noise floor (calibration, non-whiteness)


def visible(k: np.ndarray, s: np.ndarray, err: np.ndarray, floor: float) -> np.ndarray:
    """Rings where the signal stands out of the noise: above 3 standard errors of the ring's
    mean power and above the floor's own uncertainty, contiguous from the lowest frequencies
    (a stray ring far out is noise or a calibration error, not signal)."""
    ok = (k > 0.01) & (s > np.maximum(3 * err, FLOOR_TOLERANCE * floor))
    first_gap = np.flatnonzero(~ok & (k > 0.01))
    if len(first_gap):
        ok &= k < k[first_gap[0]]
    return ok


def fit_cutoff(image: np.ndarray, variance, optics) -> tuple[float, float]:
    """The lateral OTF cutoff of the image, cycles/pixel, and the fit's residual (rms of log
    power): the signal spectrum (power minus the white noise floor of noise ``variance(m)``)
    fitted by A·k^−β·OTF(k/c)² over the rings where signal stands out of the noise. A sample's
    own spectrum falls no faster than k^−3 (sharp edges), so β ≤ :data:`MAX_BETA`: a steeper
    fall is the optics'."""
    k, p, n = radial_power(image)
    noise_var = noise_floor(image, variance)
    s = p - noise_var
    err = noise_var * np.sqrt(2.0 / np.maximum(n, 1)) + 1e-12  # spread of a ring's mean power
    use = visible(k, s, err, noise_var)
    if use.sum() < 5:
        raise SynthcareError("the image's spectrum shows too little signal above the noise to "
                             "estimate its resolution: give --pixel and --na")
    grid, prof = _otf_profile(optics)
    sinc2 = np.sinc(k / np.sqrt(2)) ** 4  # pixel integration, radially averaged (approximately)
    best = (math.inf, 0.5)
    for c in np.geomspace(0.05, 1.2, 120):
        model = np.interp(k / c, grid, prof, right=0.0) ** 2 * sinc2
        ok = use & (model > 1e-6)
        if ok.sum() < 5:
            continue
        y = np.log(s[ok]) - np.log(model[ok])
        x = np.log(k[ok])
        w = s[ok] / err[ok]
        slope = np.clip(np.polyfit(x, y, 1, w=np.sqrt(w))[0], -MAX_BETA, 0.0)
        icept = np.average(y - slope * x, weights=w)
        r = float(np.sqrt(np.average((y - slope * x - icept) ** 2, weights=w)))
        # signal beyond the cutoff is impossible: rings past it must be noise only
        beyond = use & (k > c)
        r += 10.0 * beyond.sum() / max(use.sum(), 1)
        if r < best[0]:
            best = (r, float(c))
    return best[1], best[0]
