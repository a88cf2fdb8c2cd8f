"""The GPU code path, checked on the CPU: every xp-generic stage with numpy, batched pairs equal
single pairs, device batches equal the CPU batches, and a clear error without a GPU."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch
from scipy.interpolate import make_interp_spline

from restore import sources as sources_mod
from restore.config import load_run
from restore.data import SimulatedBatches
from restore.device_batches import DeviceBatches
from restore.train import read_log, train
from simulate import ConfigError, SimConfig, SynthcareError, backend, simulate_pair, simulate_pairs
from simulate.camera import Camera
from simulate.sampling import fold_table, fold_targets, interpolate_axis

SMALL3D = [6, 32, 32]


@pytest.mark.parametrize(("task", "shape", "extra"), [
    ("denoise", [40, 36], {"sample": {"background_smooth": 0.5}}),
    ("denoise", SMALL3D, {"target": {"noise": "high"}}),
    ("deconvolve", SMALL3D, {}),
    ("n2n", [40, 36], {}),
    ("upsample", SMALL3D, {}),
    ("isotropic", SMALL3D, {}),
])
def test_a_batch_of_pairs_equals_the_pairs_made_one_by_one(task, shape, extra):
    cfg = SimConfig.from_dict({"task": task, "shape": shape, "sampling": {"z_factor": 3}, **extra})
    batch = simulate_pairs(cfg, 4, [2, 0, 5])
    for b, index in enumerate([2, 0, 5]):
        one = simulate_pair(cfg, 4, index)
        for name in ("input", "target", "clean"):
            got, want = getattr(batch, name)[b], getattr(one, name)
            assert got.shape == want.shape
            # same streams, same photons: the noise draws agree except where float rounding
            # moves a Poisson draw across a boundary (none expected at this size)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3 * float(np.abs(want).max()))
    assert not np.allclose(batch.input[0], batch.input[1])


def test_fold_table_lists_every_landing_frequency_once_in_order():
    rows, cols = np.meshgrid(np.arange(12), np.arange(5), indexing="ij")
    direct, _ = fold_targets(12, 8, 2, rows.ravel(), cols.ravel())
    table = fold_table(direct, (6, 3))
    n = len(direct)
    listed = table[table < n]
    assert sorted(listed.tolist()) == np.nonzero(direct[:, 1] >= 0)[0].tolist()
    for t, row in enumerate(table):
        src = row[row < n]
        assert np.all(np.diff(src) > 0)
        assert np.all(direct[src, 0] * 3 + direct[src, 1] == t)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_linear_interpolation_matches_the_order_one_spline(axis):
    a = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    got = interpolate_axis(a, 3, axis=axis, order=1)
    n = a.shape[axis]
    want = make_interp_spline(np.arange(n) * 3, a, k=1, axis=axis)(np.arange((n - 1) * 3 + 1))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.take(got, np.arange(n) * 3, axis=axis), a)  # exact at the samples


def test_capture_with_one_generator_per_pair_equals_separate_captures():
    cam = Camera(qe=0.7, gain=2.0, offset=100, read_noise=2.0, em_gain=None)
    photons = np.random.default_rng(1).random((3, 2, 16, 16)).astype(np.float32) * 50
    seeds = [11, 12, 13]
    batch = cam.capture(photons, [np.random.default_rng(s) for s in seeds])
    for b, s in enumerate(seeds):
        assert np.array_equal(batch[b], cam.capture(photons[b], np.random.default_rng(s)))
    with pytest.raises(SynthcareError, match="one entry per generator"):
        cam.capture(photons[:2], [np.random.default_rng(s) for s in seeds])


def _run(*extra):
    return load_run("denoise2d", None, ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4",
                                        "train.filters=8", "train.val_patches=4",
                                        "train.patches_per_image=3", *extra])


@pytest.mark.parametrize("preset_extra", [(), ("task=isotropic", "shape=[6,48,48]",
                                               "sampling.z_factor=3"),
                                          ("camera.correlation=[0.1,-0.05]",)])
def test_device_batches_equal_the_cpu_batches(preset_extra):
    run = _run(*preset_extra)
    kw = dict(seed=3, batch_size=4, patch=(32, 32), patches_per_image=3, jitter=2.0)
    cpu = SimulatedBatches(run.sim, **kw)
    dev = DeviceBatches(run.sim, chunk=2, **kw)
    for b in (0, 1, 2, 5, 1):
        x, y = dev(b)
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (4, 1, 32, 32)
        want_x, want_y = cpu(b)
        np.testing.assert_allclose(x.numpy(), want_x, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-5, atol=1e-5)


def test_geometry_drawn_by_worker_processes_gives_the_same_batches():
    run = _run()
    kw = dict(seed=5, batch_size=4, patch=(32, 32), patches_per_image=2)
    alone = DeviceBatches(run.sim, chunk=3, **kw)
    pooled = DeviceBatches(run.sim, chunk=3, workers=2, **kw)
    try:
        for b in (0, 1, 2, 3, 7):  # chunks 0, 1 (drawn ahead while chunk 0 was used), then 2
            for got, want in zip(pooled(b), alone(b), strict=True):
                assert torch.equal(got, want)
    finally:
        pooled.close()


@pytest.mark.parametrize(("per_image", "chunk", "workers"), [(2, 2, 1), (1, 1, 0), (9, 2, 0)])
def test_the_next_chunk_prepared_by_a_thread_gives_the_same_batches(per_image, chunk, workers):
    # (1, 1): a batch spans 4 chunks, so the next plan is not that of the next chunk
    run = _run()
    kw = dict(seed=5, batch_size=4, patch=(32, 32), patches_per_image=per_image)
    alone = DeviceBatches(run.sim, chunk=chunk, **kw)
    ahead = DeviceBatches(run.sim, chunk=chunk, prefetch=True, workers=workers, **kw)
    try:
        for b in (0, 1, 2, 3, 4, 9, 5, 0, 1):  # in order (prefetched), skipping ahead, going back
            for got, want in zip(ahead(b), alone(b), strict=True):
                assert torch.equal(got, want)
    finally:
        ahead.close()
    assert ahead._ahead is None and ahead._pool is None and not ahead._pending
    for got, want in zip(ahead(6), alone(6), strict=True):  # still usable, without the thread
        assert torch.equal(got, want)


def test_training_fed_by_device_batches(tmp_path, monkeypatch):
    # the GPU branch of the loop (no DataLoader, tensors straight from the simulator), on numpy
    monkeypatch.setattr(sources_mod, "device_pairs", lambda sims: True)
    run = _run("train.steps=12", "train.val_every=6", "train.lr=3e-3")
    summary = train(run, tmp_path / "run", progress=False)
    log = read_log(tmp_path / "run")
    assert summary["steps"] == 12 and len(log) == 2
    assert all(np.isfinite(r["train_loss"]) for r in log)


def test_cuda_without_cupy_or_gpu_is_one_clear_error():
    if backend.gpu_available():
        pytest.skip("a GPU is present")
    cfg = SimConfig.from_dict({"shape": [32, 32], "device": "cuda"})
    with pytest.raises(SynthcareError, match="cuda"):
        simulate_pair(cfg, 0, 0)
    with pytest.raises(ConfigError, match="device"):
        SimConfig.from_dict({"shape": [32, 32], "device": "gpu"})


def test_device_flag_on_the_command_line(capsys):
    from restore.cli import main

    if backend.gpu_available():
        pytest.skip("a GPU is present")
    assert main(["simulate", "--preset", "denoise2d", "--device", "cuda", "--preview",
                 "/tmp/never.png"]) == 2
    assert "cupy" in capsys.readouterr().err


def test_a_plan_moves_to_a_device_once():
    from types import SimpleNamespace

    from simulate import convolve
    from simulate.sampling import Grid

    cfg = SimConfig.from_dict({"shape": [32, 32]})
    grid = Grid.from_config(cfg)
    plan = convolve.plan((convolve.optics_key(cfg.optics, 2),), grid)
    assert convolve.on_device(plan, np) is plan
    fake = SimpleNamespace(asarray=lambda a: np.array(a, copy=True))  # stands in for cupy
    moved = convolve.on_device(plan, fake)
    assert convolve.on_device(plan, fake) is moved and moved is not plan
    assert np.array_equal(moved.otfs[0], plan.otfs[0]) and moved.otfs[0] is not plan.otfs[0]


def test_chunk_size_fits_the_device_memory_budget():
    from simulate import chunk_size
    from simulate.pairs import CHUNK_BYTES, MAX_CHUNK
    from simulate.sampling import Grid

    small = SimConfig.from_dict({"shape": [64, 64]})
    big = SimConfig.from_dict({"shape": [32, 256, 256], "sampling": {"oversample": 2}})
    assert chunk_size(small) == 1  # the CPU gains nothing from batching
    assert chunk_size(small.model_copy(update={"device": "cuda"})) == MAX_CHUNK
    n = chunk_size(big.model_copy(update={"device": "cuda"}))
    g = Grid.from_config(big)
    assert 1 <= n < MAX_CHUNK and n * 24 * g.z_fft * g.truth_shape[1] * g.truth_shape[2] <= CHUNK_BYTES


def test_batched_percentile_normalisation_equals_one_image_at_a_time():
    from restore.normalize import percentile_affine, percentile_affines

    rng = np.random.default_rng(0)
    stack = rng.gamma(2.0, 10.0, (5, 17, 23)).astype(np.float32)
    stack[3] = 7.0  # a constant image: scale floors instead of dividing by zero
    q = np.stack([rng.uniform(0, 5, 5), rng.uniform(95, 100, 5)], axis=1)
    lo, scale = percentile_affines(stack, q)
    for i in range(5):
        want = percentile_affine(stack[i], *q[i])
        assert lo[i] == pytest.approx(want.lo, rel=1e-6, abs=1e-6)
        assert scale[i] == pytest.approx(want.scale, rel=1e-5)


def test_foreground_positions_of_a_stack_match_a_brute_force_search():
    from restore.data import foreground_positions_stack

    rng = np.random.default_rng(1)
    stack = rng.random((3, 30, 28)).astype(np.float32) ** 8
    stack[1] = 0.0  # no foreground: every position qualifies
    got = foreground_positions_stack(stack, (8, 6), 0.4)
    for img, pos in zip(stack, got, strict=True):
        peak = np.percentile(img, 99.9)
        want = [(y, x) for y in range(30 - 8 + 1) for x in range(28 - 6 + 1)
                if peak <= 0 or img[y:y + 8, x:x + 6].max() >= 0.4 * peak]
        assert [tuple(p) for p in pos] == want
    assert len(got[1]) == 23 * 23 and 0 < len(got[0]) < 23 * 23


@pytest.mark.parametrize("shape", [[40, 36], [6, 32, 32]])
def test_the_gpus_gather_fold_equals_the_cpu_kernel(shape):
    from simulate import convolve
    from simulate.sampling import Grid, fold, fold_gather

    cfg = SimConfig.from_dict({"shape": shape})
    grid = Grid.from_config(cfg)
    plan = convolve.plan((convolve.optics_key(cfg.optics, cfg.ndim),), grid)
    truth = np.random.default_rng(0).random((2, *grid.truth_shape), dtype=np.float32)
    spec = convolve.truth_spectrum(truth, plan, grid)
    out_shape = (grid.z_fft, grid.padded[0], grid.padded[1] // 2 + 1)
    a = fold(spec, plan.otfs[0], plan.direct, plan.mirror, out_shape)
    b = fold_gather(spec, plan.otfs[0], plan.direct, plan.mirror, out_shape)
    assert a.shape == b.shape == (2, *out_shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * float(np.abs(a).max()))


def test_an_abandoned_device_batches_stops_its_thread():
    # e.g. an error in the training loop before close(): the thread must not outlive the object
    run = _run()
    d = DeviceBatches(run.sim, seed=0, batch_size=4, patch=(32, 32), chunk=2, prefetch=True)
    d(0)
    d._pending[next(iter(d._pending))].result()  # let the prefetch finish
    assert any(t.name.startswith("synthcare-chunks") for t in threading.enumerate())
    del d
    gc.collect()
    assert not any(t.name.startswith("synthcare-chunks") for t in threading.enumerate())
