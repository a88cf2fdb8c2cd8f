"""On a real GPU (cupy and a CUDA device; skipped otherwise, and deselected by default: run
``pytest -m gpu``): the GPU forward model agrees with the CPU's and feeds training on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.config import load_run
from restore.data import SimulatedBatches
from restore.device_batches import DeviceBatches
from restore.train import read_log, train
from simulate import SimConfig, backend, simulate_pair, simulate_pairs

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(("task", "shape"), [("denoise", [64, 64]), ("denoise", [8, 48, 48]),
                                             ("upsample", [8, 48, 48]), ("isotropic", [8, 48, 48]),
                                             ("deconvolve", [8, 48, 48]), ("n2n", [64, 64])])
def test_gpu_pair_equals_the_cpu_pair(task, shape):
    cfg = SimConfig.from_dict({"task": task, "shape": shape, "sampling": {"z_factor": 2}})
    cpu = simulate_pair(cfg, 1, 2)
    gpu = simulate_pair(cfg.model_copy(update={"device": "cuda"}), 1, 2)
    assert backend.is_device_array(gpu.input)
    gpu = gpu.to_host()
    np.testing.assert_allclose(gpu.clean, cpu.clean, rtol=1e-4, atol=1e-4 * float(cpu.clean.max()))
    assert (gpu.input == cpu.input).mean() > 0.999  # the same Philox streams on both


def test_gpu_batch_of_pairs_stays_on_the_device():
    cfg = SimConfig.from_dict({"shape": [64, 64], "device": "cuda"})
    p = simulate_pairs(cfg, 0, range(8))
    assert backend.is_device_array(p.input) and p.input.shape == (8, 64, 64)


def test_device_batches_on_the_gpu_equal_the_cpu_batches():
    run = load_run("denoise2d", None, ["train.patch=[32,32]", "train.batch_size=8"])
    kw = dict(seed=0, batch_size=8, patch=(32, 32), patches_per_image=4)
    x, y = DeviceBatches(run.sim.model_copy(update={"device": "cuda"}), **kw)(1)
    assert x.is_cuda and y.is_cuda
    cx, cy = SimulatedBatches(run.sim, **kw)(1)
    np.testing.assert_allclose(x.cpu().numpy(), cx, atol=1e-3)
    np.testing.assert_allclose(y.cpu().numpy(), cy, atol=1e-3)


def test_training_on_gpu_pairs(tmp_path):
    run = load_run("denoise2d", None, ["device=cuda", "train.device=cuda", "train.steps=20",
                                       "train.val_every=10", "train.patch=[32,32]"])
    summary = train(run, tmp_path / "run", progress=False)
    assert summary["steps"] == 20
    assert all(np.isfinite(r["train_loss"]) for r in read_log(tmp_path / "run"))
    assert torch.cuda.is_available()
