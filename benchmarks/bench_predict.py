"""Prediction throughput, tiled and untiled: Mpixel/s on 1024×1024 (2D) and Mvoxel/s on
64×256×256 (3D), with the CSBDeep-default networks (depth 2, 32 filters; kernel 5 in 2D, 3 in 3D).

    python benchmarks/bench_predict.py [--repeat 3] [--json out.json]

Also checks that tiled output equals untiled output (max abs difference). bfloat16 is timed only
with --bf16 (it is emulated, i.e. slow, on CPUs without bf16 units).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from common import emit

from restore.predict import predict
from restore.unet import UNet, UNetConfig

CASES = {"2d": (2, (1024, 1024), "YX", (2, 2)), "3d": (3, (64, 256, 256), "ZYX", (1, 2, 2))}


def _time(fn, repeat: int) -> tuple[float, np.ndarray]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def model_and_image(nd: int, shape: tuple[int, ...]) -> tuple[UNet, np.ndarray]:
    """The CSBDeep-default network (seeded) and a Poisson test image of ``shape``."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(ndim=nd)).eval()
    return model, np.random.default_rng(0).poisson(20, shape).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    results = []
    for name, (nd, shape, axes, tiles) in CASES.items():
        model, img = model_and_image(nd, shape)
        mvox = np.prod(shape) / 1e6
        t_un, whole = _time(lambda m=model, i=img, a=axes: predict(m, i, a, tiles=None), args.repeat)
        t_ti, tiled = _time(lambda m=model, i=img, a=axes, t=tiles: predict(m, i, a, tiles=t),
                            args.repeat)
        r = {"case": name, "shape": list(shape), "untiled_mvox_s": mvox / t_un, "tiles": list(tiles),
             "tiled_mvox_s": mvox / t_ti, "tiled_vs_untiled_max_abs": float(np.abs(whole - tiled).max())}
        if args.bf16:
            t_bf, low = _time(lambda m=model, i=img, a=axes: predict(m, i, a, tiles=None, bf16=True), 1)
            r["bf16_mvox_s"] = mvox / t_bf
            r["bf16_rel_error"] = float(np.abs(low - whole).max() / np.abs(whole).max())
        results.append(r)
    table = [f"{'case':5s} {'untiled':>9s} {'tiled':>9s} {'tiles':>9s} {'max|diff|':>10s}  (Mvoxel/s)"]
    for r in results:
        table.append(f"{r['case']:5s} {r['untiled_mvox_s']:9.3f} {r['tiled_mvox_s']:9.3f} "
                     f"{'x'.join(map(str, r['tiles'])):>9s} {r['tiled_vs_untiled_max_abs']:10.2e}")
    emit(results, table, args.json)

if __name__ == "__main__":
    main()
