"""Camera calibration recovers the simulator's own camera parameters."""

import numpy as np
import pytest

from simulate import ConfigError, SynthcareError, load, simulate_pair
from simulate.calibrate import calibrate_flats, calibrate_image
from simulate.config_io import camera_overrides


def _images(gain: float, read_noise: float, n: int = 2, extra: tuple[str, ...] = ()) -> np.ndarray:
    """Raw camera images of microtubules and granules over a background of a few photons."""
    cfg = load("denoise2d", None, ["shape=[512,512]", "camera.photons=100", "camera.qe=1",
                                   f"camera.gain={gain}", f"camera.read_noise={read_noise}",
                                   "camera.offset=100", "sample.background=0.04",
                                   "sample.background_smooth=0.1", *extra])
    return np.stack([simulate_pair(cfg, 7, i).input for i in range(n)])


def _dark(gain: float, read_noise: float, n: int = 8) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.round(gain * rng.normal(0, read_noise, (n, 128, 128)) + 100).astype(np.float32)


GRID = [(0.5, 2), (1, 10), (2, 5), (5, 2), (5, 10)]


def _gain_bound(gain: float, read_noise: float) -> float:
    """The relative standard deviation below which no estimator finds the gain from
    :func:`_images` (Cramér–Rao, every pixel's expected value known: the variance line's slope
    has the information ½·Σ (μ − μ̄)²/v²)."""
    cfg = load("denoise2d", None, ["shape=[512,512]", "camera.photons=100",
                                   "sample.background=0.04", "sample.background_smooth=0.1"])
    e = np.stack([simulate_pair(cfg, 7, i).clean for i in range(2)]).astype(np.float64)
    w = 1.0 / (e + read_noise**2) ** 2  # the clean image is in photons at qe 1
    return float(1.0 / np.sqrt(0.5 * np.sum(w * (e - np.sum(w * e) / np.sum(w)) ** 2)))


@pytest.mark.parametrize(("gain", "read_noise"), GRID)
def test_gain_and_read_noise_with_a_known_offset(gain, read_noise):
    cal = calibrate_image(_images(gain, read_noise), offset=100.0)
    # 5 %, or 2.5 standard deviations of the best any estimator can do where that is wider: at
    # 10 e⁻ of read noise these dim images only know the gain to ±4 %
    assert cal.gain == pytest.approx(gain, rel=max(0.05, 2.5 * _gain_bound(gain, read_noise)))
    assert cal.read_noise == pytest.approx(read_noise, rel=0.10)


def test_one_bright_structured_image_without_offset_or_dark_frames():
    # 300 photons at the peak on a background of 30: the flat-pixel line this module fitted
    # before read the gain 10 % low (its structure test dropped the noisiest pixels, more where
    # bright) and, with the offset from that line's cumulant, the read noise 68 % low; the gain's
    # bound here is ±1.5 %
    cfg = load("denoise2d", None, [
        "shape=[512,256]", "sample.microtubules.density=0", "sample.granules.density=0",
        "sample.mitochondria.density=0.3", "sample.background=0.1", "optics.na=0.8",
        "optics.ni=1.0", "camera.photons=300", "camera.qe=1", "camera.gain=2",
        "camera.read_noise=5", "camera.offset=100"])
    cal = calibrate_image(simulate_pair(cfg, 0, 0).input)
    assert cal.gain == pytest.approx(2.0, rel=0.05)
    assert cal.read_noise == pytest.approx(5.0, rel=0.10)
    assert cal.offset == pytest.approx(100.0, abs=max(3 * cal.offset_se, 2.0))
    assert any("third cumulant" in n for n in cal.notes)  # says how the offset was found


@pytest.mark.slow
@pytest.mark.parametrize("gain", [0.5, 1, 2, 5])
@pytest.mark.parametrize("read_noise", [2, 5, 10])
def test_full_grid_with_dark_frames(gain, read_noise):
    cal = calibrate_image(_images(gain, read_noise), dark=_dark(gain, read_noise))
    assert cal.gain == pytest.approx(gain, rel=max(0.05, 2.5 * _gain_bound(gain, read_noise)))
    assert cal.read_noise == pytest.approx(read_noise, rel=0.10)
    assert cal.offset == pytest.approx(100.0, abs=0.2)


def test_dark_frames_fix_offset_and_read_noise():
    cal = calibrate_image(_images(1.0, 5.0), dark=_dark(1.0, 5.0))
    assert cal.offset == pytest.approx(100.0, abs=0.2)
    assert cal.read_noise == pytest.approx(5.0, rel=0.05)
    assert cal.gain == pytest.approx(1.0, rel=0.05)


def test_offset_from_skewness_alone_is_consistent_with_its_error():
    cal = calibrate_image(_images(1.0, 3.0, n=4))
    assert abs(cal.offset - 100.0) < 3 * cal.offset_se + 0.5
    assert cal.offset_se < 3.0  # a wrong third cumulant (or none) gives no usable offset
    assert abs(cal.read_noise - 3.0) < 3 * cal.read_noise_se
    assert cal.gain == pytest.approx(1.0, rel=0.05)


def test_em_gain_divides_the_slope_by_g_times_excess_noise():
    cal = calibrate_image(_images(0.2, 30.0, extra=("camera.em_gain=20", "camera.photons=40")),
                          em_gain=20.0, offset=100.0)
    assert cal.gain == pytest.approx(0.2, rel=0.08)


def test_flat_fields_and_darks():
    rng = np.random.default_rng(5)
    g, rn = 2.0, 3.0
    flats = [np.round(g * (rng.poisson(e, (4, 64, 64)) + rng.normal(0, rn, (4, 64, 64))) + 100)
             for e in (20, 80, 300)]
    cal = calibrate_flats(flats, _dark(g, rn))
    assert cal.gain == pytest.approx(g, rel=0.03)
    assert cal.read_noise == pytest.approx(rn, rel=0.05)


def test_quantisation_is_flagged():
    cal = calibrate_image(_images(0.2, 2.0), offset=100.0)
    assert any("below one ADU" in n for n in cal.notes)


def test_flat_or_constant_images_give_a_clear_error():
    with pytest.raises(SynthcareError, match="calibration"):
        calibrate_image(np.full((256, 256), 100.0))
    rng = np.random.default_rng(0)
    flat = np.round(rng.poisson(10.0, (256, 256)) + rng.normal(0, 2, (256, 256)) + 100)
    with pytest.raises(SynthcareError, match="varies too little"):
        calibrate_image(flat, offset=100.0)
    with pytest.raises(SynthcareError, match="2D image"):
        calibrate_image(np.zeros(100))
    with pytest.raises(SynthcareError, match="calibration needs at least 64×64"):
        calibrate_image(flat[:40, :40])
    with pytest.raises(SynthcareError, match="NaN or Inf: calibration"):
        calibrate_image(np.where(flat > 115, np.nan, flat))


def test_written_camera_section_loads_into_the_simulator(tmp_path):
    cal = calibrate_image(_images(2.0, 5.0), offset=100.0)
    import yaml

    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump({"camera": cal.camera_section()}))
    cfg = load("denoise2d", None, camera_overrides(path))
    assert cfg.camera.gain == pytest.approx(cal.gain, rel=1e-3)
    assert cfg.camera.read_noise == pytest.approx(cal.read_noise, rel=1e-2)
    (tmp_path / "bad.yaml").write_text("camera: {gian: 2}\n")
    with pytest.raises(ConfigError, match="gian"):
        load("denoise2d", None, camera_overrides(tmp_path / "bad.yaml"))


def test_calibrate_command_writes_camera_yaml_and_plot(tmp_path, capsys):
    from restore.cli import main
    from simulate import write_tiff

    write_tiff(tmp_path / "raw.tif", _images(2.0, 5.0).astype(np.uint16), (1.0, 0.1, 0.1))
    write_tiff(tmp_path / "dark.tif", _dark(2.0, 5.0).astype(np.uint16), (1.0, 0.1, 0.1))
    rc = main(["calibrate", str(tmp_path / "raw.tif"), "--dark", str(tmp_path / "dark.tif"),
               "--out", str(tmp_path / "cam.yaml"), "--plot", str(tmp_path / "fit.png")])
    assert rc == 0 and (tmp_path / "fit.png").stat().st_size > 1000
    cfg = load("denoise2d", None, camera_overrides(tmp_path / "cam.yaml"))
    assert cfg.camera.gain == pytest.approx(2.0, rel=0.05)
    assert main(["calibrate", str(tmp_path / "missing.tif")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_calibrate_command_reads_a_png_as_fit_does(tmp_path, capsys):
    from PIL import Image

    from restore.cli import main

    Image.fromarray(_images(2.0, 5.0, n=1)[0].astype(np.uint16)).save(tmp_path / "raw.png")
    rc = main(["calibrate", str(tmp_path / "raw.png"), "--offset", "100",
               "--out", str(tmp_path / "cam.yaml")])
    assert rc == 0, capsys.readouterr().err
    cfg = load("denoise2d", None, camera_overrides(tmp_path / "cam.yaml"))
    assert cfg.camera.gain == pytest.approx(2.0, rel=0.05)
