"""U-Net, normalisation, losses, metrics and tiled prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore import losses
from restore.metrics import fit_affine, scores, ssim
from restore.normalize import jittered_affine, percentile_affine
from restore.predict import choose_tiles, dihedral_mean, predict
from restore.unet import UNet, UNetConfig, pad_to_multiple
from simulate import SynthcareError


def _model(ndim=2, **kw) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(ndim=ndim, **kw)).eval()


@pytest.mark.parametrize(("ndim", "shape"), [(2, (37, 45)), (2, (9, 8)), (3, (7, 21, 30))])
def test_any_size_keeps_shape(ndim, shape):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    out = predict(_model(ndim), img, "YX" if ndim == 2 else "ZYX", tiles=None)
    assert out.shape == shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    x, crop = pad_to_multiple(torch.zeros(1, 1, *shape), 4)
    assert all(n % 4 == 0 for n in x.shape[2:]) and x[(..., *crop)].shape[2:] == shape


@pytest.mark.parametrize("ndim", [2, 3])
def test_residual_network_with_zero_weights_is_identity(ndim):
    model = UNet(UNetConfig(ndim=ndim))
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 1, *([8] * ndim))
    assert torch.equal(model(x), x)


def test_probabilistic_output_has_positive_scale():
    model = _model(2, probabilistic=True)
    out = model(torch.randn(1, 1, 16, 16))
    assert out.shape == (1, 2, 16, 16) and out[:, 1].min() > 0


def test_laplace_loss_minimum_and_gradients():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.laplace(2.0, 0.5, (1, 1, 64, 64)).astype(np.float32))
    med = float(target.median())
    mad = float((target - med).abs().mean())

    def nll(mu, b):
        pred = torch.cat([torch.full_like(target, mu), torch.full_like(target, b)], dim=1)
        return float(losses.laplace_nll(pred, target))

    best = nll(med, mad)
    for mu, b in [(med + 0.1, mad), (med - 0.1, mad), (med, mad * 1.3), (med, mad * 0.7)]:
        assert nll(mu, b) > best
    pred = torch.cat([torch.zeros_like(target), torch.full_like(target, 1e-3)], 1).requires_grad_()
    losses.laplace_nll(pred, target).backward()
    assert torch.all(torch.isfinite(pred.grad))
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("huber")


@pytest.mark.parametrize("shape", [(2, 1, 40, 36), (1, 1, 14, 24, 20)])
def test_ssim_loss_equals_the_metric_and_penalises_background_texture(shape):
    """The training SSIM is the scoring SSIM (restore.metrics.ssim), per image, in 2D and 3D; a
    faint texture on a flat background costs mse+ssim far more than it costs MSE."""
    from restore.metrics import ssim as metric_ssim

    rng = np.random.default_rng(3)
    target = rng.gamma(2.0, 0.2, shape).astype(np.float32)
    pred = (target + rng.normal(0, 0.1, shape)).astype(np.float32)
    got = float(losses.ssim(torch.from_numpy(pred), torch.from_numpy(target)))
    want = np.mean([metric_ssim(p[0], t[0]) for p, t in zip(pred, target, strict=True)])
    assert got == pytest.approx(want, abs=1e-4)
    flat = torch.zeros(1, 1, 48, 48)
    texture = flat + 0.02 * torch.from_numpy(rng.standard_normal((1, 1, 48, 48)).astype(np.float32))
    assert float(losses.mse(texture, flat)) < 5e-4
    assert float(losses.mse_ssim(texture, flat)) > 5 * float(losses.mse(texture, flat))
    texture.requires_grad_()
    losses.get("mse+ssim")(texture, flat).backward()
    assert torch.all(torch.isfinite(texture.grad))


def test_normalisation_round_trip_and_constant_image():
    x = np.random.default_rng(1).gamma(2.0, 50.0, (64, 64)).astype(np.float32) + 100
    aff = percentile_affine(x)
    y = aff(x)
    assert np.percentile(y, 1) == pytest.approx(0, abs=1e-5)
    assert np.percentile(y, 99.8) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(aff.inverse(y), x, rtol=1e-5)
    const = np.full((16, 16), 7.0, np.float32)
    assert np.all(np.isfinite(percentile_affine(const)(const)))
    out = predict(_model(), const, "YX", tiles=None)
    assert np.all(np.isfinite(out))
    jit = jittered_affine(x, np.random.default_rng(2), jitter=2.0)
    assert jit != aff


def test_tiled_equals_untiled():
    model = _model(2)
    img = np.random.default_rng(3).random((300, 257)).astype(np.float32)
    whole = predict(model, img, "YX", tiles=None)
    tiled = predict(model, img, "YX", tiles=(3, 4))
    assert np.abs(whole - tiled).max() < 1e-4 * np.abs(whole).max()
    model3 = _model(3)
    vol = np.random.default_rng(4).random((20, 60, 66)).astype(np.float32)
    assert np.abs(predict(model3, vol, "ZYX", tiles=None)
                  - predict(model3, vol, "ZYX", tiles=(1, 2, 2))).max() < 1e-4


def test_test_time_augmentation_inverts_every_transform():
    x = np.random.default_rng(5).random((2, 30, 41)).astype(np.float32)
    assert np.allclose(dihedral_mean(lambda t, turned: 2 * t, x), 2 * x)
    # a function that is not equivariant: the mean of its 8 transforms, each turned back
    ramp = dihedral_mean(lambda t, turned: np.broadcast_to(np.arange(t.shape[-1], dtype=np.float32),
                                                           t.shape), x)
    assert ramp.shape == x.shape and np.allclose(ramp, ramp.mean())  # symmetric: constant
    model = _model(2)
    img = np.random.default_rng(6).random((70, 90)).astype(np.float32)
    aug = predict(model, img, "YX", tiles=None, augment=True)
    assert np.abs(aug - predict(model, img, "YX", tiles=(2, 3), augment=True)).max() < 1e-4
    assert np.abs(aug - predict(model, img, "YX", tiles=None)).max() > 1e-4  # it does something


def test_too_small_halo_would_show(monkeypatch):
    # the check above can fail: with a halo below the receptive field, tiles show seams
    from restore import predict as pred_mod

    model = _model(2)
    img = np.random.default_rng(5).random((200, 200)).astype(np.float32)
    whole = predict(model, img, "YX", tiles=None)
    monkeypatch.setattr(pred_mod, "_halo", lambda m: 4)
    seams = predict(model, img, "YX", tiles=(2, 2))
    assert np.abs(whole - seams).max() > 1e-3


def test_auto_tiles_follow_the_budget():
    model = _model(2)
    assert choose_tiles((1024, 1024), model, 2**34) == (1, 1)
    assert np.prod(choose_tiles((1024, 1024), model, 64 * 2**20)) > 4
    assert choose_tiles((256, 256), model, 50 * 2**20) == (2, 2)
    img = np.random.default_rng(6).random((256, 256)).astype(np.float32)
    auto = predict(model, img, "YX", tiles="auto", memory_budget=50 * 2**20)
    assert np.abs(auto - predict(model, img, "YX", tiles=None)).max() < 1e-4


def test_channels_and_planes():
    model = _model(2)
    img = np.random.default_rng(7).random((2, 3, 20, 24)).astype(np.float32)  # C, Z, Y, X
    out = predict(model, img, "CZYX", tiles=None)
    assert out.shape == img.shape
    np.testing.assert_allclose(out[1, 2], predict(model, img[1, 2], "YX", tiles=None), atol=1e-6)


@pytest.mark.parametrize(("axes", "shape", "ndim", "match"), [
    ("YXY", (8, 8, 8), 2, "at most once"),
    ("ZY", (8, 8), 2, "contain Y"),
    ("YX", (8, 8, 8), 2, "3 dimensions"),
    ("YX", (16, 16), 3, "no Z axis"),
])
def test_bad_axes(axes, shape, ndim, match):
    with pytest.raises(SynthcareError, match=match):
        predict(_model(ndim), np.zeros(shape, np.float32), axes)


def test_nan_input_rejected():
    img = np.ones((16, 16), np.float32)
    img[3, 3] = np.nan
    with pytest.raises(SynthcareError, match="NaN"):
        predict(_model(), img, "YX")


def test_metrics():
    rng = np.random.default_rng(8)
    gt = rng.random((64, 64))
    perfect = scores(3.0 * gt + 7.0, gt)  # an affine change is not penalised
    assert perfect["psnr"] > 100 and perfect["ssim"] == pytest.approx(1.0) and perfect["nrmse"] < 1e-6
    noisy = scores(gt + 0.1 * rng.standard_normal(gt.shape), gt)
    noisier = scores(gt + 0.3 * rng.standard_normal(gt.shape), gt)
    assert noisy["psnr"] > noisier["psnr"] and noisy["ssim"] > noisier["ssim"]
    assert noisy["nrmse"] < noisier["nrmse"]
    vol = rng.random((16, 32, 32))
    assert ssim(vol, vol) == pytest.approx(1.0)
    assert ssim(vol, rng.random(vol.shape)) < 0.2
    np.testing.assert_allclose(fit_affine(2 * gt + 1, gt), gt, atol=1e-9)


def _identity(ndim):
    model = UNet(UNetConfig(ndim=ndim)).eval()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    return model


def test_upsample_and_isotropic_prediction_shapes_and_identity():
    from restore.predict import predict_task, upsample_z

    vol = np.random.default_rng(9).random((4, 24, 28)).astype(np.float32) * 50 + 100
    up = predict_task(_identity(3), "upsample", vol, "ZYX", z_factor=3, tiles=None)
    assert up.shape == (10, 24, 28)
    np.testing.assert_allclose(up, upsample_z(vol, "ZYX", 3), rtol=1e-5)  # identity network
    iso = predict_task(_identity(2), "isotropic", vol, "ZYX", z_factor=2, factor=3, tiles=None)
    assert iso.shape == (10, 24, 28)  # --factor overrides the model's k
    np.testing.assert_allclose(iso, upsample_z(vol, "ZYX", 3), rtol=1e-5)
    with pytest.raises(SynthcareError, match="2D model"):
        predict_task(_identity(3), "isotropic", vol, "ZYX", z_factor=2)
    with pytest.raises(SynthcareError, match="Z axis"):
        predict_task(_identity(2), "upsample", vol[0], "YX", z_factor=2)
