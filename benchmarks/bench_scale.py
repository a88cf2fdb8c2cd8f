"""Scale-out throughput: dataset generation with Dask workers, training with torchrun ranks.

    python benchmarks/bench_scale.py [--pairs 64] [--steps 40] [--repeat 3] [--json out.json]

Generation: pairs/s of the ``denoise3d`` preset written as OME-Zarr by the in-process writer,
then by 1 and 2 local Dask workers (one thread each, ``simulate --scheduler local:W``); the
Dask datasets are checked byte-identical to the in-process one. Training: patches/s of 1 and 2
torchrun CPU processes (one thread each, gloo) on ``denoise2d`` pairs simulated on the fly, with
the same per-rank batch. Ratios are measured in one run, each case the best of ``--repeat``
rounds run in turn with the others (the machine is shared and noisy: single runs of the same
case were seen to differ by 1.5×).
Cluster start-up (worker processes, imports) is excluded from the generation times by warming
each cluster on a throw-away pair first.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit

from simulate.config import load
from simulate.dataset import write_dataset

GEN_SETS = ["shape=[16,96,96]"]
TRAIN_SETS = ["shape=[128,128]", "train.patch=[64,64]", "train.batch_size=8", "train.workers=0",
              "train.val_every=1000"]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    import zarr

    root = zarr.open_group(str(path), mode="r")
    return {n: root[n]["0"][:] for n in ("low", "GT", "clean")}


def _dask_rate(cfg, n: int, workers: int, out: Path) -> float:
    """Pairs/s of ``workers`` local Dask workers (one thread each) writing ``n`` pairs."""
    import distributed

    from simulate.distributed import connect

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"},
                                  silence_logs=40) as cluster:
        address = cluster.scheduler_address
        with connect(address) as client:  # warm: imports and numba compilation per worker
            client.run(lambda: write_dataset(cfg, Path(tempfile.mkdtemp()) / "w.zarr", 1,
                                             progress=False, fmt="zarr"))
        write_dataset(cfg, out, 1, progress=False, fmt="zarr")  # the arrays: not timed
        t0 = time.perf_counter()
        write_dataset(cfg, out, n, progress=False, fmt="zarr", scheduler=address)
        return (n - 1) / (time.perf_counter() - t0)


def generation(n: int, repeat: int, tmp: Path) -> list[dict]:
    """Pairs/s in process and with 1 and 2 Dask workers, the best of ``repeat`` interleaved
    rounds; identity of the Dask datasets with the in-process one."""
    cfg = load("denoise3d", None, GEN_SETS)
    write_dataset(cfg, tmp / "warm.zarr", 1, progress=False, fmt="zarr")  # numba compiled here
    best = {"in process": 0.0, 1: 0.0, 2: 0.0}
    same = {1: True, 2: True}
    for r in range(repeat):
        t0 = time.perf_counter()
        ref = write_dataset(cfg, tmp / f"inproc{r}.zarr", n, progress=False, fmt="zarr")
        best["in process"] = max(best["in process"], n / (time.perf_counter() - t0))
        reference = _arrays(ref)
        for workers in (1, 2):
            out = tmp / f"dask{workers}-{r}.zarr"
            best[workers] = max(best[workers], _dask_rate(cfg, n, workers, out))
            same[workers] &= all(np.array_equal(a, reference[k]) for k, a in _arrays(out).items())
    return [{"case": "generation, in process", "pairs_per_s": best["in process"]}] + [
        {"case": f"generation, {w} Dask worker(s)", "pairs_per_s": best[w], "identical": same[w]}
        for w in (1, 2)]


def _ddp_worker(out: str, steps: int) -> None:
    """Under torchrun: train ``steps`` steps; rank 0 prints the patches/s of the group."""
    import torch

    from restore.config import load_run
    from restore.train import read_log, train

    torch.set_num_threads(1)
    run = load_run("denoise2d", None, [*TRAIN_SETS, f"train.steps={steps}"])
    train(run, out, progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        seconds = read_log(out)[-1]["seconds"]
        print(json.dumps({"patches_per_s": steps * run.train.batch_size * world / seconds}))


def _torchrun_rate(n: int, steps: int, out: Path) -> float:
    """Patches/s of ``n`` torchrun CPU ranks (one thread each) training ``steps`` steps."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "SYNTHCARE_NO_TENSORBOARD": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
           "--master-addr", "127.0.0.1", "--master-port", str(port), __file__, "--ddp-worker",
           str(out), str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["patches_per_s"]


def training(steps: int, repeat: int, tmp: Path) -> list[dict]:
    """Patches/s of 1 and 2 torchrun CPU ranks, one thread each, best of ``repeat`` rounds."""
    best = {1: 0.0, 2: 0.0}
    for r in range(repeat):
        for n in (1, 2):
            best[n] = max(best[n], _torchrun_rate(n, steps, tmp / f"run{n}-{r}"))
    return [{"case": f"training, {n} torchrun rank(s)", "patches_per_s": best[n]} for n in (1, 2)]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--ddp-worker":
        _ddp_worker(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best counts")
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows = (generation(args.pairs, args.repeat, Path(d))
                + training(args.steps, args.repeat, Path(d)))
    gen = {r["case"]: r.get("pairs_per_s") for r in rows}
    one = gen["generation, 1 Dask worker(s)"]
    table = ["| case | throughput | vs first of its kind |", "|---|---:|---:|"]
    first_train = next(r["patches_per_s"] for r in rows if "patches_per_s" in r)
    for r in rows:
        if "pairs_per_s" in r:
            note = f"{r['pairs_per_s'] / one:.2f}× one worker" if "Dask" in r["case"] else ""
            ident = "" if "identical" not in r else (", identical" if r["identical"] else
                                                       ", **differs**")
            table.append(f"| {r['case']} | {r['pairs_per_s']:.2f} pairs/s | {note}{ident} |")
        else:
            table.append(f"| {r['case']} | {r['patches_per_s']:.1f} patches/s | "
                         f"{r['patches_per_s'] / first_train:.2f}× one rank |")
    emit(rows, table, args.json)


if __name__ == "__main__":
    main()
