"""OME-Zarr datasets: read back by ome-zarr-py's own reader with the right axes and scale, equal
to the simulated pairs, resumable, and refused where a TIFF dataset lies."""

from __future__ import annotations

import numpy as np
import pytest

from restore.cli import main
from simulate.config import SimConfig
from simulate.dataset import dataset_spacing, write_dataset
from simulate.pairs import simulate_pair

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

CFG = SimConfig.from_dict({"task": "upsample", "shape": [4, 32, 32], "sampling": {"z_factor": 2}})


def test_zarr_dataset_reads_back_with_ome_zarr_scale_and_pairs(tmp_path):
    from simulate.omezarr import read_scale

    out = write_dataset(CFG, tmp_path / "d.zarr", 2, progress=False, fmt="zarr")
    spacing = dataset_spacing(CFG)
    root = zarr.open_group(str(out), mode="r")
    for name in ("low", "GT", "clean"):
        axes, scale = read_scale(out, name)
        assert axes == ["s", "z", "y", "x"]
        assert scale == pytest.approx([1.0, *spacing[name]])
        arr = root[name]["0"]
        assert arr.shape[0] == 2 and arr.chunks[0] == 1 and arr.chunks[1:] == arr.shape[1:]
    pair = simulate_pair(CFG, CFG.seed, 1)
    np.testing.assert_array_equal(root["low"]["0"][1], pair.input.astype(np.uint16))
    np.testing.assert_allclose(root["GT"]["0"][1], pair.target, rtol=1e-6)
    assert root["GT"]["0"].shape[1] == (CFG.shape[0] - 1) * 2 + 1  # the fine z planes
    assert np.all(root["done"][:] == 1)


def test_zarr_dataset_resumes_and_grows(tmp_path):
    out = write_dataset(CFG, tmp_path / "d.zarr", 1, progress=False, fmt="zarr")
    first = zarr.open_group(str(out), mode="r")["clean"]["0"][0].copy()
    write_dataset(CFG, out, 3, progress=False, fmt="zarr")
    root = zarr.open_group(str(out), mode="r")
    assert root["clean"]["0"].shape[0] == 3 and np.all(root["done"][:] == 1)
    np.testing.assert_array_equal(root["clean"]["0"][0], first)
    np.testing.assert_allclose(root["clean"]["0"][2], simulate_pair(CFG, CFG.seed, 2).clean, rtol=1e-6)


def test_zarr_and_tiff_datasets_do_not_mix(tmp_path, capsys):
    write_dataset(CFG, tmp_path / "d", 1, progress=False)
    argv = ["simulate", "--preset", "denoise2d", "--n", "1", "--format", "zarr"]
    assert main([*argv, "--set", "shape=[32,32]", "--out", str(tmp_path / "e.zarr")]) == 0
    with pytest.raises(Exception, match="another config, seed or format"):
        write_dataset(CFG, tmp_path / "d", 1, progress=False, fmt="zarr")
