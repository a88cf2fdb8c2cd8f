"""Prediction block by block: OME-Zarr in and out, never the whole volume in memory, equal to
one pass over the whole image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.blocks import BYTES_PER_SLAB_VOXEL, image_affine, predict_blocks
from restore.cli import main
from restore.normalize import percentile_affine
from restore.predict import predict
from restore.unet import UNet, UNetConfig
from simulate import read_tiff, write_tiff

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")


def _model(ndim, **kw) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(ndim=ndim, **kw)).eval()


@pytest.mark.parametrize("augment", [False, True])
def test_a_volume_larger_than_the_budget_equals_one_pass(augment, recorder):
    model = _model(3, depth=1, filters=4)  # 2^depth = 2, halo 10 planes
    ramp = np.linspace(0.5, 1.5, 100)[:, None, None]  # brightness changes along z
    vol = (np.random.default_rng(4).gamma(2, 50, (100, 24, 20)) * ramp).astype(np.float32)
    budget = vol.nbytes  # slabs of 2 + 2·10 planes; percentiles from every 8th plane
    source, out = recorder(vol), np.zeros_like(vol)
    predict_blocks(model, source, "ZYX", out, memory_budget=budget, augment=augment)
    aff = image_affine(vol, (), 100, budget // BYTES_PER_SLAB_VOXEL)
    whole = predict(model, vol, "ZYX", tiles=None, augment=augment, affine=aff)
    assert np.abs(out - whole).max() < 1e-4 * np.abs(whole).max()
    assert source.largest <= 22 * vol[0].nbytes < vol.nbytes / 4  # never the whole volume
    exact = percentile_affine(vol)  # percentiles sampled through the whole depth are close to
    assert aff.scale == pytest.approx(exact.scale, rel=0.1)  # the exact ones (one slab's: ×2)


@pytest.mark.parametrize("augment", [False, True])
def test_a_2d_model_restores_each_plane_in_row_slabs(augment):
    model = _model(2, depth=2, filters=4)  # halo 44 rows, grid of 4
    stack = np.random.default_rng(5).gamma(2, 50, (3, 121, 33)).astype(np.float32)
    out = np.zeros_like(stack)  # neither side a multiple of 4: every view is padded
    budget = 33 * 96 * BYTES_PER_SLAB_VOXEL  # cores of 8 rows
    predict_blocks(model, stack, "ZYX", out, memory_budget=budget, augment=augment)
    for z in range(3):  # each plane its own image, with its own normalisation
        aff = image_affine(stack, (z,), 121, budget // BYTES_PER_SLAB_VOXEL)
        whole = predict(model, stack[z], "YX", tiles=None, affine=aff, augment=augment)
        assert np.abs(out[z] - whole).max() < 1e-4 * np.abs(whole).max()


def test_an_image_narrower_than_the_pooling_grid_equals_one_pass():
    # 2 columns cannot be reflected to 4: one pass pads every axis with edge values, and so
    # must the slabs (they padded their rows by reflection, the columns by edge values)
    model = _model(2, depth=2, filters=4)
    image = np.random.default_rng(6).gamma(2, 50, (121, 2)).astype(np.float32)
    out = np.zeros_like(image)
    budget = 4 * 96 * BYTES_PER_SLAB_VOXEL  # cores of 8 rows
    predict_blocks(model, image, "YX", out, memory_budget=budget)
    aff = image_affine(image, (), 121, budget // BYTES_PER_SLAB_VOXEL)
    whole = predict(model, image, "YX", tiles=None, affine=aff)
    assert np.abs(out - whole).max() < 1e-4 * np.abs(whole).max()


def test_probabilistic_scale_is_written_block_by_block():
    model = _model(2, depth=1, filters=4, probabilistic=True)
    img = np.random.default_rng(6).gamma(2, 50, (90, 40)).astype(np.float32)
    out, scale = np.zeros_like(img), np.zeros_like(img)
    budget = 40 * 46 * BYTES_PER_SLAB_VOXEL  # slabs of 10-row cores
    predict_blocks(model, img, "YX", out, scale_out=scale, memory_budget=budget)
    mean, want = predict(model, img, "YX", tiles=None, return_scale=True,
                         affine=image_affine(img, (), 90, 40 * 46))
    assert np.abs(out - mean).max() < 1e-4 * np.abs(mean).max()
    assert np.abs(scale - want).max() < 1e-4 * np.abs(want).max()


def _trained(tmp_path):
    run = tmp_path / "run"
    sets = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=2", "train.filters=8",
            "train.val_patches=2", "train.workers=0"]
    argv = ["train", "--preset", "denoise2d", "--steps", "2", "--out", str(run)]
    argv += [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    return run


def test_predict_ome_zarr_in_and_out_keeps_axes_and_scale(tmp_path):
    from simulate.omezarr import read_scale

    run = _trained(tmp_path)
    data = tmp_path / "d.zarr"
    assert main(["simulate", "--preset", "denoise2d", "--n", "3", "--format", "zarr", "--set",
                 "shape=[64,64]", "--out", str(data)]) == 0
    out = tmp_path / "restored.zarr"
    assert main(["predict", "--model", str(run), str(data / "low"), "-o", str(out)]) == 0
    axes, scale = read_scale(tmp_path, "restored.zarr")  # ome-zarr-py's own reader
    assert axes == ["s", "y", "x"] and scale == pytest.approx(read_scale(data, "low")[1])
    low = zarr.open_group(str(data), mode="r")["low"]["0"][1]
    write_tiff(tmp_path / "low1.tif", low.astype(np.float32), (0.1, 0.1))
    assert main(["predict", "--model", str(run), str(tmp_path / "low1.tif"), "-o",
                 str(tmp_path / "low1_out.tif")]) == 0
    via_tiff = read_tiff(tmp_path / "low1_out.tif")[0]
    got = zarr.open_group(str(out), mode="r")["0"][1]
    assert np.abs(got - via_tiff).max() < 1e-4 * np.abs(via_tiff).max()
    assert not list(tmp_path.glob(".*partial*"))
    # in blocks of a few rows (normalised by percentiles of every few rows): close to one pass
    assert main(["predict", "--model", str(run), str(data / "low"), "-o",
                 str(tmp_path / "small.zarr"), "--memory", "0.05"]) == 0
    small = zarr.open_group(str(tmp_path / "small.zarr"), mode="r")["0"][1]
    assert np.abs(small - via_tiff).max() < 0.02 * np.abs(via_tiff).max()
    # an existing output is never replaced
    assert main(["predict", "--model", str(run), str(data / "low"), "-o", str(out)]) == 2
    # a TIFF restored into OME-Zarr, and OME-Zarr into a TIFF (pairs become frames)
    assert main(["predict", "--model", str(run), str(tmp_path / "low1.tif"), "-o",
                 str(tmp_path / "one.zarr")]) == 0
    assert np.allclose(zarr.open_group(str(tmp_path / "one.zarr"), mode="r")["0"][:], via_tiff,
                       rtol=1e-4, atol=1e-3)
    assert main(["predict", "--model", str(run), str(data / "low"), "-o",
                 str(tmp_path / "all.tif")]) == 0
    assert read_tiff(tmp_path / "all.tif")[0].shape == (3, 64, 64)


def test_zarr_inputs_with_unexpected_axes_are_refused_in_one_line(tmp_path, capsys):
    from simulate.omezarr import create_image

    run = _trained(tmp_path)
    capsys.readouterr()
    a = zarr.open_group(str(tmp_path / "odd.zarr"), mode="w")
    a.create_array("0", shape=(2, 8, 8), dtype="f4")
    a.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "angle"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale",
                                                                  "scale": [1, 1, 1]}]}]}]}
    bare = zarr.open_array(str(tmp_path / "bare.zarr"), mode="w", shape=(2, 3, 8, 8), dtype="f4")
    bare[...] = 1
    create_image(tmp_path / "yx.zarr", (64, 64), "YX", (0.1, 0.1), (64, 64))
    cases = [(tmp_path / "odd.zarr", "has axes ['angle', 'y', 'x']"),
             (tmp_path / "bare.zarr", "give its axes with --axes"),
             (tmp_path / "d.zarr", "is not a Zarr array or OME-Zarr image")]
    for path, message in cases:
        assert main(["predict", "--model", str(run), str(path), "-o", str(tmp_path / "o.zarr")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["predict", "--model", str(run), str(tmp_path / "yx.zarr"), "--axes", "ZYX",
                 "-o", str(tmp_path / "o.zarr")]) == 2
    assert "contradicts" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()
    assert main(["predict", "--model", str(run), str(tmp_path / "yx.zarr"), "-o",
                 str(tmp_path / "o.zarr"), "--report", str(tmp_path / "r.json")]) == 2
    assert "--report checks images held in memory" in capsys.readouterr().err
    assert main(["predict", "--model", str(run), str(tmp_path / "yx.zarr"), "-o",
                 str(tmp_path / "o.zarr"), "--memory", "-1"]) == 2
    assert "--memory -1: give the MiB" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_bare_arrays_take_axes_and_outputs_keep_ome_order(tmp_path, capsys):
    from restore.blocks import open_input

    bare = zarr.open_array(str(tmp_path / "czyx.zarr"), mode="w", shape=(2, 3, 8, 8), dtype="f4")
    bare[...] = 1
    assert open_input(str(tmp_path / "czyx.zarr"), "CZYX")[1] == "CZYX"
    run = _trained(tmp_path)
    stack = np.ones((3, 2, 32, 32), np.float32)
    write_tiff(tmp_path / "zc.tif", stack, (1.0, 0.1, 0.1), axes="ZCYX")
    assert main(["predict", "--model", str(run), str(tmp_path / "zc.tif"), "--axes", "ZCYX",
                 "-o", str(tmp_path / "zc.zarr")]) == 2
    assert "order t, c, z, y, x" in capsys.readouterr().err
    assert not (tmp_path / "zc.zarr").exists()
