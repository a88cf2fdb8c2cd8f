"""Training losses. Predictions and targets are normalised tensors (N, C, ...).

``mae`` (CSBDeep's default) learns the median of the target's noise, ``mse`` its mean (use it
for Noise2Noise: the median of a low-count Poisson target is biased), ``laplace`` is the
negative log-likelihood of a Laplace distribution whose scale the network predicts in its second
half of channels (probabilistic output: mean and a per-pixel uncertainty). ``mse+ssim`` adds
``SSIM_WEIGHT · (1 − SSIM)`` to the squared error: the conditional mean that MSE learns is
smoother than the truth where the input leaves the structure uncertain (deconvolution), and
faint texture left in an empty background costs SSIM far more than MSE; the SSIM term (the
metric's own Gaussian window, 2D or 3D) pays for contrast and flat backgrounds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (1 − SSIM) weight of mse+ssim: where the target is flat, the SSIM term's gradient on a
# fluctuation of the prediction is about SSIM_WEIGHT / C2 ≈ 5.6 times the squared error's
SSIM_WEIGHT = 0.005
SSIM_SIGMA = 1.5  # px: the Gaussian window of restore.metrics.ssim
C1, C2 = 0.01**2, 0.03**2  # SSIM's constants for a data range of 1 (normalised images)


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return (pred - target).square().mean()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, ...) over every spatial axis, valid part only."""
    conv = (F.conv1d, F.conv2d, F.conv3d)[x.ndim - 3]
    for axis in range(2, x.ndim):
        shape = [1] * x.ndim
        shape[axis] = kernel.numel()
        x = conv(x, kernel.reshape(shape))
    return x


def ssim(pred: torch.Tensor, target: torch.Tensor, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM of normalised (N, C, ...) tensors (2D or 3D; data range 1) over the window's
    valid part, as :func:`restore.metrics.ssim` computes it; differentiable."""
    r = min(int(3.5 * sigma + 0.5), (min(pred.shape[2:]) - 1) // 2)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=pred.dtype, device=pred.device) ** 2
                  / (2 * sigma * sigma))
    k = k / k.sum()
    x = pred.reshape(-1, 1, *pred.shape[2:])
    y = target.reshape(-1, 1, *target.shape[2:])
    mx, my = _blur(x, k), _blur(y, k)
    vx = _blur(x * x, k) - mx * mx
    vy = _blur(y * y, k) - my * my
    cxy = _blur(x * y, k) - mx * my
    s = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    return s.mean()


def mse_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error plus ``SSIM_WEIGHT · (1 − SSIM)``."""
    return mse(pred, target) + SSIM_WEIGHT * (1 - ssim(pred, target))


def laplace_nll(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of −log p(target | μ, b) = log(2b) + |target − μ| / b, with ``pred`` = [μ, b] along
    channels. Minimised at μ = the target's median and b = the mean absolute deviation."""
    c = pred.shape[1] // 2
    mean, scale = pred[:, :c], pred[:, c:]
    return (torch.log(2 * scale) + (target - mean).abs() / scale).mean()


LOSSES = {"mae": mae, "mse": mse, "mse+ssim": mse_ssim, "laplace": laplace_nll}


def get(name: str):
    """A loss function by name."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def mean_of(pred: torch.Tensor, probabilistic: bool) -> torch.Tensor:
    """The point prediction (first half of the channels for a probabilistic network)."""
    return pred[:, : pred.shape[1] // 2] if probabilistic else pred

