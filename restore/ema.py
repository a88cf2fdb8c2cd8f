"""Exponential moving average of a network's weights (Polyak averaging), ``train.ema``.

A short training run with Adam ends on a noisy iterate: on the fitted confocal run of
``benchmarks/realdata.py`` the validation PSNR of consecutive checkpoints, 100 steps apart,
swings by up to 1 dB. The average of the recent weights sits nearer the centre of that noise.
Validation, ``best.pt`` and every model a run hands on (predict, export, the next refinement
stage) use the averaged weights; the optimiser keeps training the raw ones, which checkpoints
also hold (``raw_model``) so that ``--resume`` goes on exactly.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def _warmed(decay: float):
    """The update ``avg ← d·avg + (1 − d)·w`` with ``d = min(decay, (1 + n) / (10 + n))`` after
    ``n`` updates: early in training, while the weights move fast, the average follows them."""

    def avg_fn(avg: torch.Tensor, w: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        k = float(n)
        d = min(decay, (1.0 + k) / (10.0 + k))
        return avg * d + w.detach() * (1.0 - d)

    return avg_fn


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An averaged copy of ``model`` (its buffers follow the model's); call
    ``update_parameters(model)`` after every optimiser step and use ``.module``."""
    avg = AveragedModel(model, avg_fn=_warmed(decay), use_buffers=True)
    avg.module.eval()
    return avg
