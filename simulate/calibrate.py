"""Camera calibration: gain, offset and read noise from images, for the simulator's camera section.

A camera pixel records ``ADU = g·(e + r) + o`` with ``e`` Poisson electrons, ``r`` Gaussian read
noise (σ e⁻ rms), gain ``g`` (ADU/e⁻) and offset ``o`` (ADU). Its first three cumulants, as
functions of the mean ``m``, are straight lines:

* variance ``v(m) = g·(m − o) + g²σ²`` (the photon-transfer line; with an EM register of gain
  ``G`` and excess noise factor ``F² = 2`` the slope is ``g·G·F²``, read noise unchanged);
* third cumulant ``κ₃(m) = g²·(m − o)`` (``1.5·(gGF²)²·(m − o)`` with EM gain): Gaussian read
  noise has none, so it crosses zero exactly at the offset.

The variance line alone cannot separate offset from read noise (its intercept is ``g²σ² − g·o``);
the third cumulant can, which is what makes a single image enough. Local moments come from a
residual that removes the (smooth, band-limited) signal: each pixel minus its least-squares cubic
prediction from the rest of its 5×5 window, which keeps 77% of a pixel's skewness (a separable
high-pass kernel such as Immerkær's keeps 17%).
Pixels are grouped by their local mean; in each group the residual's variance and third
cumulant are measured after removing structure (windows where the residual of a smoothed
copy exceeds what noise explains) and outliers (hot pixels, saturation). Straight lines are fitted by weighted
least squares with the weights the sampling theory of moments gives.

Dark frames (no light) give the offset and the read noise in ADU directly; with them the image
(or flat fields) only has to supply the slope.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .errors import SynthcareError
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
    notes: tuple[str, ...] = ()

    def camera_section(self) -> dict:
        """The ``camera`` settings the simulator loads (``--camera FILE``)."""
        cam = {"gain": round(self.gain, 4), "offset": round(self.offset, 2),
               "read_noise": round(self.read_noise, 3)}
        if self.em_gain is not None:
            cam["em_gain"] = self.em_gain
        return cam



# ---------------------------------------------------------------------------------------------
# local statistics

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


def _planes(image: np.ndarray) -> np.ndarray:
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


def local_samples(image: np.ndarray, *, structure: float = 3.0, decorrelate: bool = False,
                  ) -> Samples:
    """Per kept pixel: a grouping key, the local mean, the residual and the pixel value.

    The residual is the pixel minus its cubic prediction from the rest of its 5×5 window; the
    local mean is that window's mean (uncorrelated with the residual); the key is the mean of
    the 9×9 ring around the window (independent of both). A pixel is kept when the same residual
    operator on a lightly smoothed copy stays below ``structure`` noise standard deviations (no
    signal edge there), and when no value in its window is clipped (zero, or a repeated image
    maximum: saturation).

    The smoothed copy shares the window's noise (its residual correlates 0.59 with the pixel's),
    so the test also trims the residual's tails. ``decorrelate`` removes that part of the
    statistic (its regression on the pixel's residual), leaving one uncorrelated with it
    (independent for Gaussian noise): for the third cumulant, whose Poisson tail the plain test
    trimmed (offsets read 1–3 e⁻ high on flat images), at the cost of some structure left in
    (:func:`simulate.fit_noise.offset_at_skewness` removes its effect). The variance's flat-pixel
    fit (:func:`calibrate_image`) keeps the plain test, with which its gain was tested.
    """
    planes = _planes(image)
    k2 = _STAT_K2_DECORRELATED if decorrelate else _STAT_K2
    keys, means, resid, pixels = [], [], [], []
    for p in planes:
        m5 = ndimage.uniform_filter(p, 5, mode="reflect")
        r = ndimage.correlate(p, _KERNEL, mode="reflect")
        # structure: the same residual operator on a lightly smoothed copy (less noise, same
        # frequencies); its noise-only spread from the local robust noise level
        var_loc = ndimage.median_filter(r * r, size=9, mode="reflect") / 0.4549 / KERNEL_K2
        stat = ndimage.correlate(ndimage.gaussian_filter(p, 1.0, mode="reflect"), _KERNEL,
                                 mode="reflect")
        if decorrelate:
            stat -= _STAT_BETA * r
        keep = stat * stat < structure ** 2 * k2 * var_loc
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


def _stat_kernels() -> tuple[float, float, float]:
    """The structure statistic's noise (per unit pixel variance): its variance, its regression
    coefficient on the pixel's own residual, and the variance of what is left without that."""
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    ws = ndimage.correlate(ndimage.gaussian_filter(delta, 1.0, mode="constant"), _KERNEL,
                           mode="constant")
    wr = ndimage.correlate(delta, _KERNEL, mode="constant")
    beta = float(np.sum(ws * wr) / np.sum(wr * wr))
    return float(np.sum(ws ** 2)), beta, float(np.sum((ws - beta * wr) ** 2))


_STAT_K2, _STAT_BETA, _STAT_K2_DECORRELATED = _stat_kernels()


def binned_moments(keys: np.ndarray, means: np.ndarray, resid: np.ndarray, *, n_bins: int = 40,
                   min_count: int = 500, clip: float = 2.5) -> np.ndarray:
    """Group pixels by local mean (equal counts) and measure, per group, the pixel variance and
    third cumulant implied by the residual (outliers beyond ``clip`` robust σ removed).

    Returns an (n, 4) array: mean (ADU), variance (ADU²), third cumulant (ADU³), pixels.
    """
    if means.size < 2 * min_count:
        raise SynthcareError(f"calibration found only {means.size} usable pixels (need at least "
                             f"{2 * min_count}): give a larger image or a stack, with flat regions")
    order = np.argsort(keys, kind="stable")
    n_bins = int(min(n_bins, means.size // min_count))
    rows = []
    for idx in np.array_split(order, n_bins):
        r = resid[idx]
        med = np.median(r)
        mad = 1.4826 * np.median(np.abs(r - med))
        if mad <= 0:
            continue
        r = r[np.abs(r - med) < clip * mad]
        c = r - r.mean()
        f2, f3 = _clip_factors(clip)
        rows.append((means[idx].mean(), np.mean(c ** 2) / (f2 * KERNEL_K2),
                     np.mean(c ** 3) / (f3 * KERNEL_K3), r.size))
    return np.array(rows, dtype=np.float64)


def _clip_factors(clip: float) -> tuple[float, float]:
    """The fractions of a near-Gaussian variable's variance and third cumulant that remain after
    discarding values beyond ``clip`` standard deviations (Gram–Charlier to first order in the
    skewness, so the third cumulant keeps its zero crossing)."""
    z = np.linspace(-clip, clip, 20001)
    phi = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    mass = np.trapezoid(phi, z)
    f2 = np.trapezoid(z * z * phi, z) / mass
    f3 = np.trapezoid(z ** 3 * (z ** 3 - 3 * z) * phi, z) / 6.0 / mass
    return float(f2), float(f3)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line ``y = a·x + b``; returns (a, b) and their covariance."""
    A = np.stack([x, np.ones_like(x)], axis=1)
    W = w / w.sum()
    cov = np.linalg.inv(A.T @ (A * W[:, None]))
    coef = cov @ (A.T @ (W * y))
    dof = max(len(x) - 2, 1)
    chi2 = float(np.sum(W * (y - A @ coef) ** 2)) * len(x) / dof
    return coef, cov * chi2 / len(x)


# ---------------------------------------------------------------------------------------------
# estimators

def calibrate_image(image: np.ndarray, *, em_gain: float | None = None, offset: float | None = None,
                    dark: np.ndarray | None = None) -> Calibration:
    """Estimate gain, offset and read noise from one image or stack of a real sample.

    Parameters
    ----------
    image : (y, x) or (z, y, x) array in ADU, as the camera wrote it (no background subtraction).
    em_gain : the EM gain of an EMCCD, if any (the fitted slope is then ``gain·em_gain·F²``).
    offset : a known offset in ADU (e.g. from the camera's data sheet); else it is estimated.
    dark : dark frames, (y, x) or (n, y, x) in ADU: they fix offset and read noise.

    Raises
    ------
    SynthcareError : when the image has too little intensity variation or too few flat pixels to
        separate the parameters (the message says what to give instead).
    """
    samples = local_samples(image)
    bins = binned_moments(samples.keys, samples.means, samples.resid)
    m, v, k3, n = bins.T
    if len(m) < 4:
        raise SynthcareError("calibration needs at least 4 groups of 500 flat pixels; this image "
                             "gives fewer: use a larger image or a stack")
    w_v = n / (2.0 * v ** 2)  # sampling variance of a variance: 2σ⁴/n
    (slope, icept), cov_v = _wls(m, v, w_v)
    if slope <= 0 or slope < 4.0 * np.sqrt(cov_v[0, 0]):
        raise SynthcareError(
            "variance does not rise clearly with intensity in this image (fitted slope "
            f"{slope:.3g} ± {np.sqrt(cov_v[0, 0]):.2g} ADU/e⁻): its brightness varies too little, "
            "or it is saturated or processed (background-subtracted, denoised, rescaled); use raw "
            "camera output with background and bright structure, or flat fields and dark frames")
    notes = []
    if dark is not None:
        d = _planes(dark)
        o = float(np.mean(d))
        var0 = float(np.var(d - d.mean(axis=0)) * d.shape[0] / (d.shape[0] - 1)) if d.shape[0] > 1 \
            else float(np.var(d))
        o_se = float(np.std(d) / np.sqrt(d.size))
        var0_se = var0 * np.sqrt(2.0 / d.size)
    else:
        if offset is not None:
            o, o_se = float(offset), 0.0
        else:
            w_k = n / (6.0 * v ** 3)  # sampling variance of a third moment: 6σ⁶/n
            (g3, b3), cov_k = _wls(m, k3, w_k)
            # the offset lies between the variance line's zero (no read noise: the lowest the
            # data allow) and the darkest regions' mean (no signal there: the highest)
            lowest, highest = float(-icept / slope), float(m.min())
            o = float(-b3 / g3) if g3 > 0 else np.inf
            tol = 3.0 * float(np.sqrt(max(v.min(), 0.0)) / np.sqrt(n.min()))
            if g3 <= 0 or g3 < 3.0 * np.sqrt(cov_k[0, 0]) or not lowest - tol <= o <= highest + tol:
                # offset-subtracted, clipped or too flat: the skewness cannot place the offset
                o = plausible_offset(lowest, highest, slope)
                o_se = max(highest - lowest, 0.0) / 2
                notes.append(f"the image's skewness could not place the offset (offset-subtracted "
                             f"or clipped?); used {o:.4g} ADU, between {lowest:.4g} (no read noise) "
                             f"and {highest:.4g} (no signal in the darkest regions); give --offset "
                             "or --dark for exact values")
            else:
                # delta method for -b/a
                J = np.array([b3 / g3 ** 2, -1.0 / g3])
                o_se = float(np.sqrt(J @ cov_k @ J))
        var0 = float(slope * o + icept) - 1.0 / 12.0  # remove rounding to integer ADU
        J = np.array([o, 1.0])
        var0_se = float(np.sqrt(J @ cov_v @ J + (slope * o_se) ** 2))
    ratio = 1.0 if em_gain is None else em_gain * EM_EXCESS
    gain = slope / ratio
    gain_se = float(np.sqrt(cov_v[0, 0])) / ratio
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
    return Calibration(gain=float(gain), offset=o, read_noise=read_noise, em_gain=em_gain,
                       gain_se=gain_se, offset_se=o_se, read_noise_se=rn_se, bins=bins,
                       notes=tuple(notes))


TYPICAL_READ_NOISE = 1.6  # e⁻ rms: a scientific CMOS or cooled CCD, when nothing says otherwise
AMPLIFIED_GAIN = 3.0  # ADU per effective e⁻ above which a detector amplifies (EMCCD, PMT, HyD)


def plausible_offset(lowest: float, highest: float, slope: float) -> float:
    """An offset between the bounds the data allow: the variance line's zero plus a typical
    read noise (none for an amplifying detector, whose read noise is negligible in electrons),
    kept below the darkest regions' mean."""
    read = 0.0 if slope > AMPLIFIED_GAIN else TYPICAL_READ_NOISE
    return float(min(max(lowest + slope * read**2, lowest), max(highest, lowest)))


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
    d = _planes(dark)
    if d.shape[0] < 2 or any(np.ndim(f) != 3 or np.shape(f)[0] < 2 for f in flats):
        raise SynthcareError("flat fields and dark frames must be stacks of at least 2 frames each")
    pts = []
    for f in [d, *map(_planes, flats)]:
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
