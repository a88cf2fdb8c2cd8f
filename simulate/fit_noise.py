"""Camera settings from one raw image, without dark frames: step 1 of ``synthcare fit``.

The image's noise against its local mean (:func:`noise_line`, from the part of its spectrum
where a microscope's blurred signal has little power) gives the gain (its slope), the detector
kind (its skewness, :func:`multiplier_spread`) and, with the third cumulant, the offset
(:func:`offset_at_skewness`); the read noise follows from the darkest regions' variance
(:func:`fit_camera`). Behind a multiplier (PMT, HyD, EMCCD) whose single-electron pulses stand
far above the read noise, an image with dark regions shows their zero-photon peak, which gives
the offset and the read noise directly (:func:`zero_photon_peak`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .camera import neighbour_tap
from .config import MAX_CORRELATION
from .errors import SynthcareError
from .fit_offset import (
    AMPLIFIED_GAIN,
    PEAK_WINDOW,
    offset_at_skewness,
    plausible_offset,
    zero_photon_peak,
)

EM_GAIN = 100.0  # EM gain of the simulated register: large enough for continuous output
MIN_CORRELATION = 0.01  # a smaller neighbour correlation of the noise is not simulated
NOISE_BAND = 0.3  # cycles/pixel: frequencies above this (in x or y) carry noise, little signal
MIN_SIZE = 64  # pixels: a smaller image leaves too few per group of the noise line


def check_raw(a: np.ndarray, what: str) -> None:
    """Refuse, in one line naming ``what`` needs it, an image or stack (planes last two axes)
    that cannot be raw camera output to measure: NaN or Inf, planes under
    :data:`MIN_SIZE` pixels, constant, or saturated (over a fifth of it at its maximum)."""
    if not np.all(np.isfinite(a)):
        raise SynthcareError(f"the image contains NaN or Inf: {what} needs raw camera values")
    if min(a.shape[-2:]) < MIN_SIZE:
        raise SynthcareError(f"the image is {a.shape[-2]}×{a.shape[-1]} pixels; {what} needs at "
                             f"least {MIN_SIZE}×{MIN_SIZE}")
    if np.ptp(a) == 0:
        raise SynthcareError(f"the image is constant: {what} needs raw camera output")
    top = a.max()
    if np.mean(a >= top) > 0.2:
        raise SynthcareError(f"{100 * np.mean(a >= top):.0f}% of the pixels sit at the maximum "
                             f"{top:g}: the image is saturated")


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
    cov: np.ndarray | None = None  # (2, 2) covariance of (slope, intercept)

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


def noise_correlation(image: np.ndarray, band: float = NOISE_BAND) -> tuple[tuple[float, float],
                                                                              tuple[float, float]]:
    """Correlation of an image's noise between neighbouring pixels along (y, x) and its standard
    errors, from its power spectrum where the other axis's frequency exceeds ``band`` (there the
    blurred signal has little power): noise whose neighbours correlate by ρ has the spectrum
    1 + 2ρ cos 2πk (+ higher harmonics, orthogonal to it), so ρ is half the regression slope of
    the power on cos 2πk over the mean power."""
    p = np.abs(np.fft.fft2(image) - border_spectrum(image)) ** 2
    ky, kx = np.fft.fftfreq(image.shape[0])[:, None], np.fft.fftfreq(image.shape[1])[None, :]
    rho, se = [], []
    for along, other in ((ky, kx), (kx, ky)):
        sel = np.broadcast_to(np.abs(other) > band, p.shape)
        c = np.broadcast_to(np.cos(2 * np.pi * along), p.shape)[sel]
        v = p[sel]
        c0 = c - c.mean()
        slope = float(np.sum(c0 * v) / np.sum(c0**2))
        resid = v - v.mean() - slope * c0
        slope_se = float(np.sqrt(np.sum(resid**2) / (v.size - 2) / np.sum(c0**2)))
        mean = float(v.mean())
        rho.append(slope / (2 * mean))
        se.append(slope_se / (2 * mean))
    return (rho[0], rho[1]), (se[0], se[1])


def correlation_spectrum(shape: tuple[int, int], correlation: tuple[float, float]) -> np.ndarray:
    """The transfer function of the camera's noise filter (:meth:`simulate.camera.Camera`,
    stage 5) on an FFT grid of ``shape``: Π over axes of (1 + 2c cos 2πk) / √(1 + 2c²)."""
    out = np.ones(shape)
    for axis, rho in enumerate(correlation):
        c = neighbour_tap(rho)
        k = np.fft.fftfreq(shape[axis]).reshape([-1 if a == axis else 1 for a in range(2)])
        out = out * (1 + 2 * c * np.cos(2 * np.pi * k)) / np.sqrt(1 + 2 * c * c)
    return out


def noise_line(image: np.ndarray, band: float = NOISE_BAND, n_bins: int = 24,
               correlation: tuple[float, float] = (0.0, 0.0)) -> NoiseLine:
    """The image's noise against its local mean, from the part of its spectrum beyond ``band``
    cycles/pixel (in x or y), where a microscope's blurred signal has little power and white
    noise keeps a known fraction of its variance (and third cumulant). Unlike the flat-region
    method of :mod:`simulate.calibrate`, it uses every pixel, bright structure included, so the
    line spans the image's whole intensity range. Noise whose neighbours correlate
    (``correlation`` along (y, x), :func:`noise_correlation`) keeps another fraction: the
    high-pass kernel is then taken through the camera's correlation filter."""
    ky = np.abs(np.fft.fftfreq(image.shape[0]))[:, None]
    kx = np.abs(np.fft.fftfreq(image.shape[1]))[None, :]
    keep = (ky > band) | (kx > band)
    # the high-pass kernel (circular), through the noise's correlation filter: white noise
    # filtered by both is the residual
    h = np.real(np.fft.ifft2(keep * correlation_spectrum(image.shape, correlation)))
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
    (slope, icept), cov = np.polyfit(bins[:, 0], bins[:, 1], 1, w=np.sqrt(w), cov="unscaled")
    resid = (bins[:, 1] - (slope * bins[:, 0] + icept)) * np.sqrt(w)
    cov = cov * max(float(np.sum(resid**2)) / max(n_bins - 2, 1), 1.0)
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
                     np.asarray(cov3, np.float64), np.asarray(cov, np.float64))


@dataclass(frozen=True)
class NoiseMeasure:
    """What one raw 2D image tells of its camera, in ADU (:func:`measure_noise`).

    Attributes
    ----------
    line : the noise against the local mean; its slope is the conversion (ADU per detected
        electron, multiplication and excess noise included).
    offset, offset_se : the offset and its standard error (0 when given).
    read_adu2, read_adu2_se : the read noise's variance (ADU²) and its standard error.
    spread : a multiplier's pulse-height spread c² (1 for an EM register), None for Poisson counts.
    skewness, skewness_se : the noise's third-cumulant slope over slope² (1 Poisson, 1.5 EMCCD).
    correlation : the noise's neighbour correlation along (y, x) that the camera should simulate.
    report : what was measured and how, one line each.
    """

    line: NoiseLine
    offset: float
    offset_se: float
    read_adu2: float
    read_adu2_se: float
    spread: float | None
    skewness: float
    skewness_se: float
    correlation: tuple[float, float]
    report: tuple[str, ...]


def measure_noise(image: np.ndarray, *, offset: float | None = None,
                  dark: np.ndarray | None = None, em_register: bool = False) -> NoiseMeasure:
    """The camera's noise in a raw 2D image (ADU): the noise line, the detector kind, offset,
    read noise and neighbour correlation.

    The conversion is the noise line's slope, the detector kind its skewness
    (:func:`multiplier_spread`; ``em_register`` says it is an EM register). The offset: given,
    from dark frames, from the zero-photon peak of an amplifying detector's dark regions
    (:func:`zero_photon_peak`), else from the third cumulant (:func:`offset_from_cumulants`).
    The read noise then follows from the darkest regions' variance (or the dark frames')."""
    measured, rho_se = noise_correlation(image)
    rho = tuple(float(np.clip(round(r, 3), -MAX_CORRELATION, MAX_CORRELATION))
                if abs(r) >= max(MIN_CORRELATION, 3 * e) else 0.0
                for r, e in zip(measured, rho_se, strict=True))
    line = noise_line(image, correlation=rho)
    slope = line.slope
    m0, v0, n0 = (float(x) for x in line.bins[0, [0, 1, 3]])
    skewness, skewness_se = line.skewness()  # 1 for Poisson counts, 1.5 behind an EM register
    spread = 1.0 if em_register else (
        multiplier_spread(skewness, skewness_se) if slope > AMPLIFIED_GAIN else None)
    report: list[str] = []
    o_se = 0.0
    if dark is not None:
        d = np.asarray(dark, np.float64)
        o, read_adu2 = float(d.mean()), float(d.var())
        o_se, read_se = math.sqrt(read_adu2 / d.size), read_adu2 * math.sqrt(2.0 / d.size)
        report.append(f"offset {o:.4g} ADU and read noise from the dark frames")
    elif offset is not None:  # the variance line at the given offset
        o = float(offset)
        read_adu2 = max(float(line.variance(o)), 0.0)
        read_se = math.sqrt(max(float(np.array([o, 1.0]) @ line.cov @ np.array([o, 1.0])), 0.0))
        report.append(f"offset {o:.4g} ADU (given)")
    elif slope > AMPLIFIED_GAIN and (peak := zero_photon_peak(
            image, slope / (1.0 + (spread or 0.0)))) is not None:  # the mean pulse: slope / F²
        o, read_adu2, share = peak
        o_se, read_se = math.sqrt(read_adu2 / n0), read_adu2 * math.sqrt(2.0 / n0)
        report.append(f"offset {o:.4g} ADU and read noise {math.sqrt(read_adu2):.3g} ADU from the "
                      f"zero-photon peak of the darkest regions ({100 * share:.0f} % of their "
                      f"pixels within {PEAK_WINDOW:g} of one electron's mean pulse of their median)")
    else:  # the darkest regions' variance: read noise plus the shot noise above the offset
        o, o_se = offset_from_cumulants(image, line, spread, m0, report)
        read_adu2 = max(v0 - 1 / 12 - slope * (m0 - o), 0.0)
        read_se = math.hypot(slope * o_se, v0 * math.sqrt(2.0 / n0))
    shown = ", ".join(f"{r:+.3f} ± {e:.3f}" for r, e in zip(measured, rho_se, strict=True))
    report.append(f"noise correlation between neighbours: y {rho[0]:+.3g}, x {rho[1]:+.3g} "
                  f"(measured {shown}; below {MIN_CORRELATION} or 3 standard errors: 0)")
    return NoiseMeasure(line, o, o_se, read_adu2, read_se, spread, skewness, skewness_se,
                        (rho[0], rho[1]), tuple(report))


def fit_camera(image: np.ndarray, *, offset: float | None = None, dark: np.ndarray | None = None,
               bits: int = 16) -> tuple[dict[str, Any], list[str], NoiseLine]:
    """Camera settings of a raw image: (camera dict, report lines, its :class:`NoiseLine`), from
    :func:`measure_noise`. Behind a multiplier the camera is simulated with an EM register of
    :data:`EM_GAIN` and the measured pulse-height spread; else as a plain camera."""
    m = measure_noise(image, offset=offset, dark=dark)
    slope, spread, skewness, skewness_se = m.line.slope, m.spread, m.skewness, m.skewness_se
    *report, correlation_line = m.report  # the detector's lines go before the correlation's
    read_noise = math.sqrt(m.read_adu2) / slope
    cam: dict[str, Any] = {"qe": 1.0, "offset": round(m.offset, 3), "bits": bits}
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
                  f"{read_noise:.3g} e⁻ ({math.sqrt(m.read_adu2):.3g} ADU)")
    if any(m.correlation):
        cam["correlation"] = list(m.correlation)
    report.append(correlation_line)
    return cam, report, m.line


def offset_from_cumulants(image: np.ndarray, line: NoiseLine, spread: float | None, m0: float,
                          report: list[str]) -> tuple[float, float]:
    """The offset (ADU) of an image without dark frames and its standard error, from the third
    cumulant: at the detector's model skewness (1 for Poisson counts, (1 + 2c²)/(1 + c²) behind
    a multiplier of pulse-height spread c²) and where ``line``'s fitted cumulant crosses zero,
    averaged by inverse variance, kept within what the data allow: above the variance line's
    zero (no read noise) and 0, below the darkest regions' mean ``m0`` (no signal). Appends
    what it did to ``report``."""
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
                      "it (offset-subtracted or clipped?); give --offset or --dark if known")
        return o, max(m0 - lowest, 0.0) / 2
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
    return o, se


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
