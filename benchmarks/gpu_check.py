"""GPU against CPU, in one script (under 5 minutes on one H100): correctness, pair speed, and the
data overhead of training fed by pairs simulated on the GPU.

    python benchmarks/gpu_check.py [--json out.json] [--steps 400]

1. checks: rendering (CUDA kernels vs the CPU's, float tolerance), camera (the same Philox
   streams: frames identical but for the rare draw that a last-bit difference of the GPU's
   fused multiply-adds or log/exp flips), whole pairs of every workflow preset (noise-free images to
   float tolerance, noise statistics equal), device batches vs the CPU's batches;
2. pair generation, seconds per pair, for the 2D and 3D sizes of bench_simulate.py: CPU one pair
   at a time, GPU one pair at a time and in chunks (``simulate_pairs``);
3. training steps of the denoise2d and denoise3d presets fed by GPU pairs (``DeviceBatches``,
   as ``synthcare train --device cuda`` does: geometry workers, next chunk prepared by a thread;
   then without the thread, and without workers) against the same steps fed by pre-generated
   device tensors: the data overhead in % (goal: under 5 %).

Each part catches its own failure, so one broken part still leaves the others' numbers. Prints
a table and JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import traceback

import numpy as np
import torch
from bench_simulate import CASES
from common import emit

from restore import losses
from restore.config import load_run
from restore.data import SimulatedBatches, model_ndim
from restore.device_batches import DeviceBatches, default_workers
from restore.train import build_model, train_step
from restore.unet import memory_format_for
from simulate import (
    SimConfig,
    backend,
    chunk_size,
    library,
    render,
    simulate_pair,
    simulate_pairs,
)
from simulate.camera import Camera
from simulate.sampling import Grid

WORKFLOWS = ["denoise2d", "denoise3d", "upsample3d", "isotropic", "deconvolve", "n2n"]


def _sync() -> None:
    backend.cupy().cuda.get_current_stream().synchronize()
    torch.cuda.synchronize()


def _cfg(preset: str, device: str) -> SimConfig:
    return SimConfig.from_preset(preset).model_copy(update={"device": device})


def check_render() -> dict:
    cfg = _cfg("denoise3d", "cpu")
    grid = Grid.from_config(cfg)
    s = library.sample(cfg.sample, grid.extent, np.random.default_rng(0), slab=False)
    cpu = render.render(s, grid.truth_shape, grid.truth_spacing)
    gpu = backend.to_host(render.render_batch([s], grid.truth_shape, grid.truth_spacing,
                                              backend.cupy())[0])
    rel = float(np.abs(cpu - gpu).max() / cpu.max())
    return {"check": "render", "max_rel_diff": rel, "ok": rel < 1e-5}


def check_camera() -> dict:
    cp = backend.cupy()
    photons = np.random.default_rng(1).gamma(2.0, 10.0, (4, 16, 256, 256)).astype(np.float32)
    out = {"check": "camera", "ok": True}
    for name, cam in {"scmos": Camera(qe=0.8, gain=2.0, offset=100, read_noise=1.6, hot_pixels=0.01),
                      "emccd": Camera(qe=0.9, gain=0.3, offset=500, read_noise=30, em_gain=40,
                                      bits=None)}.items():
        seeds = [3, 4, 5, 6]
        cpu = cam.capture(photons, [np.random.default_rng(s) for s in seeds])
        gpu = cam.capture(cp.asarray(photons), [np.random.default_rng(s) for s in seeds]).get()
        same = float((cpu == gpu).mean())
        out[f"{name}_identical_fraction"] = same
        out[f"{name}_mean_cpu_gpu"] = [float(cpu.mean()), float(gpu.mean())]
        out[f"{name}_var_cpu_gpu"] = [float(cpu.var()), float(gpu.var())]
        out["ok"] &= same > 0.9999
    return out


def check_pairs() -> list[dict]:
    rows = []
    for preset in WORKFLOWS:
        cpu_cfg, gpu_cfg = _cfg(preset, "cpu"), _cfg(preset, "cuda")
        c, g = simulate_pair(cpu_cfg, 0, 1), simulate_pair(gpu_cfg, 0, 1).to_host()
        clean_rel = float(np.abs(c.clean - g.clean).max() / np.abs(c.clean).max())
        noise_c, noise_g = c.input.astype(np.float64), g.input.astype(np.float64)
        same = float((c.input == g.input).mean()) if c.input.shape == g.input.shape else 0.0
        rows.append({"check": f"pair {preset}", "clean_max_rel_diff": clean_rel,
                     "input_identical_fraction": same,
                     "input_mean_cpu_gpu": [float(noise_c.mean()), float(noise_g.mean())],
                     "input_std_cpu_gpu": [float(noise_c.std()), float(noise_g.std())],
                     "ok": clean_rel < 1e-4 and same > 0.999})
    return rows


def check_batches() -> dict:
    run = load_run("denoise2d", None, [])
    kw = dict(seed=0, batch_size=run.train.batch_size, patch=run.patch,
              patches_per_image=run.train.patches_per_image)
    cpu = SimulatedBatches(run.sim, **kw)
    gpu = DeviceBatches(run.sim.model_copy(update={"device": "cuda"}), prefetch=True, **kw)
    diffs = []
    try:
        for b in (0, 1, 2, 70, 3):  # 70: the next chunk's first batch (chunk 64, one pair each)
            x, y = gpu(b)
            assert x.is_cuda and y.is_cuda
            cx, cy = cpu(b)
            diffs.append(float(max(np.abs(x.cpu().numpy() - cx).max(),
                                   np.abs(y.cpu().numpy() - cy).max())))
    finally:
        gpu.close()
    return {"check": "device batches", "max_abs_diff": max(diffs), "ok": max(diffs) < 1e-3}


def time_pairs(name: str, repeat: int = 3) -> dict:
    cpu_cfg = SimConfig.from_dict(CASES[name])
    gpu_cfg = cpu_cfg.model_copy(update={"device": "cuda"})
    simulate_pair(cpu_cfg, 0, 0)
    cpu = []
    for i in range(repeat):
        t = time.perf_counter()
        simulate_pair(cpu_cfg, 0, i + 1)
        cpu.append(time.perf_counter() - t)
    simulate_pair(gpu_cfg, 0, 0)  # compiles the CUDA kernels, builds the device plan
    _sync()
    one = []
    for i in range(repeat * 3):
        t = time.perf_counter()
        simulate_pair(gpu_cfg, 0, i + 1)
        _sync()
        one.append(time.perf_counter() - t)
    chunk = chunk_size(gpu_cfg)
    simulate_pairs(gpu_cfg, 0, range(chunk))
    _sync()
    t = time.perf_counter()
    simulate_pairs(gpu_cfg, 0, range(chunk, 2 * chunk))
    _sync()
    batched = (time.perf_counter() - t) / chunk
    cpu_s, one_s = statistics.median(cpu), statistics.median(one)
    return {"case": f"pairs {name}", "cpu_s": cpu_s, "gpu_one_s": one_s, "chunk": chunk,
            "gpu_chunked_s": batched, "speedup_chunked": cpu_s / batched}


def time_training(preset: str, steps: int, workers: int | None = None,
                  prefetch: bool = True) -> dict:
    """Steps fed by GPU pairs (geometry drawn ahead by ``workers`` processes, the next chunk by
    a thread if ``prefetch``; defaults as ``synthcare train``) against the same steps on
    pre-generated device tensors."""
    run = load_run(preset, None, ["device=cuda", "train.device=cuda"])
    t = run.train
    workers = default_workers() if workers is None else workers
    device = torch.device("cuda")
    kw = dict(batch_size=t.batch_size, patch=run.patch, patches_per_image=t.patches_per_image,
              jitter=t.jitter, threshold=t.foreground, augment=t.augment)
    ndim = model_ndim(run)
    fmt = memory_format_for(ndim)
    loss_fn = losses.get(t.loss)

    def steps_from(batches, n: int) -> float:
        torch.manual_seed(0)
        model = build_model(run, ndim).to(device).to(memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=t.lr)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)  # as restore.train on CUDA
        for i, (x, y) in enumerate(batches):  # restore.train's step: no per-step sync
            if i == 10:  # warm-up done (cuDNN autotuning, first chunk of pairs)
                _sync()
                t0 = time.perf_counter()
            if i == n + 10:
                break
            train_step(model, opt, loss_fn, x.to(memory_format=fmt), y, autocast=autocast)
        _sync()
        return time.perf_counter() - t0

    source = DeviceBatches(run.sim, seed=run.seed, **kw)
    fixed = [source(b) for b in range(16)]  # pre-generated device tensors
    t_fixed = steps_from(itertools.cycle(fixed), steps)
    fresh = DeviceBatches(run.sim, seed=run.seed + 1, workers=workers, prefetch=prefetch, **kw)
    try:
        t_fed = steps_from((fresh(b) for b in itertools.count()), steps)
    finally:
        fresh.close()
    name = f"train {preset} w{workers}{' prefetch' if prefetch else ''}"
    return {"case": name, "batch": t.batch_size, "patch": list(run.patch),
            "steps": steps, "chunk": fresh.chunk, "pregenerated_s": t_fixed, "gpu_pairs_s": t_fed,
            "patches_per_s": steps * t.batch_size / t_fed,
            "overhead_pct": 100 * (t_fed - t_fixed) / t_fixed}


def _safe(fn, *a) -> list[dict]:
    try:
        r = fn(*a)
        return r if isinstance(r, list) else [r]
    except Exception as exc:  # report and go on: one broken part must not hide the others
        traceback.print_exc()
        return [{"check": f"{fn.__name__}{a}", "ok": False, "error": repr(exc)[:300]}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--steps", type=int, default=400, help="timed training steps per case")
    args = ap.parse_args()
    backend.cupy()  # one clear error without cupy or a GPU
    print(f"GPU: {torch.cuda.get_device_name()}, cupy {backend.cupy().__version__}, torch "
          f"{torch.__version__}", flush=True)
    results = []
    for fn, a in [(check_render, ()), (check_camera, ()), (check_pairs, ()), (check_batches, ()),
                  (time_pairs, ("2d",)), (time_pairs, ("3d",)),
                  (time_training, ("denoise2d", args.steps)),
                  (time_training, ("denoise3d", args.steps)),
                  (time_training, ("denoise2d", args.steps, None, False)),  # no thread
                  (time_training, ("denoise3d", args.steps, None, False)),
                  (time_training, ("denoise2d", args.steps, 0))]:  # no geometry workers
        t = time.perf_counter()
        rows = _safe(fn, *a)
        print(f"{fn.__name__}{a}: {time.perf_counter() - t:.1f} s {json.dumps(rows)}", flush=True)
        results += rows
        if args.json:  # what is done so far survives a timeout
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    table = []
    for r in results:
        keys = [k for k in r if k not in ("check", "case")]
        table.append(f"{r.get('check', r.get('case')):24s} " + "  ".join(
            f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys))
    emit(results, table, args.json)


if __name__ == "__main__":
    main()
