"""Training losses. Predictions and targets are normalised tensors (N, C, ...).

``mae`` (CSBDeep's default) learns the median of the target's noise, ``mse`` its mean (use it
for Noise2Noise: the median of a low-count Poisson target is biased), ``laplace`` is the
negative log-likelihood of a Laplace distribution whose scale the network predicts in its second
half of channels (probabilistic output: mean and a per-pixel uncertainty).
"""

from __future__ import annotations

import torch


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return (pred - target).square().mean()


def laplace_nll(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of −log p(target | μ, b) = log(2b) + |target − μ| / b, with ``pred`` = [μ, b] along
    channels. Minimised at μ = the target's median and b = the mean absolute deviation."""
    c = pred.shape[1] // 2
    mean, scale = pred[:, :c], pred[:, c:]
    return (torch.log(2 * scale) + (target - mean).abs() / scale).mean()


LOSSES = {"mae": mae, "mse": mse, "laplace": laplace_nll}


def get(name: str):
    """A loss function by name."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def mean_of(pred: torch.Tensor, probabilistic: bool) -> torch.Tensor:
    """The point prediction (first half of the channels for a probabilistic network)."""
    return pred[:, : pred.shape[1] // 2] if probabilistic else pred

