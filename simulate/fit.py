"""Match the simulation to a user's image: ``synthcare fit``.

From one raw 2D image (and what the user knows: pixel size, NA, wavelength, PSF model, dark
frames or offset), build a complete configuration whose simulated images look like it:

1. **Camera** (:func:`fit_camera`): the photon-transfer line of :mod:`simulate.calibrate`. When
   the image's skewness cannot place the offset (too flat, or offset-subtracted and clipped),
   the offset is taken between the bounds the data allow — the variance line's zero (no read
   noise) and the darkest regions' mean (no signal) — at a typical read noise (none for an
   amplifying detector), and the read noise follows from the darkest regions' variance; the
   report says which estimate was used. A conversion above
   ``AMPLIFIED_GAIN`` ADU/e⁻ means an amplifying detector, told apart by the noise's skewness
   (:func:`multiplier_spread`): Poisson counts (a photon-counting detector, no multiplier), an
   EMCCD's register (F² = 2) or a PMT/HyD's narrower pulse heights (F² = 1 + em_spread).
2. **Resolution** (:func:`fit_cutoff`): the image's power spectrum minus the white noise floor the
   camera fit predicts, matched by a power-law sample spectrum times the squared in-focus OTF of
   the PSF model scaled to a cutoff (cycles/pixel); with the pixel size this gives the NA (or
   with the NA, the pixel size).
3. **Photon level and background** (:func:`match_intensity`): simulated images of the fitted
   config are compared with the image in electrons — a high percentile of a smoothed copy
   (photons) and the large-scale background (level, spread, length scale) — and the settings
   rescaled until they agree.
4. **Sample** (:func:`rank_samples`): each structure type of the library at a few sizes and
   densities is simulated with the fitted camera and optics; candidates are scored by the
   distance between their signal power spectra and intensity distributions and the image's;
   the best is used unless the user names one.

Everything is deterministic (fixed seeds) and CPU-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from . import psf as psf_models
from .calibrate import AMPLIFIED_GAIN, KERNEL_K3, local_samples, plausible_offset
from .config import SimConfig, load_preset, otf_cutoffs
from .errors import SynthcareError
from .pairs import simulate_pair
from .tiff import save_figure

EM_GAIN = 100.0  # EM gain of the simulated register: large enough for continuous output
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
    if not np.all(np.isfinite(a)):
        raise SynthcareError("the image contains NaN or Inf: fit needs raw camera values")
    if min(a.shape) < 64:
        raise SynthcareError(f"the image is {a.shape[0]}×{a.shape[1]} pixels; fit needs at least 64×64")
    if np.ptp(a) == 0:
        raise SynthcareError("the image is constant: nothing to fit")
    top = a.max()
    if np.mean(a >= top) > 0.2:
        raise SynthcareError(f"{100 * np.mean(a >= top):.0f}% of the pixels sit at the maximum "
                             f"{top:g}: the image is saturated")
    return a


# --- camera ----------------------------------------------------------------------------------
MAX_BETA = 3.0  # steepest power-law fall of a sample's own spectrum (sharp edges in 2D)
NOISE_BAND = 0.3  # cycles/pixel: frequencies above this (in x or y) carry noise, little signal


@dataclass(frozen=True)
class NoiseLine:
    """Noise of an image against its local mean (ADU): variance ``slope·m + intercept`` and third
    cumulant ``k3_slope·m + k3_intercept``, fitted over ``bins`` (n, 4): local mean, variance,
    third cumulant, pixels."""

    slope: float
    intercept: float
    k3_slope: float
    k3_intercept: float
    bins: np.ndarray
    k3_cov: np.ndarray | None = None  # (2, 2) covariance of (k3_slope, k3_intercept)

    def skew_offset(self) -> tuple[float, float]:
        """Where the third cumulant crosses zero (the offset, ADU) and its standard error;
        (inf, inf) when the cumulant does not grow with intensity."""
        if self.k3_slope <= 0:
            return math.inf, math.inf
        o = -self.k3_intercept / self.k3_slope
        if self.k3_cov is None:
            return o, math.inf
        grad = np.array([self.k3_intercept / self.k3_slope**2, -1 / self.k3_slope])
        return o, float(np.sqrt(max(grad @ self.k3_cov @ grad, 0.0)))

    def skewness(self) -> tuple[float, float]:
        """Third-cumulant slope over the squared variance slope, and its standard error: 1 for
        Poisson counts at any gain, 1.5 behind an EM register at high EM gain."""
        se = math.sqrt(self.k3_cov[0, 0]) if self.k3_cov is not None else math.inf
        return self.k3_slope / self.slope**2, se / self.slope**2

    def variance(self, m: np.ndarray | float) -> np.ndarray | float:
        """Noise variance (ADU²) at local mean ``m``."""
        return np.maximum(self.slope * np.asarray(m) + self.intercept, 0.0)


def border_spectrum(image: np.ndarray) -> np.ndarray:
    """FFT of the smooth component of an image (Moisan's periodic-plus-smooth decomposition,
    J. Math. Imaging Vis. 2011): the smooth field that carries the jumps between its opposite
    borders; the image's FFT minus this is its periodic component's. A raw FFT sees those jumps
    as edges whose ringing (sinc tails) spreads signal into every frequency band, so a bright
    image's high-pass residual grows with its brightness and the noise line's slope is biased
    up (+5 % at a 300-photon peak)."""
    u = np.asarray(image, np.float64)
    ny, nx = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    cy = np.cos(2 * np.pi * np.fft.fftfreq(ny))[:, None]
    cx = np.cos(2 * np.pi * np.fft.fftfreq(nx))[None, :]
    denom = 2 * cx + 2 * cy - 4
    denom[0, 0] = 1.0
    smooth = np.fft.fft2(v) / denom
    smooth[0, 0] = 0.0
    return smooth


def _group_moments(r: np.ndarray, key: np.ndarray, mean: np.ndarray, n_bins: int) -> np.ndarray:
    """Residuals ``r`` grouped by ``key`` into ``n_bins`` equal-count groups: per group, the mean
    of ``mean``, the residual's second and third central moments, and its pixels, (n_bins, 4)."""
    rows = []
    for idx in np.array_split(np.argsort(key, kind="stable"), n_bins):
        ri = r[idx]
        ok = np.abs(ri) < 8 * np.sqrt(np.mean(ri**2))  # hot pixels, cosmic rays
        # central moments: grouping shifts a group's mean residual a little (the ring's noise
        # reaches the residual through h's side lobes), and a raw third moment turns that shift
        # times the variance into a false skewness (the darkest groups' came out ~30 ADU³ low)
        ri = ri[ok] - ri[ok].mean()
        rows.append((mean[idx][ok].mean(), np.mean(ri**2), np.mean(ri**3), ri.size))
    return np.array(rows)


def noise_line(image: np.ndarray, band: float = NOISE_BAND, n_bins: int = 24) -> NoiseLine:
    """The image's noise against its local mean, from the part of its spectrum beyond ``band``
    cycles/pixel (in x or y), where a microscope's blurred signal has little power and white
    noise keeps a known fraction of its variance (and third cumulant). Unlike the flat-region
    method of :mod:`simulate.calibrate`, it uses every pixel, bright structure included, so the
    line spans the image's whole intensity range."""
    ky = np.abs(np.fft.fftfreq(image.shape[0]))[:, None]
    kx = np.abs(np.fft.fftfreq(image.shape[1]))[None, :]
    keep = (ky > band) | (kx > band)
    h = np.real(np.fft.ifft2(keep.astype(float)))  # the high-pass kernel (circular)
    k2, k3 = float(np.sum(h**2)), float(np.sum(h**3))
    spectrum = np.fft.fft2(image)
    r = np.real(np.fft.ifft2((spectrum - border_spectrum(image)) * keep))
    # the residual's variance is the h²-weighted mean of its neighbours' variances, its third
    # cumulant the h³-weighted mean of theirs: each is regressed on the image's mean under the
    # same weights (h³ has negative side lobes: that mean is a sharpened one, and against a
    # plain local mean the cumulant's slope came out 1.3-2× too steep on structured images)
    mean2 = np.real(np.fft.ifft2(spectrum * np.fft.fft2(h**2))) / k2
    mean3 = np.real(np.fft.ifft2(spectrum * np.fft.fft2(h**3))) / k3
    # pixels are grouped by the mean of a ring around them that leaves out the centre, where h
    # has most of its weight: grouping by a mean that shares their own noise would select it,
    # the brightest groups holding pixels whose noise is high, and the slope would come out low
    # where noise rather than structure sorts them (seen: −4 to −14 % at 30 photons). The
    # variance is grouped by a near ring (7×7 without 3×3), which sorts structure best; the
    # third cumulant, more sensitive to what the selection does to h's side lobes, by a far one
    # (13×13 without 7×7): with the near ring its slope came out 10 % low on a ramp of known
    # skewness, with the far one it did not
    near = (49 * ndimage.uniform_filter(image, 7, mode="reflect")
            - 9 * ndimage.uniform_filter(image, 3, mode="reflect")) / 40
    far = (169 * ndimage.uniform_filter(image, 13, mode="reflect")
           - 49 * ndimage.uniform_filter(image, 7, mode="reflect")) / 120
    edge = 8
    inner = (slice(edge, -edge), slice(edge, -edge))
    r, near, far, mean2, mean3 = (a[inner].ravel() for a in (r, near, far, mean2, mean3))
    bins = _group_moments(r, near, mean2, n_bins) / [1, k2, k3, 1]
    b3s = _group_moments(r, far, mean3, n_bins) / [1, k2, k3, 1]
    w = bins[:, 3] / (2 * np.maximum(bins[:, 1], 1e-12) ** 2)
    slope, icept = np.polyfit(bins[:, 0], bins[:, 1], 1, w=np.sqrt(w))
    w3 = b3s[:, 3] / np.maximum(b3s[:, 1], 1e-12) ** 3  # a third moment's variance ∝ V³/n
    (g3, b3), cov3 = np.polyfit(b3s[:, 0], b3s[:, 2], 1, w=np.sqrt(w3), cov="unscaled")
    # the scatter of the bins about the line (not the nominal weights) sets the uncertainty
    resid = (b3s[:, 2] - (g3 * b3s[:, 0] + b3)) * np.sqrt(w3)
    cov3 = cov3 * max(float(np.sum(resid**2)) / max(n_bins - 2, 1), 1.0)
    if slope <= 0:
        raise SynthcareError("the image's noise does not grow with its intensity (fitted slope "
                             f"{slope:.3g} ADU/e⁻): it is not raw camera output (denoised, "
                             "rescaled or averaged?)")
    return NoiseLine(float(slope), float(icept), float(g3), float(b3), bins,
                     np.asarray(cov3, np.float64))


def fit_camera(image: np.ndarray, *, offset: float | None = None, dark: np.ndarray | None = None,
               bits: int = 16) -> tuple[dict[str, Any], list[str], NoiseLine]:
    """Camera settings of a raw image: (camera dict, report lines, its :class:`NoiseLine`).

    The gain is the noise line's slope, the detector kind its skewness (:func:`multiplier_spread`).
    The offset: given, from dark frames, else from the third cumulant at the kind's skewness
    (:func:`offset_at_skewness`), kept within what the data allow (between the variance
    line's zero and the darkest regions' mean), else :func:`simulate.calibrate.plausible_offset`
    between those bounds. The read noise then follows from the darkest regions' variance."""
    line = noise_line(image)
    slope = line.slope
    m0, v0 = float(line.bins[0, 0]), float(line.bins[0, 1])
    skewness, skewness_se = line.skewness()  # 1 for Poisson counts, 1.5 behind an EM register
    spread = multiplier_spread(skewness, skewness_se) if slope > AMPLIFIED_GAIN else None
    report = []
    if dark is not None:
        d = np.asarray(dark, np.float64)
        o, read_adu2 = float(d.mean()), float(d.var())
        report.append(f"offset {o:.4g} ADU and read noise from the dark frames")
    elif offset is not None:
        o = float(offset)
        read_adu2 = max(float(line.variance(o)), 0.0)
        report.append(f"offset {o:.4g} ADU (given)")
    else:
        o = _offset(image, line, spread, m0, report)
        read_adu2 = max(v0 - 1 / 12 - slope * (m0 - o), 0.0)
    read_noise = math.sqrt(read_adu2) / slope
    cam: dict[str, Any] = {"qe": 1.0, "offset": round(o, 3), "bits": bits}
    if spread is not None:
        excess = 1.0 + spread
        cam.update(gain=round(slope / (excess * EM_GAIN), 6), em_gain=EM_GAIN,
                   em_spread=round(spread, 4), read_noise=round(read_noise * excess * EM_GAIN, 4))
        kind = ("an EM register (EMCCD)" if spread == 1.0 else
                "a multiplier with narrow pulse heights (PMT, HyD)")
        report.append(f"conversion {slope:.3g} ADU/e⁻ (above {AMPLIFIED_GAIN:g}), skewness "
                      f"{skewness:.2f} ± {skewness_se:.2g} (Poisson counts 1, EM register 1.5): "
                      f"{kind}; simulated with a multiplier of pulse-height spread "
                      f"{spread:.2g} (excess noise {excess:.2f})")
    else:
        if slope > AMPLIFIED_GAIN:
            report.append(f"conversion {slope:.3g} ADU/e⁻ with Poisson-like skewness {skewness:.2f}"
                          f" ± {skewness_se:.2g} (an EM register gives 1.5): a high-gain camera "
                          "or a photon-counting detector; simulated without a multiplier")
        cam.update(gain=round(slope, 5), read_noise=round(read_noise, 4))
    report.append(f"gain {slope:.4g} ADU/e⁻ (effective: variance / mean), read noise "
                  f"{read_noise:.3g} e⁻ ({math.sqrt(read_adu2):.3g} ADU)")
    return cam, report, line


def offset_at_skewness(image: np.ndarray, slope: float, skewness: float, n_bins: int = 24,
                       ) -> tuple[float, float]:
    """The offset (ADU) and its standard error when the gain (``slope``, ADU/e⁻) and the noise's
    skewness (third-cumulant slope over slope²: 1 for Poisson counts, (1 + 2c²)/(1 + c²) behind
    a multiplier) are known: each group of pixels of similar local mean gives its own estimate,
    its mean minus its third cumulant over skewness × slope², and these are averaged with the
    weights of a third moment's variance (∝ pixels / variance³). (inf, inf) without enough
    structure-free pixels.

    The cumulant comes from the structure-free pixels of :func:`simulate.calibrate.local_samples`
    (each minus its cubic prediction from its 5×5 window, which keeps 98 % of the pixel's third
    cumulant at 1.18× its variance); the spectral residual of :func:`noise_line` keeps 24 % at
    0.64×, and the same images gave twice the error. Needing no spread of intensities to find
    the cumulant's slope, it places the offset of an image that is mostly background, where the
    free slope of :meth:`NoiseLine.skew_offset` had standard errors of 3–60 ADU."""
    keys, means, resid = local_samples(image)
    if resid.size < 50 * n_bins:
        return math.inf, math.inf
    order = np.argsort(keys, kind="stable")
    est, w = [], []
    for idx in np.array_split(order, n_bins):
        r = resid[idx] - resid[idx].mean()
        k3 = float(np.mean(r**3)) / KERNEL_K3
        est.append(float(means[idx].mean()) - k3 / (skewness * slope**2))
        w.append(idx.size / max(float(np.mean(r**2)), 1e-12) ** 3)
    est_a, w_a = np.array(est), np.array(w)
    o = float(np.sum(w_a * est_a) / np.sum(w_a))
    # the groups' scatter about their mean sets the uncertainty
    se = math.sqrt(float(np.sum(w_a * (est_a - o) ** 2) / np.sum(w_a)) / (n_bins - 1))
    return o, se


def _offset(image: np.ndarray, line: NoiseLine, spread: float | None, m0: float, report: list[str]) -> float:
    """The offset (ADU) of an image without dark frames, from its third cumulant: at the
    detector's model skewness (1 for Poisson counts, (1 + 2c²)/(1 + c²) behind a multiplier of
    pulse-height spread c²) and where its fitted line crosses zero, averaged by inverse
    variance, kept within what the data allow: above the variance line's zero (no read noise)
    and 0, below the darkest regions' mean ``m0`` (no signal). Appends what it did to
    ``report``."""
    lowest = max(-line.intercept / line.slope, 0.0)
    model = 1.0 if spread is None else (1.0 + 2.0 * spread) / (1.0 + spread)
    # two estimates: at the model's skewness (good when the image is mostly background) and
    # where the cumulant's fitted line crosses zero (good when intensities spread widely);
    # each weighted by its inverse variance
    fixed, free = offset_at_skewness(image, line.slope, model), line.skew_offset()
    pairs = [e for e in (fixed, free) if math.isfinite(e[0]) and 0 < e[1] < math.inf]
    if not pairs:
        o = plausible_offset(lowest, m0, line.slope)
        report.append(f"offset {o:.4g} ADU, between {lowest:.4g} (no read noise) and {m0:.4g} "
                      "(no signal in the darkest regions): the image's skewness could not place "
                      "it (give --offset or --dark if known)")
        return o
    w = np.array([1 / e[1] ** 2 for e in pairs])
    values = np.array([e[0] for e in pairs])
    est = float(np.sum(w * values) / np.sum(w))
    # estimates that disagree beyond their errors widen the error (Birge ratio)
    chi2 = float(np.sum(w * (values - est) ** 2)) / max(len(pairs) - 1, 1)
    se = math.sqrt(max(chi2, 1.0) / float(np.sum(w)))
    o = min(max(est, lowest), m0)  # beyond what the data allow: the nearer bound is likelier
    where = (f"at {est:.4g} ± {se:.2g}, outside the bounds the data allow, {lowest:.4g}–{m0:.4g}"
             if o != est else f"± {se:.2g} ADU; bounds {lowest:.4g}–{m0:.4g}")
    # the read noise rests on the darkest regions' variance minus slope × (m0 − offset)
    doubt = line.slope * se > 0.25 * max(line.variance(m0), 1e-12)
    report.append(f"offset {o:.4g} ADU from the image's third cumulant (at skewness {model:.3g}: "
                  f"{fixed[0]:.4g} ± {fixed[1]:.2g}; its fitted line's zero: {free[0]:.4g} ± "
                  f"{free[1]:.2g}; combined {where})"
                  + ("; give --offset or --dark if known: the read noise depends on it"
                     if doubt else ""))
    return o


def multiplier_spread(skewness: float, se: float) -> float | None:
    """The pulse-height spread c² (relative variance of one electron's multiplied output) that
    a noise skewness (k3 slope / slope², with standard error ``se``) implies, or None for
    Poisson counts. A multiplier whose pulses are Gamma-distributed with relative variance c²
    gives skewness (1 + 2c²)/(1 + c²): 1 without spread, 1.5 for an EM register's exponential
    (c² = 1). Within two standard errors of 1 (or below), Poisson counts: the simpler model
    wins when the skewness is not resolved; else, within two of 1.5 (or above), an EM register;
    in between, c² = (s − 1)/(2 − s)."""
    if skewness - 2 * se <= 1.0:
        return None
    if skewness + 2 * se >= 1.5:
        return 1.0
    return float(np.clip((skewness - 1.0) / (2.0 - skewness), 0.02, 1.0))


def electrons(image: np.ndarray, cam: dict[str, Any]) -> np.ndarray:
    """The image in the simulated camera's photon units (qe 1): ADU minus offset over gain × EM
    gain, as :meth:`simulate.camera.Camera.photons_from_expected` would give."""
    return (image - cam["offset"]) / (cam["gain"] * (cam.get("em_gain") or 1.0))


# --- resolution ------------------------------------------------------------------------------
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


# --- intensity -------------------------------------------------------------------------------
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


def match_intensity(cfg: SimConfig, target: dict[str, float], rounds: int = 3) -> SimConfig:
    """Rescale ``camera.photons``, ``sample.background`` and ``sample.background_smooth`` until
    simulated images (in electrons) have the image's peak and background statistics."""
    for _ in range(rounds):
        e = _sim_electrons(cfg, 2)
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

# Training of a fitted config: denoise2d's, with the residual connection and 16 patches per
# simulated image. On simulated images of the confocal pair's fit (3 held-out 512² images, 5 CPU
# minutes each): 30.50 dB as denoise2d trains, 31.17 with the residual connection, 31.10 with 16
# patches per image (1383 steps instead of 834), against VST+BM3D's 31.42 (tuned on the truth).
FIT_TRAIN = {"residual": True, "patches_per_image": 16}


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
                                "optics.ni": max(cfg.optics.ni, _immersion(na))})
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


# --- the whole fit ---------------------------------------------------------------------------
def _immersion(na: float) -> float:
    """A plausible immersion index for an NA: air below 0.95, water below 1.25, else oil."""
    return 1.0 if na < 0.95 else 1.33 if na < 1.25 else 1.518


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
    sample : a library candidate to use (see :data:`CANDIDATES`) instead of the best ranked.
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
           "ni": ni or _immersion(ref_na)}
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
        opt.update(na=round(na, 4), ni=ni or _immersion(na))
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
    of each image beyond :data:`NOISE_BAND`, as :func:`noise_line` measures it)."""
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
