"""Every workflow preset end to end on tiny sizes: train a few steps, the loss falls, evaluation
against its baselines runs, prediction has the right shape."""

from __future__ import annotations

import numpy as np
import pytest

from restore.config import load_run
from restore.evaluate import evaluate
from restore.train import read_log, train

TINY = ["train.filters=4", "train.batch_size=2", "train.val_patches=2", "train.steps=24",
        "train.val_every=8", "train.patches_per_image=2", "train.lr=3e-3"]
CASES = {
    "denoise2d": (["shape=[48,48]", "train.patch=[32,32]"], {"input", "gaussian"}),
    "n2n": (["shape=[48,48]", "train.patch=[32,32]"], {"input", "gaussian"}),
    "denoise3d": (["shape=[6,32,32]", "train.patch=[4,16,16]"], {"input", "gaussian"}),
    "deconvolve": (["shape=[6,32,32]", "train.patch=[4,16,16]"], {"input", "richardson-lucy"}),
    "upsample3d": (["shape=[4,32,32]", "train.patch=[8,16,16]"], {"linear", "cubic"}),
    "isotropic": (["shape=[4,32,32]", "train.patch=[16,16]"], {"linear", "cubic"}),
}


@pytest.mark.parametrize("preset", sorted(CASES))
def test_workflow_trains_and_evaluates(preset, tmp_path):
    sets, methods = CASES[preset]
    run = load_run(preset, None, [*sets, *TINY])
    summary = train(run, tmp_path / "run", progress=False)
    assert summary["steps"] == 24
    log = read_log(tmp_path / "run")
    assert all(np.isfinite(r["val_loss"]) for r in log)
    assert log[-1]["val_loss"] < log[0]["val_loss"]  # the loss falls
    result = evaluate(tmp_path / "run", 1, progress=False, keep=True)
    assert set(result["images"]) >= {"network", "ground truth"}
    assert methods | {"network"} <= {k for k, v in result.items() if isinstance(v, dict)}
    for m in methods | {"network"}:
        assert np.isfinite(result[m]["psnr"])
    net, ref = result["images"]["network"], result["images"]["ground truth"]
    assert net.shape == ref.shape
    if preset in ("upsample3d", "isotropic"):
        assert ref.shape[0] == (4 - 1) * run.sampling.z_factor + 1
