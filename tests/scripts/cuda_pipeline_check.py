"""Run under NUMBA_ENABLE_CUDASIM=1: the whole ``device: cuda`` path against the CPU path.

cupy is played by numpy dressed as cupy (:mod:`fake_cupy`: device-array type, cupy's refusal
of host arrays), the CUDA kernels by numba's simulator, so every branch a GPU takes runs:
batched pairs of every task (CUDA rendering and camera, the gather fold, cupyx FFTs and
filters), device training batches through DLPack, the chunked dataset writer and a few training
steps. Prints one JSON line per check; argument ``pairs``, ``batches`` or ``rest`` picks a part.
"""

import json
import sys
import tempfile
from pathlib import Path

import fake_cupy
import numpy as np

cp = fake_cupy.install()

from restore.config import load_run  # noqa: E402
from restore.data import SimulatedBatches  # noqa: E402
from restore.device_batches import DeviceBatches  # noqa: E402
from restore.train import train  # noqa: E402
from simulate import SimConfig, simulate_pairs  # noqa: E402
from simulate import pairs as pairs_mod  # noqa: E402
from simulate.dataset import write_dataset  # noqa: E402

pairs_mod.MAX_CHUNK = 3  # chunks of a few pairs: the simulator runs every GPU thread in Python

SPARSE = {"microtubules": {"density": 0.3}, "granules": {"density": 0.02}}
SMALL3D = [4, 20, 20]
TASKS = {
    "denoise2d": ("denoise", [24, 24], {"sample": {**SPARSE, "background_smooth": 0.5}}),
    "denoise3d-high": ("denoise", SMALL3D, {"target": {"noise": "high"}}),
    "deconvolve": ("deconvolve", SMALL3D, {}),
    "n2n": ("n2n", [24, 24], {}),
    "upsample": ("upsample", SMALL3D, {}),
    "isotropic": ("isotropic", SMALL3D, {}),
}


def configs(task: str, shape: list[int], extra: dict) -> tuple[SimConfig, SimConfig]:
    extra = {"sample": SPARSE, **extra}
    base = {"task": task, "shape": shape, "sampling": {"z_factor": 2}, **extra}
    return SimConfig.from_dict(base), SimConfig.from_dict({**base, "device": "cuda"})


def compare(got, want) -> dict:
    diff = np.abs(got - want)
    return {"shape_ok": got.shape == want.shape,
            "max_rel_diff": float(diff.max() / max(float(np.abs(want).max()), 1e-12)),
            "equal_fraction": float(np.mean(diff <= 1e-3 * max(float(np.abs(want).max()), 1e-12)))}


def pairs() -> None:
    for name, (task, shape, extra) in TASKS.items():
        cpu, gpu = configs(task, shape, extra)
        dev = simulate_pairs(gpu, 4, [2, 0])
        host = dev.to_host()
        ref = simulate_pairs(cpu, 4, [2, 0])
        row = {"check": f"pairs/{name}",
               "device_arrays": all(isinstance(getattr(dev, k), cp.ndarray)
                                    for k in ("input", "target", "clean"))}
        for k in ("input", "target", "clean"):
            row[k] = compare(getattr(host, k), getattr(ref, k))
        print(json.dumps(row), flush=True)


def batches() -> None:
    cpu, gpu = configs("denoise", [32, 32], {})
    kw = dict(seed=3, batch_size=3, patch=(16, 16), patches_per_image=2, jitter=2.0)
    ref, dev = SimulatedBatches(cpu, **kw), DeviceBatches(gpu, chunk=2, **kw)
    worst = 0.0
    for b in (0, 1, 2, 1):
        for got, want in zip(dev(b), ref(b), strict=True):
            worst = max(worst, float(np.abs(got.numpy() - np.asarray(want)).max()))
    print(json.dumps({"check": "batches", "max_abs_diff": worst}), flush=True)


def rest() -> None:
    cpu, gpu = configs("denoise", [24, 24], {})
    with tempfile.TemporaryDirectory() as tmp:
        a = write_dataset(gpu, Path(tmp) / "gpu", 3, progress=False)
        b = write_dataset(cpu, Path(tmp) / "cpu", 3, progress=False)
        import tifffile

        files = sorted(str(p.relative_to(a)) for p in a.rglob("*.tif"))
        same = files == sorted(str(p.relative_to(b)) for p in b.rglob("*.tif")) and len(files) > 0
        worst = max(compare(tifffile.imread(a / f), tifffile.imread(b / f))["max_rel_diff"]
                    for f in files) if same else float("inf")
        print(json.dumps({"check": "dataset", "files": len(files), "same_files": same,
                          "max_rel_diff": worst}), flush=True)
        run = load_run("denoise2d", None, [
            "device=cuda", "shape=[32,32]", "train.patch=[16,16]", "train.batch_size=2",
            "train.filters=4", "train.depth=1", "train.val_patches=2", "train.patches_per_image=2",
            "train.steps=4", "train.val_every=2", "train.workers=0", "train.device=cpu",
            "sample.microtubules.density=0.3", "sample.granules.density=0.02"])
        summary = train(run, Path(tmp) / "run", progress=False)
        print(json.dumps({"check": "train", "steps": summary["steps"],
                          "best_val_loss": float(summary["best_val_loss"])}),
              flush=True)


{"pairs": pairs, "batches": batches, "rest": rest}[sys.argv[1]]()
