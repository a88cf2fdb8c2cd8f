"""The CUDA kernels (rendering, camera), run on the CPU under numba's CUDA simulator, match the CPU
ones; and the whole ``device: cuda`` path (numpy dressed as cupy, kernels in the simulator)
matches the CPU path."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).parent / "scripts"


def _script(name: str, *args: str, simulator: bool = True) -> list[dict]:
    """Run tests/scripts/``name`` in a fresh interpreter (numba's CUDA simulator must be switched
    on before numba is imported) and return its JSON lines."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = subprocess.run([sys.executable, str(SCRIPTS / name), *args], env=env,
                         capture_output=True, text=True, timeout=900,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.strip().splitlines()]


@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_kernels_match_cpu_under_the_simulator(seed):
    r = _script("cuda_render_check.py", str(seed))[-1]
    assert r["n_filaments"] > 0 and r["n_granules"] > 0 and r["n_beads"] > 0
    assert r["max_rel_diff"] < 1e-5 and r["batch_max_rel_diff"] < 1e-5
    assert r["gpu_sum"] == pytest.approx(r["cpu_sum"], rel=1e-6)


def test_cuda_render_without_a_gpu_is_a_clear_error():
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a CUDA device (or the simulator) is present")
    from simulate import SynthcareError, phantoms
    from simulate.render_cuda import render_cuda

    empty = phantoms.Sample(phantoms.Filaments(np.zeros((0, 3)), np.zeros(1, np.int64), np.zeros(0)),
                            phantoms.Ellipsoids(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0),
                                                np.zeros((0, 3, 3)), np.zeros(0)),
                            phantoms.Points(np.zeros((0, 3)), np.zeros(0)))
    with pytest.raises(SynthcareError, match="cuda"):
        render_cuda(empty, (2, 8, 8), (0.1, 0.1, 0.1))


def test_cuda_camera_kernel_is_bit_identical_to_the_cpu_under_the_simulator():
    rows = _script("cuda_camera_check.py")
    assert {r["camera"] for r in rows} == {"scmos", "emccd", "counting", "pmt"}
    for r in rows:
        assert r["identical"], r


def _pipeline(part: str) -> list[dict]:
    return _script("cuda_pipeline_check.py", part)


def test_every_task_simulated_through_the_gpu_path_equals_the_cpu_path():
    rows = _pipeline("pairs")
    assert len(rows) == 6
    for r in rows:
        assert r["device_arrays"], r["check"]  # the arrays stayed on the "device"
        for k in ("input", "target", "clean"):
            assert r[k]["shape_ok"], (r["check"], k)
            # same photons to float rounding (gather fold, cupyx FFTs), then the same Philox
            # draws: noise flips only where rounding moves a draw across a boundary
            assert r[k]["max_rel_diff"] < 1e-5, (r["check"], k, r[k])
            assert r[k]["equal_fraction"] == 1.0, (r["check"], k, r[k])


def test_training_batches_from_the_gpu_path_equal_the_cpu_batches():
    (r,) = _pipeline("batches")
    assert r["max_abs_diff"] < 1e-5


@pytest.mark.slow  # 60 s under the simulator: the default run must stay under 10 minutes
def test_gpu_path_writes_the_same_dataset_and_trains():
    dataset, run = _pipeline("rest")
    assert dataset["same_files"] and dataset["files"] == 9
    assert dataset["max_rel_diff"] < 1e-5
    assert run["steps"] == 4 and run["best_val_loss"] < float("inf")


def _has_module(name: str) -> bool:
    """find_spec of a dotted name imports its parent package, which may be absent: no error."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _has_module("nvidia.cuda_nvcc"),
                    reason="NVVM missing: pip install nvidia-cuda-nvcc-cu12 (in the dev extra)")
def test_cuda_kernels_compile_for_a_real_gpu():
    # the simulator runs Python: only the CUDA compiler shows that numba's CUDA target types the
    # kernels (and the @njit Philox samplers they call), here to sm_90 PTX without a GPU
    rows = _script("cuda_ptx_check.py", simulator=False)
    assert {r["kernel"] for r in rows} == {"camera", "splat_rows", "ellipsoid_rows"}
    assert all(r["sm_90"] and r["entry"] for r in rows), rows
