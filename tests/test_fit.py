"""``synthcare fit``: camera, resolution, photons and sample recovered from simulated images of
known settings; bad inputs give one clear line."""

import numpy as np
import pytest
import yaml

from restore.cli import main
from simulate import Camera, SimConfig, SynthcareError, simulate_pair, write_tiff
from simulate import fit as fit_mod
from simulate.fit import Fit, check_image
from simulate.fit_noise import electrons, fit_camera, multiplier_spread, noise_line
from simulate.fit_offset import offset_at_skewness, zero_photon_peak
from simulate.fit_optics import fit_cutoff
from simulate.fit_sample import intensity_stats, rank_samples, sim_variance


def _cfg(**over) -> SimConfig:
    base = {"shape": [256, 256],
            "sample": {"microtubules": {"density": 0.0}, "granules": {"density": 0.0},
                       "nuclei": {"density": 0.01, "radius": 3.0}, "background": 0.2},
            "optics": {"psf": "widefield", "na": 0.8, "ni": 1.0, "wavelength": 0.52},
            "sampling": {"pixel": 0.1},
            "camera": {"photons": 60, "qe": 1.0, "gain": 2.0, "offset": 100.0, "read_noise": 3.0}}
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) else v
    return SimConfig.from_dict(base)


@pytest.mark.parametrize("gain, read", [(0.7, 3.0), (2.0, 6.0), (4.0, 2.0)])
def test_noise_line_recovers_the_gain(gain, read):
    cfg = _cfg(camera={"gain": gain, "read_noise": read})
    img = np.concatenate([simulate_pair(cfg, 0, i).input for i in range(2)])
    line = noise_line(img.astype(np.float64))
    assert line.slope == pytest.approx(gain, rel=0.05)
    # the variance at the offset is the read noise
    assert np.sqrt(line.variance(100.0)) / gain == pytest.approx(read, rel=0.25)


def test_noise_line_is_not_biased_by_the_image_borders():
    # a bright ramp is not periodic: a raw FFT sees the jump between its left and right borders,
    # whose ringing leaked signal into the noise band (the slope came out 4.7 % low)
    cam = Camera.from_config(SimConfig.from_dict({"camera": {"gain": 1.0, "read_noise": 5.0,
                                                             "offset": 100.0}}).camera)
    ramp = np.broadcast_to(10 + 290 * np.arange(512) / 511.0, (512, 512)).astype(np.float32)
    img = cam.capture(ramp[None, None], [np.random.default_rng(0)])[0, 0].astype(np.float64)
    assert noise_line(img).slope == pytest.approx(1.0, rel=0.025)


def test_photon_counting_detector_at_high_gain_has_no_em_register():
    # 20 ADU per photon, almost no read noise (a PMT or HyD in counting mode): few photons per
    # pixel, so the grouping of pixels by brightness must not select their noise (the gain came
    # out 14 % low), and the skewness is that of Poisson counts, not of an EM register
    cfg = _cfg(sample={"background": 0.0}, camera={"photons": 30, "gain": 20.0, "offset": 10.0,
                                                    "read_noise": 0.1, "bits": 12})
    img = np.concatenate([simulate_pair(cfg, 1, i).input for i in range(2)]).astype(np.float64)
    cam, report, line = fit_camera(img)
    assert cam["gain"] == pytest.approx(20.0, rel=0.03)
    assert "em_gain" not in cam and any("Poisson-like" in r for r in report)
    skew, se = line.skewness()
    assert skew + 2 * se < 1.25  # confidently below an EM register's 1.5


def test_pmt_like_multiplier_gets_its_pulse_height_spread():
    # a multiplier with narrow pulse heights (c² = 0.15: skewness 1.13) is neither an EM
    # register nor Poisson counts: fit simulates it with the spread its skewness implies
    cfg = _cfg(sample={"background": 0.0}, camera={"photons": 40, "gain": 0.2, "em_gain": 100.0,
                                                    "em_spread": 0.15, "read_noise": 1.0,
                                                    "offset": 10.0, "bits": 12})
    img = np.concatenate([simulate_pair(cfg, 2, i).input for i in range(2)]).astype(np.float64)
    cam, report, line = fit_camera(img)
    skew, se = line.skewness()
    assert line.slope == pytest.approx(0.2 * 100 * 1.15, rel=0.05)
    assert skew == pytest.approx((1 + 0.3) / 1.15, abs=3 * se + 0.05)
    if skew - 2 * se > 1.0:  # resolved from Poisson counts at this sample size
        assert 0.02 <= cam["em_spread"] < 1.0 and "PMT" in " ".join(report)


def _pmt_image(read_noise: float = 3.0, offset: float = 4.0):
    """A PMT-like 8-bit frame (25 ADU per photoelectron, read noise 0.2 × read_noise ADU) of
    sparse nuclei on a dark field."""
    cfg = _cfg(shape=[512, 512], sample={"background": 0.0,
                                         "nuclei": {"density": 0.04, "radius": 3.0}},
               camera={"photons": 6, "gain": 0.2, "em_gain": 100.0, "em_spread": 0.25,
                       "read_noise": read_noise, "offset": offset, "bits": 8})
    return simulate_pair(cfg, 3, 0).input.astype(np.float64)


@pytest.mark.parametrize("read_noise", [2.0, 5.0])
def test_multiplier_offset_and_read_noise_from_the_zero_photon_peak(read_noise):
    # the variance line's intercept put a real confocal PMT frame's read noise at 4.1 ADU where
    # its dark pixels spread by 0.5: the zero-photon peak measures it directly
    cam, report, _ = fit_camera(_pmt_image(read_noise))
    read_adu = cam["read_noise"] * cam["gain"]
    assert read_adu == pytest.approx(0.2 * read_noise, rel=0.15)
    assert cam["offset"] == pytest.approx(4.0, abs=0.15)
    assert any("zero-photon peak" in r for r in report)


def test_no_zero_photon_peak_without_a_multiplier_or_dark_regions():
    cfg = _cfg(shape=[512, 512])  # 2 ADU/e⁻, 3 e⁻ read noise: one electron is within the noise
    assert zero_photon_peak(simulate_pair(cfg, 0, 0).input.astype(np.float64), 2.0) is None
    # an EMCCD frame with a bright background everywhere: few pixels catch no photon
    bright = _cfg(shape=[512, 512], sample={"background": 0.5},
                  camera={"gain": 0.25, "em_gain": 100.0, "read_noise": 20.0})
    assert zero_photon_peak(simulate_pair(bright, 0, 0).input.astype(np.float64), 50.0) is None


@pytest.mark.parametrize("rho", [(0.0, -0.05), (0.2, 0.0), (0.0, 0.0)])
def test_fit_camera_measures_the_noise_correlation_and_keeps_the_gain(rho):
    # read-out electronics correlate neighbours (a real EMCCD frame: -0.05 along x, a confocal
    # PMT frame +0.055): fit measures it and the gain stays right (at 0.2 the band the noise
    # line sees holds ~10 % less noise power than white noise of the same variance)
    cfg = _cfg(camera={"gain": 2.0, "read_noise": 3.0, "correlation": list(rho)})
    img = np.concatenate([simulate_pair(cfg, 0, i).input for i in range(2)]).astype(np.float64)
    cam, report, _ = fit_camera(img)
    got = cam.get("correlation", [0.0, 0.0])
    assert got == pytest.approx(list(rho), abs=0.015)
    assert cam["gain"] == pytest.approx(2.0, rel=0.05)
    assert any("noise correlation" in r for r in report)


def test_multiplier_spread_from_skewness():
    assert multiplier_spread(1.45, 0.05) == 1.0  # an EM register
    assert multiplier_spread(1.03, 0.03) is None  # Poisson counts
    assert multiplier_spread(1.2, 0.02) == pytest.approx(0.25)  # (1 + 2c²)/(1 + c²) = 1.2
    assert multiplier_spread(1.35, 0.2) is None  # not resolved from Poisson: the simpler model


def test_offset_from_the_third_cumulant_of_a_flat_image():
    # a flat image has no spread of intensities for the cumulant's slope, but at the known
    # Poisson skewness each group of pixels places the offset by itself
    cam = Camera(qe=1.0, gain=2.0, offset=100.0, read_noise=3.0)
    found = []
    for seed in range(4):
        img = cam.capture(np.full((512, 512), 12.0, np.float32), np.random.default_rng(seed))
        o, se = offset_at_skewness(np.asarray(img, np.float64), 2.0, 1.0)
        assert 0 < se < 2.0  # ADU: 1 e⁻ at this gain
        found.append(o)
    # unbiased: the mean of four images (±0.5 ADU) within 0.5 e⁻. A structure test that shares
    # the pixel's noise trims its Poisson tail and read +1.8 ADU; a wrong skewness (1.5, an EM
    # register's) would put it 8 ADU low
    assert np.mean(found) == pytest.approx(100.0, abs=1.0)


def test_offset_of_a_bright_structured_image():
    # 300 photons at the peak on a background of 30: where a cubic does not predict the signal
    # (peaks), the residual keeps some of it, and the noise there is stronger, which adds
    # 3·Cov(signal, variance) to the third cumulant; uncorrected it read the offset 7-9 e⁻ low
    cfg = _cfg(shape=[512, 256], sample={"background": 0.1, "mitochondria": {"density": 0.3}},
               camera={"photons": 300, "gain": 1.0, "read_noise": 2.0})
    img = simulate_pair(cfg, 0, 0).input.astype(np.float64)
    o, _ = offset_at_skewness(img, 1.0, 1.0)
    assert o == pytest.approx(100.0, abs=3.0)


def test_fitted_offset_is_never_negative():
    # offset-subtracted and clipped at zero: the variance line's zero lies below 0
    cfg = _cfg(camera={"gain": 1.0, "read_noise": 6.0, "offset": 0.0})
    img = simulate_pair(cfg, 0, 0).input.astype(np.float64)
    cam, _, _ = fit_camera(img)
    assert cam["offset"] >= 0.0


def test_fit_camera_with_a_known_offset():
    cfg = _cfg(camera={"gain": 1.5, "read_noise": 4.0})
    img = simulate_pair(cfg, 0, 0).input.astype(np.float64)
    cam, _, _ = fit_camera(img, offset=100.0)
    assert cam["gain"] == pytest.approx(1.5, rel=0.05)
    assert cam["read_noise"] == pytest.approx(4.0, rel=0.15)
    assert "em_gain" not in cam


def test_fit_camera_offset_is_never_above_what_the_data_allow():
    cfg = _cfg(camera={"gain": 1.0, "read_noise": 2.0, "offset": 50.0})
    img = simulate_pair(cfg, 0, 1).input.astype(np.float64)
    cam, report, line = fit_camera(img)
    assert cam["offset"] <= line.bins[0, 0]  # below the darkest regions' mean
    assert cam["offset"] == pytest.approx(50.0, abs=15.0)
    assert any("offset" in r for r in report)


def test_amplified_detector_is_simulated_with_an_em_register():
    # 512² pixels: at 256² the skewness's standard error (~0.3) leaves EM and Poisson apart by
    # under two errors, and an unresolved skewness is simulated as Poisson counts
    cfg = _cfg(shape=[512, 512], camera={"gain": 0.25, "em_gain": 100.0, "read_noise": 20.0})
    img = simulate_pair(cfg, 0, 0).input.astype(np.float64)
    cam, report, line = fit_camera(img)
    assert cam["em_gain"] == 100.0
    assert line.slope == pytest.approx(0.25 * 100 * 2, rel=0.08)  # gain × G × F²
    assert cam["em_spread"] == 1.0 and any("EM register (EMCCD)" in r for r in report)


def test_cutoff_of_a_simulated_image():
    cfg = _cfg(camera={"photons": 200})
    img = simulate_pair(cfg, 0, 0).input.astype(np.float64)
    cam, _, line = fit_camera(img, offset=100.0)
    e = electrons(img, cam)
    conv = cam["gain"]

    def var(m):
        return line.variance(np.asarray(m) * conv + 100.0) / conv**2

    cutoff, _ = fit_cutoff(e, var, cfg.optics)
    true = 2 * 0.8 / 0.52 * 0.1  # 2 NA / λ in cycles per pixel
    assert cutoff == pytest.approx(true, rel=0.3)


def test_ranking_finds_the_structure_type():
    truth = _cfg(sample={"nuclei": {"density": 0.0},
                         "membranes": {"coverage": 0.9, "radius": 2.5}})
    img = simulate_pair(truth, 5, 0).input.astype(np.float64)
    cam = truth.camera
    e = (img - cam.offset) / cam.gain
    st = intensity_stats(e)
    base = truth.with_overrides({"sample.membranes.coverage": 0.0,
                                 "camera.photons": max(st["peak"] - st["background"], 1.0)})
    ranked = rank_samples(base, e, sim_variance(cam), 0.25, names=["membranes", "nuclei", "granules"])
    assert ranked[0][0].startswith("membranes")


@pytest.mark.parametrize("image, message", [
    (np.full((100, 100), 7.0), "constant"),
    (np.dstack([np.random.default_rng(0).random((100, 100))] * 3), "RGB"),
    (np.random.default_rng(0).random((3, 100, 100)), "single plane"),
    (np.where(np.eye(100) > 0, np.nan, 1.0), "NaN"),
    (np.random.default_rng(0).random((32, 32)), "at least 64"),
])
def test_bad_images_are_refused_clearly(image, message):
    with pytest.raises(SynthcareError, match=message):
        check_image(image)


def test_saturated_image_is_refused():
    img = np.random.default_rng(0).poisson(50, (100, 100)).astype(float)
    img[:, :40] = 4095
    with pytest.raises(SynthcareError, match="saturated"):
        check_image(img)


def test_fit_command_writes_a_config_that_trains(tmp_path, capsys, monkeypatch):
    cfg = _cfg()
    img = simulate_pair(cfg, 0, 0).input
    write_tiff(tmp_path / "raw.tif", img.astype(np.uint16), (0.1, 0.1), dtype=np.uint16)
    out = tmp_path / "fit.yaml"
    code = main(["fit", str(tmp_path / "raw.tif"), "--out", str(out), "--na", "0.8",
                 "--sample", "nuclei"])
    assert code == 0
    text = capsys.readouterr().out
    assert "pixel" in text and (tmp_path / "fit.png").exists()
    run = yaml.safe_load(out.read_text())
    assert run["sampling"]["pixel"] == pytest.approx(0.1)  # from the file's metadata
    assert run["camera"]["gain"] == pytest.approx(2.0, rel=0.1)
    assert run["sample"]["nuclei"]["density"] > 0
    # training ends on restorations of this very image (restore.refine), unless --no-refine
    assert run["train"]["refine"]["images"] == [str((tmp_path / "raw.tif").resolve())]
    from restore.config import load_run

    load_run(config=out)  # a valid run file
    again = {k: v for k, v in run.items() if k != "train"} | {
        "train": {k: v for k, v in run["train"].items() if k != "refine"}}
    monkeypatch.setattr(fit_mod, "fit_image", lambda *a, **k: Fit(run=again))  # skip the work
    assert main(["fit", str(tmp_path / "raw.tif"), "--out", str(tmp_path / "lib.yaml"),
                 "--no-refine"]) == 0
    assert "refine" not in yaml.safe_load((tmp_path / "lib.yaml").read_text())["train"]


def test_fit_command_refuses_an_unwritable_output_before_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(["fit", str(tmp_path / "none.tif"), "--out", str(blocker / "fit.yaml")])
    assert code == 2
    assert "not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
