"""Datasets on disk: layout, metadata, atomic files, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from restore.cli import main
from simulate.config import SimConfig
from simulate.dataset import write_dataset
from simulate.errors import SynthcareError
from simulate.pairs import simulate_pair
from simulate.tiff import read_tiff, write_tiff

CFG = SimConfig.from_dict({"task": "upsample", "shape": [4, 32, 32],
                           "sampling": {"z_factor": 2}})


def test_dataset_layout_metadata_and_content(tmp_path):
    out = write_dataset(CFG, tmp_path / "ds", 2, seed=5, progress=False)
    for sub in ("low", "GT", "clean"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["0000.tif", "0001.tif"]
    low, meta = read_tiff(out / "low" / "0001.tif")
    gt, gt_meta = read_tiff(out / "GT" / "0001.tif")
    assert low.dtype == np.uint16 and low.shape == (4, 32, 32) and gt.shape == (7, 32, 32)
    assert meta["spacing"] == pytest.approx((0.2, 0.1, 0.1))
    assert gt_meta["spacing"] == pytest.approx((0.1, 0.1, 0.1))
    pair = simulate_pair(CFG, 5, 1)
    np.testing.assert_array_equal(low, pair.input)
    np.testing.assert_array_equal(gt, pair.target)
    manifest = json.loads((out / "manifest.json").read_text())
    # the simulating device is not part of a dataset's identity (a run may resume on another)
    want = {k: v for k, v in CFG.to_dict().items() if k != "device"}
    assert manifest["seed"] == 5 and manifest["n"] == 2 and manifest["config"] == want
    assert "numpy" in manifest["versions"]
    assert SimConfig.from_yaml(out / "config.yaml") == CFG


def test_rerun_resumes_and_skips_finished_pairs(tmp_path):
    out = write_dataset(CFG, tmp_path / "ds", 2, progress=False)
    first = (out / "GT" / "0000.tif").stat().st_mtime_ns
    (out / "low" / "0001.tif").unlink()  # as if interrupted while writing pair 1
    (out / "GT" / ".0002.tif.abc.tmp").write_bytes(b"partial")  # a stale temporary file
    write_dataset(CFG, out, 3, progress=False)
    assert (out / "GT" / "0000.tif").stat().st_mtime_ns == first
    assert (out / "low" / "0001.tif").exists() and (out / "low" / "0002.tif").exists()
    with pytest.raises(SynthcareError, match="another config"):
        write_dataset(CFG.with_overrides(["camera.photons=99"]), out, 1, progress=False)


def test_write_tiff_2d_metadata(tmp_path):
    path = tmp_path / "a.tif"
    write_tiff(path, np.ones((8, 9)), (0.2, 0.1))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "YX"
    data, meta = read_tiff(path)
    assert data.dtype == np.float32 and meta["spacing"] == pytest.approx((0.2, 0.1))
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_simulate_with_preview(tmp_path, capsys):
    png = tmp_path / "p.png"
    assert main(["simulate", "--preset", "denoise2d", "--set", "shape=[48,48]", "--n", "1",
                 "--out", str(tmp_path / "ds"), "--preview", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ds" / "low" / "0000.tif").exists()


def test_hyperstacks_carry_the_tags_fiji_reads(tmp_path):
    """Fiji takes the voxel size from the TIFF resolution tags (pixels per unit), the unit and
    z spacing from ImageJ's ImageDescription: checked on the raw tags, not with our reader."""
    import tifffile

    write_tiff(tmp_path / "s.tif", np.zeros((5, 6, 7), np.float32), (0.4, 0.1, 0.125))
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        page = tif.pages[0]
        desc = page.tags["ImageDescription"].value
        fields = dict(line.split("=", 1) for line in desc.strip().splitlines() if "=" in line)
        assert fields["ImageJ"] and fields["unit"] == "um" and float(fields["spacing"]) == pytest.approx(0.4)
        assert int(fields["slices"]) == 5 and fields.get("hyperstack") == "true"
        xr, yr = page.tags["XResolution"].value, page.tags["YResolution"].value
        assert xr[0] / xr[1] == pytest.approx(8.0) and yr[0] / yr[1] == pytest.approx(10.0)


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result is readable like any file
    the user makes (mode 0666 minus the umask), not mkstemp's 0600."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    write_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.float32), (0.1, 0.1))
    assert (tmp_path / "a.tif").stat().st_mode & 0o777 == 0o666 & ~mask


def test_ome_tiff_voxel_size_is_read_from_its_metadata(tmp_path):
    data = np.zeros((3, 8, 9), np.uint16)
    tifffile.imwrite(tmp_path / "a.ome.tif", data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.065, "PhysicalSizeY": 0.065, "PhysicalSizeZ": 250.0,
        "PhysicalSizeZUnit": "nm"})
    image, meta = read_tiff(tmp_path / "a.ome.tif")
    assert image.shape == (3, 8, 9) and meta["axes"] == "ZYX"
    assert meta["spacing"] == pytest.approx((0.25, 0.065, 0.065))


ISO = ["--preset", "isotropic", "--set", "shape=[4,32,32]"]


def test_isotropic_pairs_are_labelled_slices_and_predict_refuses_them(tmp_path, capsys):
    out = tmp_path / "iso"
    assert main(["simulate", *ISO, "--n", "1", "--out", str(out)]) == 0
    low, meta = read_tiff(out / "low" / "0000.tif")
    assert low.shape[1:] == (29, 32)  # frames of rows cropped to (⌈32/4⌉ − 1)·4 + 1
    assert meta["axes"] == "TYX" and "not a z-stack" in meta["info"]
    assert meta["spacing"] == pytest.approx((0.1, 0.1))  # lateral pixels, no z-spacing
    assert json.loads((out / "manifest.json").read_text())["axes"] == "TYX"
    run = tmp_path / "run"
    small = ["train.patch=[16,16]", "train.filters=4", "train.val_patches=2"]
    assert main(["train", *ISO, *[a for s in small for a in ("--set", s)], "--steps", "1",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(run), str(out / "low" / "0000.tif"), "-o",
                 str(tmp_path / "r.tif")]) == 2
    assert "isotropic training pair" in capsys.readouterr().err and not (tmp_path / "r.tif").exists()


@pytest.mark.parametrize("args", [ISO, ["--preset", "denoise2d", "--set", "shape=[32,32]"]])
def test_volumes_are_the_held_out_cases_evaluate_scores_as_acquired(tmp_path, args):
    from restore.config import load_run
    from restore.data import TEST_OFFSET
    from restore.evaluate import cases

    out = tmp_path / "ds"
    assert main(["simulate", *args, "--n", "1", "--volumes", "2", "--out", str(out)]) == 0
    run = load_run(args[1], None, args[3:])
    want = cases(run.sim, run.seed + TEST_OFFSET, 2)
    for i, case in enumerate(want):
        x, x_meta = read_tiff(out / "eval" / "input" / f"{i:04d}.tif")
        ref, ref_meta = read_tiff(out / "eval" / "reference" / f"{i:04d}.tif")
        np.testing.assert_array_equal(x, case.input)  # the camera's ADU, stored exactly
        np.testing.assert_allclose(ref, case.reference, rtol=1e-6)
    if args is ISO:  # the stack as acquired (z-step 0.4 µm) and the isotropic reference (0.1 µm)
        assert x.shape == (4, 32, 32) and ref.shape == (13, 32, 32) and x.dtype == np.uint16
        assert x_meta["spacing"] == pytest.approx((0.4, 0.1, 0.1))
        assert ref_meta["spacing"] == pytest.approx((0.1, 0.1, 0.1))
    else:
        assert x.shape == ref.shape == (32, 32)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["eval"]["n"] == 2 and manifest["eval"]["seed"] == run.seed + TEST_OFFSET


def test_bad_volumes_are_refused_before_anything_is_written(tmp_path, capsys):
    for extra, message in ((["--volumes", "-1"], "--volumes must be 0 or more"),
                           (["--volumes", "1", "--format", "zarr"], "--format tiff")):
        assert main(["simulate", "--preset", "denoise2d", "--out", str(tmp_path / "x"), *extra]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "x").exists()
