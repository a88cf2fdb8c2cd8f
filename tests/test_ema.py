"""The weight average (train.ema): its update rule and what a run hands on."""

from __future__ import annotations

import pytest
import torch

from restore.checkpoints import load_checkpoint, load_model
from restore.config import load_run
from restore.ema import weight_average
from restore.train import train

TINY = ["shape=[32,32]", "train.patch=[16,16]", "train.batch_size=2", "train.filters=4",
        "train.val_patches=2", "train.steps=4", "train.val_every=2", "train.ema=0.5"]


def test_average_follows_the_warm_up_then_the_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    avg = weight_average(model, decay=0.5)
    expected = None
    for n, w in enumerate([4.0, 8.0, 2.0, 6.0, 10.0]):
        with torch.no_grad():
            model.weight.fill_(w)
        avg.update_parameters(model)
        # the first update copies; the next, after n updates, keeps d = min(0.5, (1+n)/(10+n))
        d = min(0.5, (1.0 + n) / (10.0 + n))
        expected = w if expected is None else d * expected + (1 - d) * w
        assert float(avg.module.weight) == pytest.approx(expected, rel=1e-6)
    assert float(model.weight) == 10.0  # the trained model itself is untouched


def test_checkpoints_hand_on_the_average_and_keep_the_raw_weights(tmp_path):
    train(load_run("denoise2d", None, TINY), tmp_path / "r", progress=False)
    ck = load_checkpoint(tmp_path / "r")  # best.pt, as predict reads it
    model, _, _ = load_model(tmp_path / "r")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ck["model"][k])  # predict and export load the average
    differs = [k for k in ck["model"] if not torch.equal(ck["model"][k], ck["raw_model"][k])]
    assert differs  # four steps of training moved the raw weights away from their average
    assert int(load_checkpoint(tmp_path / "r", "last.pt")["ema"]["n_averaged"]) == 4
