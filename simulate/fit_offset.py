"""The camera's offset from one raw image, without dark frames (used by ``synthcare fit`` and
``synthcare calibrate`` through :func:`simulate.fit_noise.offset_from_cumulants`).

Gaussian read noise has no third cumulant and Poisson counts one equal to their mean, so the
noise's third cumulant places the offset once the gain is known (:func:`offset_at_skewness`).
It is measured on structure-free pixels (:func:`local_samples`): each pixel minus its
least-squares cubic prediction from the rest of its 5×5 window, which removes a smooth,
band-limited signal and keeps 98 % of the pixel's third cumulant at 1.18× its variance (a
separable high-pass kernel such as Immerkær's keeps 17 % of the skewness). Behind a multiplier
whose single-electron pulses stand far above the read noise, the dark regions' zero-photon peak
gives offset and read noise directly (:func:`zero_photon_peak`). Where neither can place it,
:func:`plausible_offset` picks one between the bounds the data allow.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .errors import SynthcareError

TYPICAL_READ_NOISE = 1.6  # e⁻ rms: a scientific CMOS or cooled CCD, when nothing says otherwise
AMPLIFIED_GAIN = 3.0  # ADU per effective e⁻ above which a detector amplifies (EMCCD, PMT, HyD)


def _predictor_residual(radius: int = 2, order: int = 3) -> np.ndarray:
    """Kernel: a pixel minus its least-squares polynomial prediction (total ``order``) from the
    other pixels of its (2·radius+1)² window. It removes any cubic signal exactly; its weights
    sum to zero, so it is uncorrelated with the window's mean under locally constant noise."""
    pts = [(i, j) for i in range(-radius, radius + 1) for j in range(-radius, radius + 1)
           if (i, j) != (0, 0)]
    terms = [(a, b) for a in range(order + 1) for b in range(order + 1 - a)]
    design = np.array([[i ** a * j ** b for a, b in terms] for i, j in pts], dtype=np.float64)
    weights = np.linalg.pinv(design)[terms.index((0, 0))]
    kernel = np.zeros((2 * radius + 1,) * 2)
    for (i, j), w in zip(pts, weights, strict=True):
        kernel[i + radius, j + radius] = -w
    kernel[radius, radius] = 1.0
    return kernel


_KERNEL = _predictor_residual()
KERNEL_K2 = float(np.sum(_KERNEL ** 2))   # residual variance / pixel variance (1.18)
KERNEL_K3 = float(np.sum(_KERNEL ** 3))   # residual third cumulant / pixel third cumulant (0.98)


def planes(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or min(a.shape[-2:]) < 16:
        raise SynthcareError(f"calibration needs a 2D image or a (z, y, x) stack of planes at least "
                             f"16×16 pixels, got shape {a.shape}")
    return a.astype(np.float64)


class Samples(NamedTuple):
    """Per kept pixel (1-D float64 arrays): the grouping key (mean of the 9×9 ring around the
    5×5 window), the local mean (the window's), the residual (the pixel minus its cubic
    prediction from the rest of the window) and the pixel's own value."""

    keys: np.ndarray
    means: np.ndarray
    resid: np.ndarray
    pixels: np.ndarray


def local_samples(image: np.ndarray, *, structure: float = 3.0) -> Samples:
    """Per kept pixel: a grouping key, the local mean, the residual and the pixel value.

    The residual is the pixel minus its cubic prediction from the rest of its 5×5 window; the
    local mean is that window's mean (uncorrelated with the residual); the key is the mean of
    the 9×9 ring around the window (independent of both). A pixel is kept when the same residual
    operator on a lightly smoothed copy stays below ``structure`` noise standard deviations (no
    signal edge there), and when no value in its window is clipped (zero, or a repeated image
    maximum: saturation).

    The smoothed copy shares the window's noise (its residual correlates 0.59 with the pixel's),
    so a test on it alone would trim the residual's tails (the Poisson tail of the third
    cumulant: offsets read 1–3 e⁻ high on flat images). The statistic is therefore taken without
    its regression on the pixel's own residual, which leaves it uncorrelated with that residual
    (independent for Gaussian noise), at the cost of some structure left in
    (:func:`offset_at_skewness` removes its effect on the third cumulant).
    """
    stack = planes(image)
    keys, means, resid, pixels = [], [], [], []
    for p in stack:
        m5 = ndimage.uniform_filter(p, 5, mode="reflect")
        r = ndimage.correlate(p, _KERNEL, mode="reflect")
        # structure: the same residual operator on a lightly smoothed copy (less noise, same
        # frequencies); its noise-only spread from the local robust noise level
        var_loc = ndimage.median_filter(r * r, size=9, mode="reflect") / 0.4549 / KERNEL_K2
        stat = ndimage.correlate(ndimage.gaussian_filter(p, 1.0, mode="reflect"), _KERNEL,
                                 mode="reflect")
        stat -= _STAT_BETA * r
        keep = stat * stat < structure ** 2 * _STAT_K2 * var_loc
        hi = p.max()
        clipped = (p <= 0) | ((p >= hi) & (np.count_nonzero(p >= hi) > 1))
        keep &= ~ndimage.binary_dilation(clipped, np.ones((5, 5), bool))
        keep[:4], keep[-4:], keep[:, :4], keep[:, -4:] = False, False, False, False
        # grouping key from pixels disjoint from the residual's window (the 9x9 ring around
        # it): grouping by a noisy mean and reporting that same mean would shrink the slope
        # (regression dilution); the 5x5 mean reported per group is then unbiased
        ring = (81.0 * ndimage.uniform_filter(p, 9, mode="reflect") - 25.0 * m5) / 56.0
        keys.append(ring[keep])
        means.append(m5[keep])
        resid.append(r[keep])
        pixels.append(p[keep])
    return Samples(*(np.concatenate(a) for a in (keys, means, resid, pixels)))


def _stat_kernels() -> tuple[float, float]:
    """The structure statistic's noise (per unit pixel variance): its regression coefficient on
    the pixel's own residual, and the variance of what is left without that."""
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    ws = ndimage.correlate(ndimage.gaussian_filter(delta, 1.0, mode="constant"), _KERNEL,
                           mode="constant")
    wr = ndimage.correlate(delta, _KERNEL, mode="constant")
    beta = float(np.sum(ws * wr) / np.sum(wr * wr))
    return beta, float(np.sum((ws - beta * wr) ** 2))


_STAT_BETA, _STAT_K2 = _stat_kernels()


def plausible_offset(lowest: float, highest: float, slope: float) -> float:
    """An offset between the bounds the data allow: the variance line's zero plus a typical
    read noise (none for an amplifying detector, whose read noise is negligible in electrons),
    kept below the darkest regions' mean."""
    read = 0.0 if slope > AMPLIFIED_GAIN else TYPICAL_READ_NOISE
    return float(min(max(lowest + slope * read**2, lowest), max(highest, lowest)))


def offset_at_skewness(image: np.ndarray, slope: float, skewness: float, n_bins: int = 24,
                       ) -> tuple[float, float]:
    """The offset (ADU) and its standard error when the gain (``slope``, ADU/e⁻) and the noise's
    skewness (third-cumulant slope over slope²: 1 for Poisson counts, (1 + 2c²)/(1 + c²) behind
    a multiplier) are known: each group of pixels of similar local mean gives its own estimate,
    its mean minus its third cumulant over skewness × slope², and these are averaged with the
    weights of a third moment's variance (∝ pixels / variance³). (inf, inf) without enough
    structure-free pixels.

    The cumulant comes from the structure-free pixels of :func:`local_samples`
    (each minus its cubic prediction from its 5×5 window, which keeps 98 % of the pixel's third
    cumulant at 1.18× its variance); the spectral residual of :func:`noise_line` keeps 24 % at
    0.64×, and the same images gave twice the error. Needing no spread of intensities to find
    the cumulant's slope, it places the offset of an image that is mostly background, where the
    free slope of :meth:`NoiseLine.skew_offset` had standard errors of 3–60 ADU.

    On structured images the residual keeps a little signal ``s`` (what a cubic does not
    predict: peaks stand above it), and where it does the noise is stronger, so a group's third
    central moment gains 3·Cov(s, V), V the residual's noise variance, which grows with the
    local intensity at the slope; it is removed (:func:`_signal_cumulant`). Left in, it read
    the offset 1–2 e⁻ low at a 60-photon peak and 4–13 e⁻ low at 300 on a 30-photon background.
    """
    samples = local_samples(image)
    if samples.resid.size < 50 * n_bins:
        return math.inf, math.inf
    order = np.argsort(samples.keys, kind="stable")
    est, w = [], []
    for idx in np.array_split(order, n_bins):
        r = samples.resid[idx] - samples.resid[idx].mean()
        signal = _signal_cumulant(r, samples.pixels[idx], samples.means[idx], slope)
        m3 = float(np.mean(r**3)) - signal
        est.append(float(samples.means[idx].mean()) - m3 / KERNEL_K3 / (skewness * slope**2))
        # a third moment's sampling variance, 6·V³/n, plus the correction's own uncertainty
        # (half of it: what it leaves out, the signal's variance and skewness, grows with it)
        w.append(1.0 / (6.0 * max(float(np.mean(r**2)), 1e-12) ** 3 / idx.size
                        + (0.5 * signal) ** 2))
    est_a, w_a = np.array(est), np.array(w)
    o = float(np.sum(w_a * est_a) / np.sum(w_a))
    # the groups' scatter about their mean sets the uncertainty
    se = math.sqrt(float(np.sum(w_a * (est_a - o) ** 2) / np.sum(w_a)) / (n_bins - 1))
    return o, se


def _signal_cumulant(r: np.ndarray, pixels: np.ndarray, means: np.ndarray, slope: float) -> float:
    """3·Cov(s, V) in a group of residuals ``r`` (centred) of pixels ``pixels`` with window
    means ``means``: ``s`` the signal left in the residual, V = Σ w²·v its noise variance (w the
    residual's kernel, v = slope·μ + const each pixel's variance at its expected value μ).

    V ≈ slope·(μ₀ + (K2 − 1)·m5) (the centre weighs 1, the others K2 − 1 together), and μ₀ = s
    plus the cubic prediction. The data give Cov(r, x₀) = Cov(s, μ₀) + v (the centre's noise is
    in both), Var(r) = Var(s) + K2·v and Cov(r, m5) = Cov(s, m5) (the kernel's weights sum to
    zero); so Cov(s, V)/slope ≈ Cov(r, x₀) − Var(r)/K2 + (K2 − 1)·Cov(r, m5), up to Var(s)/K2,
    a few hundredths of v. On pure noise each term is zero on average."""
    x = pixels - pixels.mean()
    m = means - means.mean()
    cov = float(np.mean(r * x)) - float(np.mean(r * r)) / KERNEL_K2 \
        + (KERNEL_K2 - 1.0) * float(np.mean(r * m))
    return 3.0 * slope * cov


PEAK_WINDOW = 0.25  # of one electron's mean pulse (ADU): the zero-photon peak's half-width
PEAK_SHARE = 0.5  # at least this share of the darkest pixels must lie in it


def zero_photon_peak(image: np.ndarray, pulse: float, dark_share: float = 0.1,
                     ) -> tuple[float, float, float] | None:
    """Offset (ADU), read-noise variance (ADU²) and peak share from the zero-photon peak of an
    amplifying detector's image (EMCCD, PMT, HyD), or None where the image shows none.

    Behind a multiplier one photoelectron adds a pulse of ``pulse`` ADU on average (the noise
    line's slope over the excess noise factor), far above the read noise, so in the image's
    darkest regions (the ``dark_share`` of pixels where the image smoothed over 2 pixels is
    lowest) the pixels that caught no photon form a narrow peak at the offset. The pixels
    within ±:data:`PEAK_WINDOW` × pulse of the dark pixels' median are that peak when they are
    at least :data:`PEAK_SHARE` of them and the window spans three of its standard deviations;
    their mean is the offset and their variance, less the rounding's 1/12 for integer data, the read
    noise's. (The variance line's intercept cannot give it: a PMT's noise near the offset is
    rare large pulses on a narrow peak, not a Gaussian, and the line through the brighter
    regions overestimated a confocal PMT frame's read noise 8-fold, 4.1 ADU for 0.5.)"""
    a = np.asarray(image, np.float64)
    half = pulse * PEAK_WINDOW
    if half < 1.0 or a.size < 1000:
        return None
    smooth = ndimage.gaussian_filter(a, 2.0)
    dark = a[smooth <= np.quantile(smooth, dark_share)]
    centre = float(np.median(dark))
    peak = dark[np.abs(dark - centre) <= half]
    share = peak.size / dark.size
    if share < PEAK_SHARE or peak.size < 200:
        return None
    integer = bool(np.all(a == np.round(a)))
    var = max(float(peak.var()) - (1 / 12 if integer else 0.0), 0.0)
    if 3 * math.sqrt(var) > half:
        return None  # the window cuts the peak: no resolved zero-photon peak
    return float(peak.mean()), var, share
