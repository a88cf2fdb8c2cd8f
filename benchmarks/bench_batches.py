"""Host time per training patch of the GPU trainer's batch planning (``DeviceBatches``), on the
CPU with numpy: what the host spends per patch while a GPU would train.

    python benchmarks/bench_batches.py [--repeat 20] [--json out.json]

For the denoise2d and denoise3d presets, one chunk of pairs is simulated once; then its plan
(random patch draws of every batch the chunk serves, and their pixel indices) is made
``repeat`` times:

- ``draws_us``: the host's share on a GPU, where the pixel indices are built on the device from
  the draws (``patch_indices`` with cupy) — here the indices are skipped;
- ``plan_us``: draws plus the pixel indices built on the host with numpy (the CPU's cost).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import emit

import restore.device_batches as db
from restore.config import load_run


def _no_indices(shape, patch, draws, xp=np, offset=None):
    return np.broadcast_to(np.int64(0), (len(draws.image), *patch))


def time_plan(preset: str, repeat: int) -> dict:
    run = load_run(preset, None, [])
    t = run.train
    batches = db.DeviceBatches(run.sim, seed=0, batch_size=t.batch_size, patch=run.patch,
                               patches_per_image=t.patches_per_image, chunk=8)
    batches._chunk_of(0)
    n = len(batches._batches_ending_in(0)) * t.batch_size
    out = {"case": preset, "batch": t.batch_size, "patch": list(run.patch), "patches": n}
    real = db.patch_indices
    for name, fn in (("draws_us", _no_indices), ("plan_us", real)):
        db.patch_indices = fn
        try:
            batches._plan(0)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                batches._plan(0)
                times.append(time.perf_counter() - t0)
        finally:
            db.patch_indices = real
        out[name] = 1e6 * statistics.median(times) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = [time_plan(p, args.repeat) for p in ("denoise2d", "denoise3d")]
    table = [f"{'preset':10s} {'patch':>12s} {'draws µs/patch':>15s} {'plan µs/patch':>14s}"]
    table += [f"{r['case']:10s} {'×'.join(map(str, r['patch'])):>12s} {r['draws_us']:15.1f} "
              f"{r['plan_us']:14.1f}" for r in results]
    emit(results, table, args.json)


if __name__ == "__main__":
    main()
