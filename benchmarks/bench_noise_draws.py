"""Simulated batches per second against ``train.noise_draws`` (camera frames per rendered sample).

    python benchmarks/bench_noise_draws.py [--config RUN.yaml] [--batches 32] [--json out.json]

For a run configuration (default: the denoise2d preset with the training ``synthcare fit``
writes, ``simulate.fit.FIT_TRAIN``, without refinement), the CPU batch source
(:class:`restore.data.SimulatedBatches`) makes ``--batches`` batches at 1, 2, 4 and 8 noise
draws, and the run's network takes 20 optimiser steps on one batch: the milliseconds per batch
of each, and the share of a training step that simulation takes. Rendering the sample is most
of a simulated pair's cost; a new camera frame of the same sample is a small part of it.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import emit

from restore import losses
from restore.config import load_run
from restore.data import SimulatedBatches
from restore.train import build_model, optimiser, train_step
from simulate.fit import FIT_TRAIN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="a run configuration (e.g. the fit.yaml of synthcare fit)")
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args()
    sets = ["train.refine.images=[]", "train.noise_draws=1"]
    if args.config is None:
        sets += [f"train.{k}={str(v).lower()}" for k, v in FIT_TRAIN.items() if k != "noise_draws"]
    run = load_run(None if args.config else "denoise2d", args.config, sets)
    t = run.train
    rows = []
    batch = None
    for draws in (1, 2, 4, 8):
        source = SimulatedBatches(run.sim, seed=0, batch_size=t.batch_size, patch=run.patch,
                                  patches_per_image=t.patches_per_image, noise_draws=draws)
        source(0)
        t0 = time.perf_counter()
        for b in range(1, args.batches + 1):
            batch = source(b)
        rows.append({"noise_draws": draws,
                     "simulate_ms": 1000 * (time.perf_counter() - t0) / args.batches})
    x, y = (torch.from_numpy(a) for a in batch)
    model = build_model(run, len(run.patch))
    opt, _ = optimiser(run, model)
    loss = losses.get(t.loss)
    for _ in range(3):
        train_step(model, opt, loss, x, y)
    t0 = time.perf_counter()
    for _ in range(20):
        train_step(model, opt, loss, x, y)
    step_ms = 1000 * (time.perf_counter() - t0) / 20
    for r in rows:
        r |= {"train_ms": step_ms, "simulate_share": r["simulate_ms"] / (r["simulate_ms"] + step_ms),
              "steps_vs_1": (rows[0]["simulate_ms"] + step_ms) / (r["simulate_ms"] + step_ms)}
    table = ["| noise draws | simulate ms/batch | train ms/step | simulation's share | steps vs 1 |",
             "|---|---|---|---|---|"]
    table += [f"| {r['noise_draws']} | {r['simulate_ms']:.1f} | {r['train_ms']:.1f} | "
              f"{100 * r['simulate_share']:.0f} % | {r['steps_vs_1']:.2f}× |" for r in rows]
    emit(rows, table, args.json)


if __name__ == "__main__":
    main()
