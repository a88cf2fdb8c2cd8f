"""Training data streams, the loop, checkpoints, resume, and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore import train as train_mod
from restore.checkpoints import load_model
from restore.cli import main
from restore.config import load_run
from restore.data import (
    BatchStream,
    PatchDraws,
    SimulatedBatches,
    crop_patches,
    draw_patches,
    patch_indices,
    validation_set,
)
from restore.diskpairs import FolderPairs
from restore.train import ensure_trained, read_log, train, train_step
from restore.unet import UNet, UNetConfig
from simulate import SynthcareError, read_tiff, write_tiff
from simulate.dataset import write_dataset

TINY = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4", "train.filters=8",
        "train.val_patches=4", "train.workers=0", "train.patches_per_image=4"]


def _run(*extra):
    return load_run("denoise2d", None, [*TINY, *extra])


@pytest.mark.parametrize(("shape", "patch"), [((20, 24), (8, 8)), ((5, 12, 14), (3, 6, 6))])
def test_patch_indices_gather_the_flipped_and_turned_crop(shape, patch):
    image = np.random.default_rng(0).random(shape)
    rng = np.random.default_rng(1)
    nd = len(shape)
    for turns in range(4):
        for flip in rng.random((6, nd)) < 0.5:
            corner = [int(rng.integers(n - p + 1)) for n, p in zip(shape, patch, strict=True)]
            draws = PatchDraws(np.zeros(1, np.int64), np.array([corner]), flip[None],
                               np.array([turns]))
            got = image.reshape(-1)[patch_indices(shape, patch, draws)[0]]
            want = image[tuple(slice(c, c + p) for c, p in zip(corner, patch, strict=True))]
            want = np.rot90(np.flip(want, tuple(np.nonzero(flip)[0])), turns, axes=(-2, -1))
            assert np.array_equal(got, want)


def test_patches_come_from_the_foreground_with_balanced_augmentation():
    y = np.zeros((40, 40), np.float32)
    y[29:32, 4:7] = 1.0  # the only foreground: every 8×8 patch must reach into this spot
    x = 3 * y + 1
    xs, ys = crop_patches([(x, y)], 64, (8, 8), np.random.default_rng(2))
    assert xs.shape == ys.shape == (64, 1, 8, 8)
    assert np.all(ys.reshape(64, -1).max(axis=1) == 1.0)
    assert np.array_equal(xs, 3 * ys + 1)  # input and target: same place, same flips and turns
    spots = {tuple(np.argwhere(p[0] == 1.0).mean(axis=0)) for p in ys}
    assert len(spots) > 20  # the spot lands all over the patch: corners and flips vary
    draws = draw_patches(np.random.default_rng(3), 4000, 2, lambda i: np.zeros((1, 2), int),
                         (8, 8))
    assert abs(draws.flip.mean() - 0.5) < 0.02
    assert np.allclose(np.bincount(draws.turns, minlength=4) / 4000, 0.25, atol=0.02)
    assert abs(draws.image.mean() - 0.5) < 0.03
    no_turn = draw_patches(np.random.default_rng(3), 50, 1, lambda i: np.zeros((1, 3), int),
                           (4, 8, 6))
    assert not no_turn.turns.any()  # YX not square: no quarter turns


def test_batches_are_a_pure_function_of_seed_and_number():
    run = _run()
    batches = SimulatedBatches(run.sim, seed=3, batch_size=4, patch=(32, 32), patches_per_image=4)
    a0, _ = batches(0)
    a0_again, _ = batches(0)
    a1, _ = batches(1)
    assert a0.shape == (4, 1, 32, 32) and np.array_equal(a0, a0_again)
    assert not np.array_equal(a0, a1)
    other = SimulatedBatches(run.sim, seed=4, batch_size=4, patch=(32, 32), patches_per_image=4)
    assert not np.array_equal(other(0)[0], a0)
    # a pair serving several batches (patches_per_image > batch size) changes nothing about
    # purity: batch 1 is the same whether or not batch 0 (same pair) was made first
    shared = SimulatedBatches(run.sim, seed=3, batch_size=4, patch=(32, 32), patches_per_image=8)
    b1 = shared(1)[0]
    fresh = SimulatedBatches(run.sim, seed=3, batch_size=4, patch=(32, 32), patches_per_image=8)
    fresh(0)
    assert np.array_equal(fresh(1)[0], b1) and not np.array_equal(fresh(0)[0], b1)
    assert sorted(fresh._recent) == [0]  # batches 0 and 1 both came from pair 0


def test_worker_streams_are_disjoint_and_match_a_single_process():
    run = _run()
    batches = SimulatedBatches(run.sim, seed=0, batch_size=2, patch=(32, 32), patches_per_image=2)

    def first(n_workers, k=4):
        loader = torch.utils.data.DataLoader(
            BatchStream(batches, start=5), batch_size=None, num_workers=n_workers,
            multiprocessing_context="spawn" if n_workers else None)
        it = iter(loader)
        return [next(it)[0].numpy() for _ in range(k)]

    single, double = first(0), first(2)
    for a, b in zip(single, double, strict=True):
        assert np.array_equal(a, b)  # worker w makes batches start + w + k W, handed out in order
    assert np.array_equal(single[0], batches(5)[0])
    assert not any(np.array_equal(single[i], single[j]) for i in range(4) for j in range(i))


def test_validation_set_is_fixed_and_held_out():
    run = _run()
    v1 = validation_set(run.sim, seed=0, patch=(32, 32), n_patches=4)
    v2 = validation_set(run.sim, seed=0, patch=(32, 32), n_patches=4)
    assert np.array_equal(v1[0], v2[0])
    train_batch = SimulatedBatches(run.sim, seed=0, batch_size=4, patch=(32, 32))(0)[0]
    assert not np.array_equal(v1[0], train_batch)


def test_loop_learns_a_fixed_batch():
    torch.manual_seed(0)
    model = UNet(UNetConfig(ndim=2, depth=1, filters=8, residual=False))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((4, 1, 16, 16)).astype(np.float32))
    y = torch.from_numpy(np.roll(x.numpy(), 1, axis=-1) * 0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    losses = [float(train_step(model, opt, lambda p, t: (p - t).square().mean(), x, y))
              for _ in range(400)]  # the training loop's own step
    assert losses[-1] < losses[0] / 10


def test_ensure_trained_reuses_a_finished_run_and_extends_a_shorter_one(tmp_path):
    assert ensure_trained(_run("train.steps=3", "train.val_every=100"), tmp_path / "r",
                          progress=False)["steps"] == 3
    assert ensure_trained(_run("train.steps=3", "train.val_every=100"), tmp_path / "r",
                          progress=False) is None  # finished: reused, not retrained
    longer = ensure_trained(_run("train.steps=5", "train.val_every=100"), tmp_path / "r",
                            progress=False)
    assert longer["steps"] == 5 and [r["step"] for r in read_log(tmp_path / "r")] == [3, 5]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = train(_run("train.steps=6", "train.val_every=2"), tmp_path / "full", progress=False)
    part = train(_run("train.steps=4", "train.val_every=2"), tmp_path / "part", progress=False)
    assert full["steps"] == 6 and part["steps"] == 4
    train(_run("train.steps=6", "train.val_every=2"), tmp_path / "part", resume=True, progress=False)
    a, b = read_log(tmp_path / "full"), read_log(tmp_path / "part")
    assert [r["step"] for r in b] == [2, 4, 6]
    for ra, rb in zip(a, b, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-6)
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=1e-6)
    with pytest.raises(SynthcareError, match="another configuration"):
        train(_run("train.steps=8", "train.lr=1e-3"), tmp_path / "part", resume=True, progress=False)
    with pytest.raises(SynthcareError, match="already holds"):
        train(_run("train.steps=2"), tmp_path / "part", progress=False)


def test_ctrl_c_checkpoints_and_stops(tmp_path, monkeypatch):
    steps = []
    real_step = train_mod.train_step

    def counted(*args, **kwargs):
        steps.append(1)
        return real_step(*args, **kwargs)

    class CtrlCAfterTwoSteps:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        @property
        def requested(self):
            return len(steps) >= 2

    monkeypatch.setattr(train_mod, "train_step", counted)
    monkeypatch.setattr(train_mod, "_Interrupt", CtrlCAfterTwoSteps)
    summary = train(_run("train.steps=50", "train.val_every=25"), tmp_path / "r", progress=False)
    assert summary["status"] == "interrupted" and summary["steps"] == 2
    _, _, ck = load_model(tmp_path / "r")
    assert ck["step"] == 2  # nothing lost: the checkpoint holds the last finished step


def test_three_step_run_leaves_a_usable_model(tmp_path):
    train(_run("train.steps=3", "train.val_every=100"), tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "last.pt").exists() and (tmp_path / "r" / "best.pt").exists()
    model, run, _ = load_model(tmp_path / "r")
    assert run.train.steps == 3 and model.cfg.filters == 8


def test_real_pairs_folder(tmp_path):
    run = _run()
    write_dataset(run.sim, tmp_path / "pairs", 3, progress=False)
    ds = FolderPairs(tmp_path / "pairs", patch=(32, 32))
    x, _ = ds[0]
    assert x.shape == (1, 32, 32) and len(ds) == 3 * 32
    summary = train(_run("train.steps=2"), tmp_path / "r", pairs=tmp_path / "pairs", progress=False)
    assert summary["steps"] == 2
    (tmp_path / "pairs" / "GT" / "0001.tif").unlink()
    with pytest.raises(SynthcareError, match="no target of the same name"):
        FolderPairs(tmp_path / "pairs", patch=(32, 32))
    write_tiff(tmp_path / "pairs" / "GT" / "0001.tif", np.zeros((10, 10)), (0.1, 0.1))
    with pytest.raises(SynthcareError, match="differ in shape"):
        FolderPairs(tmp_path / "pairs", patch=(32, 32))
    with pytest.raises(SynthcareError, match="low/ and GT/"):
        FolderPairs(tmp_path, patch=(32, 32))


def test_cli_train_predict_evaluate(tmp_path, capsys):
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["train", "--preset", "denoise2d", *sets, "--steps", "2", "--out",
                 str(tmp_path / "run")]) == 0
    assert "finished: 2 steps" in capsys.readouterr().out
    img = np.random.default_rng(0).poisson(5, (3, 40, 50)).astype(np.float32) + 100
    write_tiff(tmp_path / "in.tif", img, (0.3, 0.1, 0.1))
    assert main(["predict", "--model", str(tmp_path / "run"), str(tmp_path / "in.tif"), "-o",
                 str(tmp_path / "out.tif")]) == 0
    out, meta = read_tiff(tmp_path / "out.tif")
    assert out.shape == img.shape and out.dtype == np.float32
    assert meta["spacing"] == pytest.approx((0.3, 0.1, 0.1))
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--n", "1", "--json",
                 str(tmp_path / "s.json")]) == 0
    assert "| network |" in capsys.readouterr().out
    assert main(["predict", "--model", str(tmp_path / "run"), str(tmp_path / "in.tif"), "-o",
                 str(tmp_path / "x.tif"), "--axes", "QYX"]) == 2
    assert "axes" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "nothing"), str(tmp_path / "in.tif"), "-o",
                 str(tmp_path / "x.tif")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_cosine_schedule_decays_from_lr_to_min_lr_over_the_budget():
    from restore.config import TrainConfig
    from restore.train import cosine_lr

    t = TrainConfig(steps=100, minutes=None, lr=1e-3, min_lr=1e-5, schedule="cosine")
    assert cosine_lr(t, 0, 0.0) == pytest.approx(1e-3)
    assert cosine_lr(t, 50, 0.0) == pytest.approx((1e-3 + 1e-5) / 2)
    assert cosine_lr(t, 100, 0.0) == pytest.approx(1e-5)
    timed = TrainConfig(steps=None, minutes=2.0, lr=1e-3, min_lr=0.0, schedule="cosine")
    assert cosine_lr(timed, 10, 60.0) == pytest.approx(5e-4)  # half the minutes: half the lr
