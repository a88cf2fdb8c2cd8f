"""Camera calibration: gain, offset and read noise from images, for the simulator's camera section.

A camera pixel records ``ADU = g·(e + r) + o`` with ``e`` Poisson electrons, ``r`` Gaussian read
noise (σ e⁻ rms), gain ``g`` (ADU/e⁻) and offset ``o`` (ADU). Its first three cumulants, as
functions of the mean ``m``, are straight lines:

* variance ``v(m) = g·(m − o) + g²σ²`` (the photon-transfer line; with an EM register of gain
  ``G`` and excess noise factor ``F² = 2`` the slope is ``g·G·F²``, read noise unchanged);
* third cumulant ``κ₃(m) = g²·(m − o)`` (``1.5·(gGF²)²·(m − o)`` with EM gain): Gaussian read
  noise has none, so it crosses zero exactly at the offset.

The variance line alone cannot separate offset from read noise (its intercept is ``g²σ² − g·o``);
the third cumulant can, which is what makes a single image enough. :func:`calibrate_image`
measures each plane as ``synthcare fit`` measures its image
(:func:`simulate.fit_noise.measure_noise`: the noise against the local mean from the image's
high spatial frequencies, where a blurred signal has little power, the offset from the third
cumulant, :mod:`simulate.fit_offset`). On structured images this finds the gain within a few
per cent where the flat-pixel line this module fitted before read it 5–17 % low: the test that
kept flat pixels also dropped the noisiest ones, more of them where the image is bright.

Dark frames (no light) give the offset and the read noise in ADU directly; with them the image
(or flat fields) only has to supply the slope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SynthcareError
from .fit_noise import check_raw, measure_noise
from .fit_offset import planes
from .tiff import save_figure

EM_EXCESS = 2.0  # F² of an EM register at high gain


@dataclass(frozen=True)
class Calibration:
    """Estimated camera parameters with their standard errors.

    Attributes
    ----------
    gain : ADU per electron at the output amplifier.
    offset : ADU.
    read_noise : e⁻ rms.
    em_gain : the EM gain the caller gave (the slope is then ``gain·em_gain·2``), or None.
    gain_se, offset_se, read_noise_se : standard errors (same units).
    bins : (n, 4) array of the per-group (mean, variance, third cumulant, pixels) used in the fit.
    correlation : the noise's correlation between neighbours along (y, x) (0: not measured or
        below what the simulator reproduces).
    notes : warnings a user should read (e.g. read noise below one ADU).
    """

    gain: float
    offset: float
    read_noise: float
    em_gain: float | None
    gain_se: float
    offset_se: float
    read_noise_se: float
    bins: np.ndarray
    correlation: tuple[float, float] = (0.0, 0.0)
    notes: tuple[str, ...] = ()

    def camera_section(self) -> dict:
        """The ``camera`` settings the simulator loads (``--camera FILE``)."""
        cam = {"gain": round(self.gain, 4), "offset": round(self.offset, 2),
               "read_noise": round(self.read_noise, 3)}
        if self.em_gain is not None:
            cam["em_gain"] = self.em_gain
        if any(self.correlation):
            cam["correlation"] = [float(c) for c in self.correlation]
        return cam


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line ``y = a·x + b``; returns (a, b) and their covariance."""
    A = np.stack([x, np.ones_like(x)], axis=1)
    W = w / w.sum()
    cov = np.linalg.inv(A.T @ (A * W[:, None]))
    coef = cov @ (A.T @ (W * y))
    dof = max(len(x) - 2, 1)
    chi2 = float(np.sum(W * (y - A @ coef) ** 2)) * len(x) / dof
    return coef, cov * chi2 / len(x)


MAX_PLANES = 8  # planes of a stack measured, evenly spaced; each gives a full estimate


def calibrate_image(image: np.ndarray, *, em_gain: float | None = None, offset: float | None = None,
                    dark: np.ndarray | None = None) -> Calibration:
    """Estimate gain, offset and read noise from one image or stack of a real sample.

    Each plane (up to :data:`MAX_PLANES`, evenly spaced) is measured as ``synthcare fit``
    measures its image (:func:`simulate.fit_noise.measure_noise`: the noise line from the high
    frequencies of every pixel, the offset from the third cumulant or an amplifying detector's
    zero-photon peak, the read noise from the darkest regions); the planes' estimates are
    averaged by inverse variance.

    Parameters
    ----------
    image : (y, x) or (z, y, x) array in ADU, as the camera wrote it (no background subtraction).
    em_gain : the EM gain of an EMCCD, if any (the fitted slope is then ``gain·em_gain·F²``).
    offset : a known offset in ADU (e.g. from the camera's data sheet); else it is estimated.
    dark : dark frames, (y, x) or (n, y, x) in ADU: they fix offset and read noise.

    Raises
    ------
    SynthcareError : when the image has too little intensity variation to separate the
        parameters (the message says what to give instead).
    """
    stack = planes(image)
    check_raw(stack, "calibration")
    if dark is not None:
        d = planes(dark)
        offset = float(np.mean(d))  # the dark frames' read noise replaces the image's below
    picks = np.unique(np.linspace(0, len(stack) - 1, min(len(stack), MAX_PLANES)).round())
    measures = [measure_noise(stack[int(i)], offset=offset, em_register=em_gain is not None)
                for i in picks]
    slope, slope_se = _combine([(m.line.slope, math.sqrt(m.line.cov[0, 0])) for m in measures])
    if slope <= 0 or slope < 4.0 * slope_se:
        raise SynthcareError(
            "variance does not rise clearly with intensity in this image (fitted slope "
            f"{slope:.3g} ± {slope_se:.2g} ADU/e⁻): its brightness varies too little, "
            "or it is saturated or processed (background-subtracted, denoised, rescaled); use raw "
            "camera output with background and bright structure, or flat fields and dark frames")
    notes: list[str] = []
    if dark is not None:
        o, o_se = offset, float(np.std(d) / np.sqrt(d.size))
        var0 = float(np.var(d - d.mean(axis=0)) * d.shape[0] / (d.shape[0] - 1)) if d.shape[0] > 1 \
            else float(np.var(d))
        var0_se = var0 * np.sqrt(2.0 / d.size)
    else:
        o, o_se = _combine([(m.offset, m.offset_se) for m in measures])
        var0, var0_se = _combine([(m.read_adu2, m.read_adu2_se) for m in measures])
        if offset is None:
            notes.extend(measures[0].report[:1] if len(measures) == 1 else [
                f"offset {o:.4g} ± {o_se:.2g} ADU, the mean of {len(measures)} planes' "
                f"({min(m.offset for m in measures):.4g}–{max(m.offset for m in measures):.4g}; "
                f"the first plane's: {measures[0].report[0]})"])
    spread = measures[0].spread
    if em_gain is None and spread is not None:
        notes.append(f"the noise's skewness ({measures[0].skewness:.2f}; Poisson counts 1, an EM "
                     "register 1.5) says an amplifying detector: give --em-gain for an EMCCD, or "
                     "use `synthcare fit`, which simulates the multiplier")
    ratio = 1.0 if em_gain is None else em_gain * EM_EXCESS
    gain, gain_se = slope / ratio, slope_se / ratio
    if var0 <= 0:
        notes.append("the fitted read noise is zero or negative: the offset estimate is too high "
                     "or the camera is photon counting; read_noise set to 0")
        read_noise, rn_se = 0.0, float(np.sqrt(max(var0_se, 0.0)) / gain)
    else:
        read_noise = float(np.sqrt(var0) / gain)
        rn_se = float(read_noise * np.hypot(var0_se / (2 * var0), gain_se / gain))
    if dark is None and offset is None and rn_se > 0.1 * read_noise:
        notes.append(f"the offset from the image's skewness is uncertain (± {o_se:.2g} ADU), so the "
                     f"read noise is only known to ± {100 * rn_se / max(read_noise, 1e-12):.0f}%: "
                     "give --offset (data sheet) or --dark frames for a precise value")
    if read_noise * gain < 1.0:
        notes.append(f"read noise is {read_noise * gain:.2f} ADU, below one ADU: rounding to integer "
                     "ADU limits how well it can be measured")
    return Calibration(gain=float(gain), offset=float(o), read_noise=read_noise, em_gain=em_gain,
                       gain_se=float(gain_se), offset_se=float(o_se), read_noise_se=rn_se,
                       bins=np.concatenate([m.line.bins for m in measures]),
                       correlation=measures[0].correlation, notes=tuple(notes))


def _combine(estimates: list[tuple[float, float]]) -> tuple[float, float]:
    """The inverse-variance mean of (value, standard error) pairs and its standard error; the
    plain mean when any error is zero or unknown."""
    values = np.array([v for v, _ in estimates], np.float64)
    se = np.array([e for _, e in estimates], np.float64)
    if len(values) == 1:
        return float(values[0]), float(se[0])
    if np.all(np.isfinite(se)) and np.all(se > 0):
        w = 1.0 / se**2
        return float(np.sum(w * values) / np.sum(w)), float(1.0 / np.sqrt(np.sum(w)))
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def calibrate_flats(flats: list[np.ndarray], dark: np.ndarray, *,
                    em_gain: float | None = None) -> Calibration:
    """Classic photon-transfer calibration from flat-field stacks and dark frames.

    Parameters
    ----------
    flats : stacks (n ≥ 2, y, x) in ADU, each at one uniform illumination (several levels).
    dark : dark frames (n ≥ 2, y, x) in ADU.
    em_gain : the EM gain of an EMCCD, if any.

    Per-pixel temporal mean and variance remove fixed-pattern structure; the variance against
    mean line gives the gain, the dark frames the offset and read noise.
    """
    d = planes(dark)
    if d.shape[0] < 2 or any(np.ndim(f) != 3 or np.shape(f)[0] < 2 for f in flats):
        raise SynthcareError("flat fields and dark frames must be stacks of at least 2 frames each")
    pts = []
    for f in [d, *map(planes, flats)]:
        pts.append((f.mean(), np.mean(np.var(f, axis=0, ddof=1)), f[0].size))
    m, v, n = np.array(pts).T
    if len(m) < 3:
        raise SynthcareError("give at least two flat-field levels besides the dark frames")
    (slope, _), cov = _wls(m, v, n / (2.0 * v ** 2))
    ratio = 1.0 if em_gain is None else em_gain * EM_EXCESS
    gain = slope / ratio
    o = float(m[0])
    var0 = max(float(v[0]) - 1.0 / 12.0, 0.0)
    read_noise = float(np.sqrt(var0) / gain)
    gain_se = float(np.sqrt(cov[0, 0])) / ratio
    return Calibration(gain=float(gain), offset=o, read_noise=read_noise, em_gain=em_gain,
                       gain_se=gain_se, offset_se=float(np.sqrt(v[0] / d.size)),
                       read_noise_se=float(read_noise * np.hypot(1 / np.sqrt(2 * d.size), gain_se / gain)),
                       bins=np.stack([m, v, np.zeros_like(m), n], axis=1))


def plot(cal: Calibration, path: str | Path) -> Path:
    """A PNG of the per-group variance against mean with the fitted line, and the third cumulant
    crossing zero at the offset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, v, k3, _ = cal.bins.T
    slope = cal.gain * (1.0 if cal.em_gain is None else cal.em_gain * EM_EXCESS)
    var0 = (cal.read_noise * cal.gain) ** 2 + 1.0 / 12.0
    xs = np.linspace(min(cal.offset, m.min()), m.max(), 100)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    axes[0].plot(m, v, "o", ms=4, label="measured (groups of pixels)")
    axes[0].plot(xs, slope * (xs - cal.offset) + var0, "-",
                 label=f"gain {cal.gain:.3g} ADU/e⁻, read noise {cal.read_noise:.3g} e⁻")
    axes[0].set(xlabel="local mean (ADU)", ylabel="variance (ADU²)", title="photon transfer")
    axes[1].plot(m, k3, "o", ms=4)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].axvline(cal.offset, color="C1", label=f"offset {cal.offset:.4g} ADU")
    axes[1].set(xlabel="local mean (ADU)", ylabel="third cumulant (ADU³)",
                title="skewness crosses zero at the offset")
    for ax in axes:
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)
