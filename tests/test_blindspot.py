"""Blind-spot (Noise2Void) patches of raw images mixed into simulated batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.blindspot import RADIUS, BlindSpotPatches, mask, masked
from restore.config import load_run
from restore.losses import mse
from restore.normalize import PMAX, PMIN, percentile_affine
from restore.refine import stage_runs
from restore.sources import simulated_data
from restore.train import train
from simulate import SynthcareError, simulate_pair, write_tiff

TINY = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4", "train.filters=8",
        "train.val_patches=4", "train.workers=0", "train.patches_per_image=4", "train.val_every=5"]


def test_one_pixel_per_cell_is_masked_with_a_neighbours_raw_value():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 40, 40)).astype(np.float32)  # distinct values: a value names its pixel
    x, y = mask(raw, np.random.default_rng(1), 8)
    supervised = np.isfinite(y)
    for n in range(3):
        cells = supervised[n].reshape(5, 8, 5, 8).sum(axis=(1, 3))
        assert np.all(cells == 1)
        for py, px in np.argwhere(supervised[n]):
            assert y[n, py, px] == raw[n, py, px] and x[n, py, px] != raw[n, py, px]
            near = raw[n, max(0, py - RADIUS): py + RADIUS + 1, max(0, px - RADIUS): px + RADIUS + 1]
            assert x[n, py, px] in near
    assert np.array_equal(x[~supervised], raw[~supervised])


def test_masked_loss_is_the_plain_loss_on_full_targets_and_averages_per_patch():
    pred, target = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    assert masked("mse")(pred, target) == pytest.approx(float(mse(pred, target)), rel=1e-6)
    target[2:, 0, 1:] = float("nan")  # the last two patches supervise their first row only
    per_patch = [((pred[i, 0] - target[i, 0]) ** 2)[: 8 if i < 2 else 1].mean() for i in range(4)]
    assert masked("mse")(pred, target) == pytest.approx(float(sum(per_patch) / 4), rel=1e-6)
    with pytest.raises(SynthcareError, match="mse or mae"):
        masked("laplace")


def test_a_blind_spot_loss_rewards_denoising_not_copying_the_pixel():
    """The Noise2Void property on a smooth signal in white noise: against the raw image at every
    pixel, copying the input (identity) is perfect; on blind-spot patches copying scores the
    noise twice over (the masked pixel holds a neighbour's noise), and a 5×5 mean, which
    removes most of the noise, scores close to the noise variance alone."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    clean = 10 * np.sin(xx / 40.0) * np.cos(yy / 50.0)
    raw = (clean + rng.normal(size=clean.shape)).astype(np.float32)
    patches = BlindSpotPatches([raw], (32, 32), seed=0, pixels=0.05)
    noise_var = float(np.var(percentile_affine(raw)(raw) - percentile_affine(raw)(clean)))
    x, y = (torch.from_numpy(a) for a in patches(0, 64))
    full = torch.where(torch.isfinite(y), y, x)  # the raw patches
    box = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    loss = masked("mse")
    assert float(loss(full, full)) == 0.0
    assert float(loss(x, y)) / noise_var == pytest.approx(2.0, rel=0.15)
    assert float(loss(box, y)) / noise_var == pytest.approx(1.0, abs=0.15)


def test_patches_are_a_pure_function_of_the_batch_and_normalised_like_prediction():
    raw = np.random.default_rng(2).gamma(2.0, 50.0, (100, 120)).astype(np.float32) + 100
    a = BlindSpotPatches([raw], (32, 32), seed=3)
    b = BlindSpotPatches([raw], (32, 32), seed=3)
    x1, y1 = a(7, 5)
    x2, y2 = b(7, 5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2, equal_nan=True)
    assert not np.array_equal(x1, a(8, 5)[0])
    assert np.percentile(a.images[0], PMIN) == pytest.approx(0, abs=1e-5)
    assert np.percentile(a.images[0], PMAX) == pytest.approx(1, abs=1e-5)


def _raw(tmp_path):
    run = load_run("denoise2d", None, [*TINY, "shape=[96,96]"])
    path = tmp_path / "raw.tif"
    write_tiff(path, simulate_pair(run.sim, 5, 0).input, (0.1, 0.1))
    return path


def test_batches_end_with_the_blind_spot_share_and_training_runs(tmp_path):
    run = load_run("denoise2d", None, [*TINY, f"train.blind_spot.images=[{_raw(tmp_path)}]",
                                       "train.blind_spot.share=0.5", "train.steps=3"])
    data = simulated_data(run)
    x, y = data.make_batch(0)
    assert x.shape == y.shape == (4, 1, 32, 32)
    assert np.isfinite(y[:2]).all() and 0 < np.isfinite(y[2:]).mean() < 0.05
    summary = train(run, tmp_path / "out", progress=False)
    assert summary["steps"] == 3 and np.isfinite(summary["best_val_loss"])


def test_refinement_stages_take_the_raw_images_as_blind_spot_patches(tmp_path):
    raw = _raw(tmp_path)
    run = load_run("denoise2d", None, [*TINY, f"train.refine.images=[{raw}]", "train.steps=10",
                                       "train.refine.blind_spot=0.25"])
    stages = stage_runs(run, tmp_path / "out")
    assert not stages[0][1].train.blind_spot.images
    assert stages[1][1].train.blind_spot.images == (str(raw),)
    assert stages[1][1].train.blind_spot.share == 0.25


@pytest.mark.parametrize("extra, match", [
    (["train.loss=laplace"], "mse or mae"),
    (["shape=[8,64,64]", "train.patch=[8,32,32]"], "2D run"),
])
def test_bad_blind_spot_settings_are_one_clear_line(tmp_path, extra, match):
    with pytest.raises((SynthcareError, ValueError), match=match):
        run = load_run("denoise2d", None, [*TINY, f"train.blind_spot.images=[{_raw(tmp_path)}]",
                                           "train.steps=2", *extra])
        train(run, tmp_path / "out", progress=False)
