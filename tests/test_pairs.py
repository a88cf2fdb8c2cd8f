"""Pairs: reproducible, the right shapes per task, the right photometry."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.camera import Camera
from simulate.config import SimConfig
from simulate.pairs import make_pair, residual_sigma, simulate_pair

SMALL3D = (6, 32, 32)


def _cfg(**kw) -> SimConfig:
    return SimConfig.from_dict({"shape": [48, 48], **kw})


def test_same_inputs_same_pair_bit_identical_in_any_order():
    cfg = _cfg(sample={"granules": {"density": 0.1}})
    a3 = make_pair(cfg, 7, 3)
    a1 = make_pair(cfg, 7, 1)
    b1 = make_pair(cfg, 7, 1)
    b3 = make_pair(cfg, 7, 3)
    for x, y in zip(a1 + a3, b1 + b3, strict=True):
        assert x.tobytes() == y.tobytes()
    assert not np.array_equal(a1[0], a3[0])
    assert not np.array_equal(make_pair(cfg, 8, 1)[1], a1[1])


def test_camera_change_keeps_the_sample():
    cfg = _cfg()
    other = cfg.with_overrides(["camera.read_noise=5", "camera.offset=300"])
    assert np.allclose(simulate_pair(cfg, 0, 0).clean - 100, simulate_pair(other, 0, 0).clean - 300,
                       atol=1e-3)


@pytest.mark.parametrize(("task", "shape", "in_shape", "tgt_shape"), [
    ("denoise", [40, 36], (40, 36), (40, 36)),
    ("denoise", SMALL3D, SMALL3D, SMALL3D),
    ("deconvolve", [40, 36], (40, 36), (40, 36)),
    ("deconvolve", SMALL3D, SMALL3D, SMALL3D),
    ("n2n", [40, 36], (40, 36), (40, 36)),
    ("upsample", SMALL3D, SMALL3D, ((6 - 1) * 3 + 1, 32, 32)),
    ("isotropic", SMALL3D, (6, 31, 32), (6, 31, 32)),
])
def test_shapes_per_task(task, shape, in_shape, tgt_shape):
    cfg = SimConfig.from_dict({"task": task, "shape": shape, "sampling": {"z_factor": 3}})
    p = simulate_pair(cfg, 0, 0)
    assert p.input.shape == in_shape and p.target.shape == tgt_shape == p.clean.shape
    for a in (p.input, p.target, p.clean):
        assert a.dtype == np.float32 and a.flags.c_contiguous and np.all(np.isfinite(a))


def test_photon_budget_is_peak_of_the_input_image():
    cfg = _cfg(camera={"photons": 40.0, "qe": 0.5, "gain": 2.0, "offset": 100.0},
               sample={"background": 0.0})
    p = simulate_pair(cfg, 0, 2)
    cam = Camera.from_config(cfg.camera)
    assert cam.photons_from_expected(p.clean).max() == pytest.approx(40.0, rel=1e-4)


def test_input_is_unbiased_around_clean():
    cfg = _cfg(shape=[96, 96], camera={"photons": 30.0})
    diffs = [p.input - p.clean for p in (simulate_pair(cfg, 0, i) for i in range(4))]
    assert abs(np.mean(diffs)) < 0.05  # ADU; the input's noise has zero mean


def test_upsample_target_planes_contain_the_input_planes():
    cfg = SimConfig(task="upsample", shape=SMALL3D, sampling={"z_factor": 3},
                    camera={"photons": 1e6, "read_noise": 0.0, "bits": 32})
    p = simulate_pair(cfg, 0, 0)
    aligned = np.abs(p.input[:5] - p.clean[0:15:3]).mean()
    shifted = np.abs(p.input[:5] - p.clean[1:16:3]).mean()
    assert aligned < 0.01 * p.input.mean()  # only shot noise (~0.3 %) remains
    assert aligned < 0.3 * shifted


def test_n2n_two_independent_acquisitions():
    cfg = _cfg(task="n2n", shape=[96, 96])
    p = simulate_pair(cfg, 0, 0)
    n1, n2 = (p.input - p.clean).ravel(), (p.target - p.clean).ravel()
    assert abs(np.corrcoef(n1, n2)[0, 1]) < 0.05
    assert n1.std() == pytest.approx(n2.std(), rel=0.1)


def test_high_photon_target_in_input_scale():
    cfg = _cfg(shape=[96, 96], target={"noise": "high", "photons": 2000.0},
               camera={"photons": 10.0, "gain": 3.0, "offset": 200.0})
    p = simulate_pair(cfg, 0, 0)
    assert abs(np.mean(p.target - p.clean)) < 0.05
    assert np.std(p.target - p.clean) < 0.25 * np.std(p.input - p.clean)


def test_deconvolution_target_is_sharper():
    cfg = SimConfig(task="deconvolve", shape=(64, 64), sample={"background": 0.0},
                    camera={"photons": 100.0})
    p = simulate_pair(cfg, 0, 0)
    cam = Camera.from_config(cfg.camera)
    wide = cam.photons_from_expected(cam.expected(np.zeros(1)) * 0 + p.input)
    sharp = cam.photons_from_expected(p.clean)
    assert sharp.max() > 1.3 * np.percentile(wide, 99.9)


def test_isotropic_input_is_degraded_along_y_only():
    cfg = SimConfig(task="isotropic", shape=(4, 64, 64), sampling={"z_factor": 4},
                    camera={"photons": 1e4, "read_noise": 0.0})
    assert residual_sigma(cfg) > 1.0  # the axial PSF is much longer than the lateral one
    p = simulate_pair(cfg, 0, 0)

    def roughness(img, axis):
        return np.abs(np.diff(img, axis=axis)).mean()

    ratio_in = roughness(p.input, 1) / roughness(p.input, 2)
    ratio_gt = roughness(p.clean, 1) / roughness(p.clean, 2)
    assert ratio_in < 0.7 * ratio_gt


@pytest.mark.parametrize("model", ["widefield", "gaussian", "confocal"])
def test_deconvolution_target_keeps_an_in_focus_point_photometry(model):
    # beads in one plane: input and target must carry the same light whatever the PSF's norm
    cfg = SimConfig.from_dict({
        "task": "deconvolve", "shape": [64, 64], "optics": {"psf": model},
        "sample": {"thickness": 0.05, "background": 0.0, "microtubules": {"density": 0},
                   "granules": {"density": 0}, "beads": {"density": 0.02}},
        "camera": {"photons": 1000.0, "offset": 0.0, "read_noise": 0.0, "bits": 32}})
    cam = Camera.from_config(cfg.camera)
    p = simulate_pair(cfg, 0, 0)
    flux_in = cam.photons_from_expected(p.input).sum()
    flux_tgt = cam.photons_from_expected(p.clean).sum()
    assert flux_tgt == pytest.approx(flux_in, rel=0.1)


def test_no_background_and_sectioning_psf_do_not_crash():
    cfg = _cfg(optics={"psf": "confocal"}, sample={"background": 0.0})
    p = simulate_pair(cfg, 0, 0)
    assert np.all(np.isfinite(p.input)) and p.clean.min() >= 100.0 - 1e-3


def test_volume_matches_the_pair_and_isotropic_reference_is_sharper_in_z():
    from simulate.pairs import simulate_volume

    up = SimConfig(task="upsample", shape=SMALL3D, sampling={"z_factor": 3})
    p, v = simulate_pair(up, 2, 1), simulate_volume(up, 2, 1)
    assert np.array_equal(p.input, v.acquired) and np.array_equal(p.clean, v.reference)
    iso = up.with_overrides(["task=isotropic"])
    vi = simulate_volume(iso, 2, 1)
    assert np.array_equal(vi.acquired, v.acquired) and vi.reference.shape == v.reference.shape

    def axial_detail(vol):
        return np.abs(np.diff(vol, axis=0)).mean() / np.abs(np.diff(vol, axis=2)).mean()

    assert axial_detail(vi.reference) > 1.5 * axial_detail(v.reference)
