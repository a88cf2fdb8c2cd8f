"""The deconvolution prefilter: the Wiener inverse of the PSF concentrates out-of-focus light at
its source, keeps a constant and each plane's total, treats a stack of images as one at a time,
and prediction applies it exactly as training does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from restore.baselines import detector_psf
from restore.predict import predict, predict_task
from restore.prefilter import wiener
from restore.unet import UNet, UNetConfig
from simulate import SimConfig, SynthcareError

SHAPE = (12, 48, 48)


def deconv_config(lam: float = 1e-3, shape=SHAPE) -> SimConfig:
    return SimConfig.from_dict({
        "task": "deconvolve", "shape": list(shape), "target": {"wiener": lam},
        "optics": {"psf": "widefield", "na": 1.2, "ni": 1.33, "wavelength": 0.52},
        "sampling": {"pixel": 0.1, "z_factor": 2}})


def test_wiener_gives_a_points_light_back_to_its_plane_within_the_missing_cone():
    """A point's widefield image spreads over every plane; the Wiener inverse concentrates it at
    the point (peak ×10), while every plane keeps its total: the widefield OTF is zero at zero
    lateral frequency for every axial frequency but 0 (the missing cone), so no linear inverse
    can move light between planes that way, and this one must not pretend to."""
    cfg = deconv_config()
    sample = np.zeros(SHAPE)
    sample[2, 24, 24] = 1000.0
    kernel = detector_psf(cfg, SHAPE)
    blurred = fftconvolve(sample, kernel / kernel.sum(), mode="same")
    restored = wiener(cfg, blurred.astype(np.float32))
    assert restored.shape == SHAPE and restored.dtype == np.float32
    assert np.unravel_index(np.argmax(restored), SHAPE) == (2, 24, 24)
    assert restored[2, 24, 24] > 10 * blurred[2, 24, 24]
    # every plane of the widefield kernel holds the same light: 1 / (its planes) of the point's
    np.testing.assert_allclose(blurred.sum(axis=(1, 2)), 1000 / kernel.shape[0], rtol=0.02)
    np.testing.assert_allclose(restored.sum(axis=(1, 2)), blurred.sum(axis=(1, 2)) / (1 + 1e-3),
                               rtol=0.01)
    away = np.abs(restored[8:]).max() / restored.max()
    assert away < 0.02  # 1.2 µm and further from the point: what is left there is faint


def test_wiener_keeps_a_constant_and_filters_each_image_of_a_stack_alone():
    cfg = deconv_config(lam=0.01)
    flat = np.full(SHAPE, 300.0, np.float32)
    np.testing.assert_allclose(wiener(cfg, flat), 300.0 / 1.01, rtol=1e-4)
    rng = np.random.default_rng(0)
    stack = rng.poisson(50, (2, *SHAPE)).astype(np.float32)
    both = wiener(cfg, stack)
    for one, image in zip(both, stack, strict=True):
        np.testing.assert_allclose(one, wiener(cfg, image), atol=1e-3)


def test_wiener_is_for_deconvolution_only():
    with pytest.raises(ValueError, match=r"target\.wiener"):
        SimConfig.from_dict({"task": "denoise", "shape": [64, 64], "target": {"wiener": 1e-3}})
    with pytest.raises(ValueError, match="wiener"):
        deconv_config(lam=0.0)


def test_prediction_filters_the_image_as_training_does():
    cfg = deconv_config()
    torch.manual_seed(0)
    model = UNet(UNetConfig(ndim=3, filters=4, depth=1)).eval()
    image = np.random.default_rng(1).poisson(80, SHAPE).astype(np.float32) + 100
    got = predict_task(model, "deconvolve", image, "ZYX", sim=cfg, tiles=None)
    want = predict(model, wiener(cfg, image), "ZYX", tiles=None)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, predict(model, image, "ZYX", tiles=None), atol=1e-3)
    with pytest.raises(SynthcareError, match="last axes are ZYX"):
        predict_task(model, "deconvolve", image[0], "YX", sim=cfg)


def test_cli_predict_filters_like_training_and_refuses_blockwise_zarr(tmp_path, capsys):
    """`synthcare predict` with a deconvolution model trained with the prefilter gives the
    network's output on the filtered stack; OME-Zarr (block-wise) input is refused in one line."""
    from restore.checkpoints import load_model
    from restore.cli import main
    from simulate import read_tiff, simulate_pair, write_tiff

    run = tmp_path / "run"
    sets = ["shape=[8,48,48]", "train.patch=[4,16,16]", "train.batch_size=2", "train.filters=4",
            "train.val_patches=2", "train.workers=0", "train.patches_per_image=2"]
    argv = ["train", "--preset", "deconvolve", "--steps", "2", "--out", str(run)]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    model, cfg, _ = load_model(run)
    assert cfg.target.wiener == pytest.approx(0.01)
    low = np.asarray(simulate_pair(cfg, 3, 0).input, np.float32)
    voxel = (cfg.sampling.pixel * cfg.sampling.z_factor, cfg.sampling.pixel, cfg.sampling.pixel)
    write_tiff(tmp_path / "low.tif", low, voxel)
    assert main(["predict", "--model", str(run), str(tmp_path / "low.tif"), "-o",
                 str(tmp_path / "out.tif")]) == 0
    got = read_tiff(tmp_path / "out.tif")[0]
    want = predict(model, wiener(cfg, low), "ZYX")
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    capsys.readouterr()
    assert main(["predict", "--model", str(run), str(tmp_path / "low.tif"), "-o",
                 str(tmp_path / "out.zarr")]) == 2
    assert "Wiener-filters the whole stack" in capsys.readouterr().err
