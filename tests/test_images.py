"""Semi-synthetic pairs: a user's clean images through the camera model."""

import numpy as np
import pytest

from restore.cli import main
from simulate import Camera, SimConfig, SynthcareError, simulate_pair, simulate_pairs, write_tiff
from simulate.images import load_folder


def _folder(tmp_path, n=2, shape=(96, 112)):
    d = tmp_path / "clean"
    d.mkdir()
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k in range(n):
        img = 100 + 1000 * np.exp(-((yy - 40 - 5 * k) ** 2 + (xx - 50) ** 2) / 200.0)
        write_tiff(d / f"{k}.tif", img.astype(np.float32), (0.1, 0.1))
    return d


def _cfg(folder, **over):
    return SimConfig.from_dict({"shape": [64, 64], "camera": {"photons": 50, "qe": 1.0, "gain": 2.0,
                                                              "offset": 100, "read_noise": 1.0},
                                "sample": {"images": {"folder": str(folder), **over},
                                           "background": 0.1}})


def test_pairs_from_clean_images_are_the_image_through_the_camera(tmp_path):
    cfg = _cfg(_folder(tmp_path))
    p = simulate_pair(cfg, 0, 0)
    cam = Camera.from_config(cfg.camera)
    photons = cam.photons_from_expected(p.clean)
    # the expected image spans background … background + photons (0.1–99.9 percentiles)
    assert photons.min() >= 0.1 * 50 - 1e-3 and photons.max() <= 0.1 * 50 + 50 * 1.05
    assert np.array_equal(p.target, p.clean)
    # the input is the camera's record of it: mean and variance follow the camera
    resid = (p.input - p.clean) / np.sqrt(2.0 * (p.clean - 100) + 4.0 + 1 / 12)
    assert abs(resid.mean()) < 0.05 and resid.var() == pytest.approx(1.0, rel=0.1)
    again = simulate_pair(cfg, 0, 0)
    assert np.array_equal(p.input, again.input)  # a pure function of (seed, index)


def test_a_fraction_mixes_images_and_library_and_batches_equal_single_pairs(tmp_path):
    cfg = _cfg(_folder(tmp_path), fraction=0.5)
    batch = simulate_pairs(cfg, 3, list(range(8)))
    for b in range(8):
        one = simulate_pair(cfg, 3, b)
        assert np.allclose(batch.input[b], one.input) and np.allclose(batch.clean[b], one.clean)
    # library pairs carry filaments over a low background; image pairs the smooth blob
    smooth = [float(np.abs(np.diff(batch.clean[b], axis=1)).mean()) for b in range(8)]
    assert len({round(s, 1) for s in smooth}) > 1


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "holds no TIFF or PNG"),
    (lambda d: (d / "notes.txt").write_text("x"), "holds no TIFF or PNG"),
    (lambda d: write_tiff(d / "small.tif", np.ones((32, 32), np.float32) * np.arange(32), (1, 1)),
     "smaller than the training shape"),
    (lambda d: write_tiff(d / "stack.tif", np.random.default_rng(0).random((3, 80, 80)), (1, 1, 1)),
     "not one 2D grey image"),
])
def test_bad_folders_are_refused_clearly(tmp_path, make, message):
    d = tmp_path / "bad"
    d.mkdir()
    make(d)
    with pytest.raises(SynthcareError, match=message):
        load_folder(str(d), (64, 64))


def test_train_clean_refuses_a_bad_folder_before_any_work(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train", "--preset", "denoise2d", "--clean", str(empty), "--steps", "1",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "holds no TIFF or PNG" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_images_need_a_2d_denoising_task(tmp_path):
    with pytest.raises(Exception, match=r"sample\.images"):
        SimConfig.from_dict({"task": "deconvolve", "shape": [8, 64, 64],
                             "sample": {"images": {"folder": str(tmp_path)}}})


def test_images_in_adu_are_the_expected_camera_values_as_they_are(tmp_path):
    folder = _folder(tmp_path)  # values 100 … 1100: ADU of a camera with offset 100
    cfg = _cfg(folder, units="adu")
    p = simulate_pair(cfg, 0, 0)
    values = np.unique(np.concatenate([a.ravel() for a in load_folder(str(folder), (64, 64),
                                                                       "adu")]))
    # no rescaling, no added background: every clean pixel is a pixel of the image
    assert np.allclose(values[np.searchsorted(values, p.clean.ravel()).clip(0, len(values) - 1)],
                       p.clean.ravel(), rtol=1e-6)
    assert p.clean.max() > 500  # not the [0, 1] range scaling
    resid = (p.input - p.clean) / np.sqrt(2.0 * (p.clean - 100) + 4.0 + 1 / 12)
    assert abs(resid.mean()) < 0.05 and resid.var() == pytest.approx(1.0, rel=0.1)


def test_images_in_adu_below_the_offset_give_zero_photons(tmp_path):
    d = tmp_path / "dark"
    d.mkdir()
    write_tiff(d / "a.tif", np.full((64, 64), 90.0, np.float32)
               + np.arange(64, dtype=np.float32), (0.1, 0.1))  # 90 … 153 ADU, offset 100
    p = simulate_pair(_cfg(d, units="adu"), 0, 0)
    assert p.clean.min() == pytest.approx(100.0)  # clipped at zero photons, never negative
