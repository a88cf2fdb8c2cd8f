"""Time each stage of the forward model for one 3D and one 2D pair, beside the FFT floor.

    python benchmarks/bench_simulate.py [--repeat 5] [--json out.json]

3D: detector 32×256×256 at 0.1 µm pixels and 0.2 µm z-step, truth oversampled 2× in every axis
(64×512×512 plus lateral margins, 0.1/0.05 µm), microtubules + granules, widefield PSF, camera.
2D: 512×512 at 0.1 µm (truth 1024² plus margins, a 1 µm slab).

The floor is one rfftn + irfftn of the padded truth volume (as rendered, margins included) with
the same scipy.fft settings; a plain FFT convolution also needs the z-padding to twice the depth,
reported as ``floor_zpadded``. Prints a table and JSON (stage medians in seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.fft
from common import emit

from simulate import backend
from simulate.config import SimConfig
from simulate.pairs import simulate_pair
from simulate.sampling import Grid

CASES = {
    "3d": {"task": "denoise", "shape": [32, 256, 256],
           "sampling": {"pixel": 0.1, "z_factor": 2, "oversample": 2, "oversample_z": 1},
           "sample": {"microtubules": {"density": 0.25}, "granules": {"density": 0.01}},
           "optics": {"psf": "widefield"}, "camera": {"photons": 20}},
    "2d": {"task": "denoise", "shape": [512, 512],
           "sampling": {"pixel": 0.1, "oversample": 2},
           "sample": {"microtubules": {"density": 0.4}, "granules": {"density": 0.02}},
           "optics": {"psf": "widefield"}, "camera": {"photons": 20}},
}


def _fft_floor(shape: tuple[int, ...], repeat: int) -> float:
    a = np.random.default_rng(0).random(shape, dtype=np.float32)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        scipy.fft.irfftn(scipy.fft.rfftn(a, workers=backend.FFT_WORKERS), s=shape,
                         workers=backend.FFT_WORKERS)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, repeat: int) -> dict:
    cfg = SimConfig.from_dict(CASES[name])
    grid = Grid.from_config(cfg)
    t = time.perf_counter()
    simulate_pair(cfg, 0, 0)  # compiles kernels, builds and caches the OTF
    first = time.perf_counter() - t
    stages: dict[str, list[float]] = {}
    totals = []
    for i in range(repeat):
        timings: dict[str, float] = {}
        t = time.perf_counter()
        simulate_pair(cfg, 0, i + 1, timings=timings)
        totals.append(time.perf_counter() - t)
        for k, v in timings.items():
            stages.setdefault(k, []).append(v)
    floor = _fft_floor(grid.truth_shape, repeat)
    floor_z = _fft_floor((grid.z_fft, *grid.truth_shape[1:]), max(1, repeat // 2))
    total = statistics.median(totals)
    return {"case": name, "detector": list(grid.detector), "truth": list(grid.truth_shape),
            "fft_grid": [grid.z_fft, *grid.truth_shape[1:]], "first_call_s": first,
            "stages_s": {k: statistics.median(v) for k, v in stages.items()}, "pair_s": total,
            "floor_s": floor, "floor_zpadded_s": floor_z, "pair_over_floor": total / floor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = [bench(name, args.repeat) for name in CASES]
    stages = list(results[0]["stages_s"])
    table = [f"{'case':5s} {'truth':>16s} " + " ".join(f"{s:>9s}" for s in stages)
             + f" {'pair':>7s} {'floor':>7s} {'ratio':>6s} {'floor_zpad':>10s} {'first':>7s}"]
    for r in results:
        table.append(f"{r['case']:5s} {'x'.join(map(str, r['truth'])):>16s} "
                     + " ".join(f"{r['stages_s'][s]:9.3f}" for s in stages)
                     + f" {r['pair_s']:7.3f} {r['floor_s']:7.3f} {r['pair_over_floor']:6.2f}"
                     f" {r['floor_zpadded_s']:10.3f} {r['first_call_s']:7.2f}")
    emit(results, table, args.json)

if __name__ == "__main__":
    main()
