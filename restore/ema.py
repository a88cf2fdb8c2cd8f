"""An exponential moving average of the network's weights (``train.ema``).

With a constant (or plateau) learning rate, the weights of the last step carry the noise of the
last few hundred batches; their running average is a better network for the same steps (Polyak
averaging). With ``train.ema = d``, every step moves the average a fraction ``1 − d_k`` towards
the trained weights, ``d_k = min(d, (1 + k) / (10 + k))`` after ``k`` updates (so the first
steps are not dominated by the initial weights); buffers (batch-norm statistics) are copied.
Validation, ``best.pt``/``last.pt``'s ``model`` entry, and hence ``predict``, ``evaluate``
and ``export``, use the average; the trained weights themselves are kept in the checkpoint for
``--resume``.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The averaged copy (``module``) of a model and the number of updates it has had."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"train.ema must lie in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average towards ``model``'s current weights (one training step)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for avg, cur in zip(self.module.parameters(), model.parameters(), strict=True):
            avg.lerp_(cur.detach(), 1.0 - d)
        for avg, cur in zip(self.module.buffers(), model.buffers(), strict=True):
            avg.copy_(cur)

    def state(self) -> dict:
        """What a checkpoint keeps to resume the average."""
        return {"ema_updates": self.updates}

    def restore(self, weights: dict, state: dict) -> None:
        """The average saved in a checkpoint (its ``model`` entry and :meth:`state`)."""
        self.module.load_state_dict(weights)
        self.updates = int(state["ema_updates"])
