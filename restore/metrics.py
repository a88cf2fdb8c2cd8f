"""Image-quality metrics after the affine rescaling of the CARE paper.

The ground truth is normalised by its 0.1 and 99.9 percentiles (so its range is ~[0, 1]); the
image under test is then scaled and shifted to best match it in the least-squares sense (a
restoration is not penalised for a global gain or offset it could not know). On those:

* NRMSE = √MSE, in units of the ground truth's normalised range;
* PSNR = 10·log10(1 / MSE) dB (data range 1);
* SSIM (Wang et al. 2004) with a Gaussian window (σ = 1.5 px, K1 = 0.01, K2 = 0.03), data
  range 1, in 2D or 3D.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter


def normalise_gt(gt: np.ndarray, pmin: float = 0.1, pmax: float = 99.9) -> np.ndarray:
    """Ground truth mapped so its ``pmin``/``pmax`` percentiles become 0 and 1 (float64)."""
    gt = np.asarray(gt, np.float64)
    lo, hi = np.percentile(gt, [pmin, pmax])
    return (gt - lo) / max(hi - lo, 1e-12 * max(1.0, abs(hi)))


def fit_affine(x: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``a·x + b`` with (a, b) minimising ‖a·x + b − gt‖² (float64)."""
    x = np.asarray(x, np.float64)
    xm, gm = x.mean(), gt.mean()
    var = np.mean((x - xm) ** 2)
    a = np.mean((x - xm) * (gt - gm)) / var if var > 0 else 0.0
    return a * (x - xm) + gm


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of two 2D or 3D images (Gaussian window of ``sigma`` px)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma, mode="reflect", truncate=3.5)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = int(3.5 * sigma + 0.5)  # ignore the border, where the window is cut
    inner = tuple(slice(r, n - r) if n > 2 * r else slice(None) for n in s.shape)
    return float(s[inner].mean())


def psnr_from_mse(mse: float) -> float:
    """PSNR (dB) of a mean squared error in units of a data range of 1, floored at 200 dB."""
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def scores(image: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """{psnr, ssim, nrmse} of ``image`` against ``gt`` after the CARE normalisation."""
    image, gt = np.squeeze(image), np.squeeze(gt)
    if image.shape != gt.shape:
        raise ValueError(f"image {image.shape} and ground truth {gt.shape} differ in shape")
    g = normalise_gt(gt)
    x = fit_affine(image, g)
    mse = float(np.mean((x - g) ** 2))
    return {"psnr": psnr_from_mse(mse), "ssim": ssim(x, g),
            "nrmse": math.sqrt(mse)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average of several score dicts."""
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
