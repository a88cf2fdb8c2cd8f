"""Optics and sampling: FFT convolution, pixel integration, focal planes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from simulate import convolve, psf
from simulate.config import SimConfig
from simulate.sampling import Grid, integrate_pixels, interpolate_axis


def _grid(shape=(4, 24, 20), **sampling):
    cfg = SimConfig(shape=shape, sampling={"z_factor": 2, "oversample": 3, "margin": 0.3,
                                           **sampling})
    return cfg, Grid.from_config(cfg)


def _image(cfg, g, truth, planes=None, crop=True, threshold=convolve.SUPPORT_THRESHOLD):
    plan = convolve.plan((convolve.optics_key(cfg.optics, cfg.ndim),), g, threshold)
    spec = convolve.truth_spectrum(truth, plan, g)
    return convolve.detector_planes(spec, plan, 0, g, planes or g.input_planes, crop=crop)


@pytest.mark.parametrize(("shape", "threshold", "tol"), [((4, 24, 20), 0.0, 1e-5),
                                                         ((40, 36), 0.0, 1e-5),
                                                         ((4, 24, 20), 1e-5, 1e-4)])
def test_folded_fast_path_equals_real_space_reference(shape, threshold, tol):
    cfg, g = _grid(shape)
    truth = np.random.default_rng(0).random(g.truth_shape).astype(np.float32)
    fast = _image(cfg, g, truth, threshold=threshold)
    # reference: circular convolution on the z-padded grid, block sums, focal planes, crop
    full = (g.z_fft, *g.truth_shape[1:])
    h = psf.from_config(cfg.optics, full, g.truth_spacing)
    padded = np.zeros(full)
    padded[:g.nz_truth] = truth
    blurred = scipy.fft.irfftn(scipy.fft.rfftn(padded) * scipy.fft.rfftn(np.fft.ifftshift(h)),
                               s=full)
    ref = g.crop(integrate_pixels(blurred, g.oversample)[list(g.input_planes)])
    assert fast.shape == ref.shape == (g.detector[0], *g.detector[1:])
    assert np.abs(fast - ref).max() < tol * np.abs(ref).max()


def test_photons_conserved_laterally_through_blur_and_pixels():
    cfg, g = _grid((6, 32, 32))
    truth = np.zeros(g.truth_shape, np.float32)
    c = [n // 2 for n in g.truth_shape]
    truth[c[0], c[1], c[2]] = 1000.0  # a centred point...
    truth[1, c[1] - 3:c[1] + 4, c[2] - 2:c[2] + 2] = 10.0  # ...and a defocused blob
    out = _image(cfg, g, truth, crop=False)
    # widefield: every detector plane collects all the light of every truth plane
    np.testing.assert_allclose(out.sum(axis=(1, 2), dtype=np.float64), truth.sum(dtype=np.float64),
                               rtol=1e-4)


def test_no_wrap_around_from_the_opposite_edge():
    cfg = SimConfig(shape=(64, 64))
    g = Grid.from_config(cfg)
    truth = np.zeros(g.truth_shape, np.float32)
    s, (my, mx) = g.oversample, g.margin
    focus = g.input_planes[0]
    truth[focus, (my + 32) * s, (mx + 63) * s] = 1.0  # in focus at the field's right edge
    img = _image(cfg, g, truth)[0]
    assert img[32, 63] == img.max()
    assert img[:, :4].max() < 1e-3 * img.max()


def test_2d_image_carries_out_of_focus_haze():
    cfg = SimConfig(shape=(48, 48), sample={"thickness": 2.0})
    g = Grid.from_config(cfg)
    s, (my, mx) = g.oversample, g.margin
    images = []
    for plane in (g.input_planes[0], 0):  # in focus, then 1 µm out of focus
        truth = np.zeros(g.truth_shape, np.float32)
        truth[plane, (my + 24) * s, (mx + 24) * s] = 1.0
        images.append(_image(cfg, g, truth, crop=False)[0])
    in_focus, defocused = images
    assert defocused.sum() == pytest.approx(in_focus.sum(), rel=1e-4)  # same light...
    assert defocused.max() < 0.2 * in_focus.max()  # ...spread out as haze


def test_grid_planes_and_sizes():
    _, g = _grid((5, 30, 30), z_factor=3, oversample_z=2)
    r = 6  # truth planes per z-step
    assert g.nz_truth == 5 * r
    assert np.all(np.diff(g.input_planes) == r)
    assert len(g.iso_planes) == (5 - 1) * 3 + 1 and np.all(np.diff(g.iso_planes) == 2)
    assert g.iso_planes[0] == g.input_planes[0] and g.iso_planes[-1] == g.input_planes[-1]
    assert g.z_fft >= 2 * g.nz_truth - 1
    assert all(p % 2 == 0 and p >= n for p, n in zip(g.padded, (30, 30), strict=True))


def test_integrate_pixels_conserves_and_checks():
    v = np.random.default_rng(1).random((2, 12, 9)).astype(np.float32)
    out = integrate_pixels(v, 3)
    assert out.shape == (2, 4, 3)
    assert out.sum() == pytest.approx(v.sum(), rel=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        integrate_pixels(v, 5)


def test_interpolate_axis_keeps_samples():
    a = np.random.default_rng(2).random((4, 5, 3)).astype(np.float32)
    for order in (1, 3):
        up = interpolate_axis(a, 3, axis=1, order=order)
        assert up.shape == (4, 13, 3)
        np.testing.assert_allclose(up[:, ::3], a, atol=1e-6)
    lin = interpolate_axis(a, 3, axis=1, order=1)
    np.testing.assert_allclose(lin[:, 1], (2 * a[:, 0] + a[:, 1]) / 3, atol=1e-6)


@pytest.mark.parametrize("oversample", [5, 6, 7, 8])
def test_every_allowed_oversampling_has_a_grid(oversample):
    _, g = _grid((2, 30, 30), oversample=oversample)
    assert all(p * oversample == n for p, n in zip(g.padded, g.truth_shape[1:], strict=True))


def test_truth_grid_must_resolve_the_otf():
    from simulate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sampling\.oversample = 1 is too coarse"):
        SimConfig.from_dict({"sampling": {"pixel": 0.65, "oversample": 1}, "optics": {"na": 0.45}})
    assert SimConfig.from_dict({"sampling": {"pixel": 0.65}, "optics": {"na": 0.45}}).oversampling()[0] >= 3
    assert SimConfig.from_dict({"optics": {"psf": "confocal"}}).oversampling()[0] >= 3
