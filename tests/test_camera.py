"""Camera statistics: Poisson-Gaussian, EM gain, quantisation, saturation, fixed pattern,
neighbour correlation of the noise."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.camera import Camera
from simulate.errors import SynthcareError

FLAT = (1000, 1000)  # 10^6 pixels


@pytest.mark.parametrize(("qe", "gain", "offset", "read", "dark", "s"), [
    (0.8, 1.0, 100.0, 1.5, 0.0, 20.0),
    (0.7, 2.2, 300.0, 3.0, 0.5, 5.0),
    (0.9, 0.5, 50.0, 8.0, 0.1, 100.0),
])
def test_flat_field_mean_and_variance(qe, gain, offset, read, dark, s):
    cam = Camera(qe=qe, gain=gain, offset=offset, read_noise=read, dark=dark)
    img = cam.capture(np.full(FLAT, s), np.random.default_rng(0)).astype(np.float64)
    signal = qe * s + dark
    assert img.mean() == pytest.approx(gain * signal + offset, rel=0.02)
    assert img.var() == pytest.approx(gain**2 * (signal + read**2) + 1 / 12, rel=0.02)
    assert np.array_equal(img, np.rint(img))  # integer ADU


def test_em_gain_excess_noise_factor_two():
    g, gain, read, qe, s = 50.0, 0.2, 20.0, 0.9, 8.0
    cam = Camera(qe=qe, gain=gain, offset=500, read_noise=read, em_gain=g, bits=None)
    img = cam.capture(np.full(FLAT, s), np.random.default_rng(1)).astype(np.float64)
    signal = qe * s
    assert img.mean() == pytest.approx(gain * g * signal + 500, rel=0.02)
    f2 = ((img.var() - 1 / 12) / gain**2 - read**2) / (g**2 * signal)
    assert f2 == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("spread", [0.1, 0.4])
def test_multiplier_with_narrow_pulse_heights(spread):
    # a PMT: each electron's output has relative variance c² = spread, so the excess noise
    # factor is 1 + c² and the third cumulant is G³·n·(1 + c²)(1 + 2c²)
    g, s = 30.0, 4.0
    cam = Camera(qe=1.0, gain=1.0, offset=0, read_noise=0.0, em_gain=g, em_spread=spread, bits=None)
    img = cam.capture(np.full(FLAT, s), np.random.default_rng(3)).astype(np.float64)
    assert img.mean() == pytest.approx(g * s, rel=0.01)
    assert (img.var() - 1 / 12) / (g**2 * s) == pytest.approx(1 + spread, rel=0.03)
    k3 = np.mean((img - img.mean()) ** 3)
    assert k3 / (g**3 * s) == pytest.approx((1 + spread) * (1 + 2 * spread), rel=0.06)


def test_saturation_and_bits():
    cam = Camera(gain=4.0, offset=100, bits=12)
    img = cam.capture(np.full((100, 100), 5000.0), np.random.default_rng(2))
    assert img.max() == 4095 and img.min() >= 0
    dark = Camera(offset=0, read_noise=5).capture(np.zeros((100, 100)), np.random.default_rng(2))
    assert dark.min() == 0  # negative excursions clip at 0


def test_photon_counting_is_poisson():
    cam = Camera(qe=0.5, photon_counting=True, dark=0.2)
    img = cam.capture(np.full(FLAT, 4.0), np.random.default_rng(3)).astype(np.float64)
    assert img.mean() == pytest.approx(2.2, rel=0.01)
    assert img.var() == pytest.approx(2.2, rel=0.02)


def test_hot_pixels_are_a_fixed_pattern():
    cam = Camera(hot_pixels=0.01, hot_level=1000.0, read_noise=1.0)
    a = cam.capture(np.zeros((200, 200)), np.random.default_rng(4))
    b = cam.capture(np.zeros((200, 200)), np.random.default_rng(5))
    hot_a, hot_b = a > 300, b > 300
    assert hot_a.mean() == pytest.approx(0.01 * np.exp(-200 / 1000), rel=0.25)
    assert (hot_a & hot_b).sum() >= 0.9 * hot_a.sum()  # same pixels in every frame


def test_scmos_maps_and_expected():
    rng = np.random.default_rng(6)
    offset = rng.uniform(90, 110, (64, 64))
    cam = Camera(offset=offset, read_noise=0.0, qe=1.0)
    frames = np.stack([cam.capture(np.zeros((64, 64)), rng) for _ in range(20)])
    np.testing.assert_allclose(frames.mean(axis=0), np.rint(offset), atol=1e-6)
    assert cam.expected(np.zeros(3))[0] == pytest.approx(offset.mean(), rel=1e-6)


def test_expected_round_trip():
    cam = Camera(qe=0.7, gain=2.0, offset=100, dark=0.3, em_gain=10)
    s = np.array([0.0, 1.0, 50.0])
    np.testing.assert_allclose(cam.photons_from_expected(cam.expected(s)), s, atol=1e-4)


@pytest.mark.parametrize(("kw", "name"), [({"qe": 0.0}, "qe"), ({"qe": 1.5}, "qe"),
                                          ({"gain": -1.0}, "gain"), ({"read_noise": -2}, "read_noise"),
                                          ({"em_gain": 0.5}, "em_gain"), ({"em_spread": 1.5}, "em_spread"),
                                          ({"bits": 40}, "bits"),
                                          ({"hot_pixels": 2.0}, "hot_pixels")])
def test_bad_camera_parameters(kw, name):
    with pytest.raises(SynthcareError, match=name):
        Camera(**kw)


def test_negative_photons_rejected():
    with pytest.raises(SynthcareError, match="photons"):
        Camera().capture(np.array([1.0, -1.0]), np.random.default_rng(0))


def test_scmos_maps_from_a_file(tmp_path):
    from simulate.config import CameraConfig

    rng = np.random.default_rng(7)
    offset = rng.uniform(90, 110, (32, 48))
    np.savez(tmp_path / "maps.npz", offset=offset, read_noise=np.full((32, 48), 2.0))
    cam = Camera.from_config(CameraConfig(maps=str(tmp_path / "maps.npz"), read_noise=9.0))
    frames = np.stack([cam.capture(np.zeros((32, 48)), rng) for _ in range(200)])
    assert np.abs(frames.mean(axis=0) - offset).max() < 1.0
    assert frames.std(axis=0).mean() == pytest.approx(2.0 * cam.gain, rel=0.1)  # the map's noise
    with pytest.raises(SynthcareError, match="does not match"):
        cam.capture(np.zeros((8, 8)), rng)
    with pytest.raises(SynthcareError, match="not found"):
        Camera.from_config(CameraConfig(maps=str(tmp_path / "none.npz")))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_photons_that_are_not_finite_and_non_negative_are_refused(bad):
    photons = np.full((4, 4), 5.0, np.float32)
    photons[2, 1] = bad
    with pytest.raises(SynthcareError, match="finite and non-negative"):
        Camera().capture(photons, np.random.default_rng(0))


def _neighbour_correlation(img: np.ndarray, axis: int) -> float:
    d = img - img.mean()
    return float(np.mean(d * np.roll(d, 1, axis)) / np.mean(d * d))


@pytest.mark.parametrize("rho", [(0.0, -0.05), (0.15, 0.3)])
def test_noise_correlation_between_neighbours_keeps_mean_and_variance(rho):
    qe, gain, offset, read, s = 0.8, 2.0, 100.0, 2.0, 20.0
    cam = Camera(qe=qe, gain=gain, offset=offset, read_noise=read, correlation=rho)
    img = cam.capture(np.full(FLAT, s), np.random.default_rng(4)).astype(np.float64)
    assert img.mean() == pytest.approx(gain * qe * s + offset, rel=0.005)
    assert img.var() == pytest.approx(gain**2 * (qe * s + read**2) + 1 / 12, rel=0.02)
    # the estimate's standard error is 0.001 on 10^6 pixels; c = ρ/2 would miss 0.3 by 0.013
    assert _neighbour_correlation(img, 0) == pytest.approx(rho[0], abs=0.005)
    assert _neighbour_correlation(img, 1) == pytest.approx(rho[1], abs=0.005)
    assert np.array_equal(img, np.rint(img))


def test_noise_correlation_does_not_blur_the_signal():
    # only the noise is filtered: column means follow a sharp edge exactly
    photons = np.full(FLAT, 5.0)
    photons[:, 500:] = 50.0
    cam = Camera(qe=0.8, gain=2.0, offset=100, read_noise=2.0, correlation=(0.0, 0.3))
    cols = cam.capture(photons, np.random.default_rng(5)).astype(np.float64).mean(axis=0)
    want = cam.expected(photons)[0].astype(np.float64)
    assert np.max(np.abs(cols - want)) < 2.5  # column means' sd 0.45 ADU; a blur shifts ~11


def test_noise_correlation_out_of_range_is_refused():
    with pytest.raises(SynthcareError, match="correlation"):
        Camera(correlation=(0.0, 0.5))
    from simulate.config import SimConfig

    with pytest.raises(SynthcareError, match=r"camera\.correlation: each must be in \[-0\.4, 0\.4\]"):
        SimConfig.from_dict({"camera": {"correlation": [0.0, -0.6]}})
