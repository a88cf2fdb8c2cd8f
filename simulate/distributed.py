"""Dataset generation on a Dask cluster, straight into an OME-Zarr dataset.

``synthcare simulate --format zarr --scheduler local:W`` (W worker processes on this machine)
or ``--scheduler tcp://HOST:PORT`` (a running ``dask scheduler``: dask-jobqueue on SLURM/PBS,
Kubernetes, ``dask-cuda``'s ``LocalCUDACluster`` for one worker per GPU) cuts the unfinished pairs
into chunks; each Dask task (:func:`make_chunk`) simulates one chunk on its worker (CPU, or the
GPU with ``device: cuda``) and writes it into its own region of the Zarr arrays (one pair per
chunk of every array, so tasks never share a chunk). Only the chunk's indices return to the
client, which then sets the chunk's ``done`` flags: a pair counts as written only after its data
are, and the client is the flags' only writer. A lost worker's task is retried by Dask; a run
whose client or workers are killed is finished by running the command again (flagged pairs are
skipped; unflagged ones are rewritten whole). Every pair is the pure function of (config,
seed, index) the in-process writer computes, so the dataset is bit-identical to it whatever the
number of workers and whichever worker makes which pair. The workers must see ``--out`` at the
same path (a shared file system on a cluster) and have synthcare installed.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import SimConfig
from .errors import SynthcareError
from .pairs import chunk_size, simulate_pairs

TASKS_PER_WORKER = 8  # chunks per worker: small enough to balance load and lose little on a kill
MAX_CHUNK_PAIRS = 64


def _distributed():
    try:
        import distributed
    except ImportError:
        raise SynthcareError("--scheduler needs dask.distributed: pip install "
                             "'synthcare[dask]'") from None
    return distributed


def check_scheduler(scheduler: str) -> int | None:
    """Refuse a malformed ``--scheduler`` before any work; returns W of ``local:W`` (else None)."""
    _distributed()
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise SynthcareError(f"--scheduler {scheduler}: local:W needs W ≥ 1 workers, e.g. local:2")
        return n
    if "://" not in scheduler:
        raise SynthcareError(f"--scheduler {scheduler}: give local:W (W workers on this machine) "
                             "or a scheduler address like tcp://host:8786")
    return None


@contextmanager
def connect(scheduler: str):
    """A Dask client for ``scheduler``: ``local:W`` starts W single-threaded worker processes
    here (closed on exit); anything else is the address of a running scheduler."""
    distributed = _distributed()
    n = check_scheduler(scheduler)
    if n is not None:
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"},
                                      silence_logs=40) as cluster, distributed.Client(cluster) as c:
            yield c
        return
    try:
        client = distributed.Client(scheduler, timeout="20s")
    except OSError as exc:
        raise SynthcareError(f"--scheduler {scheduler}: cannot reach the scheduler ({exc})") from None
    with client:
        yield client


def make_chunk(cfg: SimConfig, seed: int, indices: list[int], out: str, n: int,
               dtypes: dict[str, str], spacing: dict[str, tuple[float, ...]],
               worker: bool = True) -> list[int]:
    """One Dask task: simulate pairs ``indices`` and write their images (not their flags) into
    the dataset at ``out``; returns the indices. A ``worker`` only writes into the arrays the
    client made (it never makes a dataset of its own where it cannot see the client's)."""
    from .omezarr import ZarrSink

    sink = ZarrSink(Path(out), n, {k: np.dtype(v) for k, v in dtypes.items()}, spacing,
                    existing=worker)
    if worker and len(sink.arrays) < len(dtypes):
        raise SynthcareError(f"{out}: the dataset's arrays are missing on this worker (Dask "
                             "workers need --out on a shared file system)")
    step = chunk_size(cfg)
    for start in range(0, len(indices), step):
        chunk = indices[start:start + step]
        pairs = simulate_pairs(cfg, seed, chunk).to_host()
        for j, i in enumerate(chunk):
            sink.write_images(i, {"GT": pairs.target[j], "clean": pairs.clean[j],
                                  "low": pairs.input[j]})
    return indices


def write_pairs_dask(cfg: SimConfig, seed: int, progress: bool, sink, scheduler: str) -> None:
    """Write the unfinished pairs of ``sink`` (a :class:`simulate.omezarr.ZarrSink`) on the Dask
    cluster ``scheduler`` (see the module docstring)."""
    todo = [int(i) for i in np.flatnonzero(~sink.finished())]
    if not todo:
        return
    dtypes = {name: str(d) for name, d in sink.dtypes.items()}
    if len(sink.arrays) < len(sink.dtypes):  # the first pair written makes the arrays: here
        make_chunk(cfg, seed, todo[:1], str(sink.out), sink.n, dtypes, sink.spacing, worker=False)
        sink.mark_done(todo[:1])
        todo = todo[1:]
    with connect(scheduler) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        k = min(MAX_CHUNK_PAIRS, max(chunk_size(cfg), math.ceil(len(todo) / (TASKS_PER_WORKER * workers))))
        chunks = [todo[s:s + k] for s in range(0, len(todo), k)]
        cfg_future = client.scatter(cfg, broadcast=True)
        futures = [client.submit(make_chunk, cfg_future, seed, c, str(sink.out), sink.n, dtypes,
                                 sink.spacing, pure=False, retries=2) for c in chunks]
        distributed = _distributed()
        with tqdm(total=len(todo), desc=f"simulate {cfg.task} ({workers} workers)", unit="pair",
                  disable=not progress) as bar:
            try:
                for future in distributed.as_completed(futures):
                    done = future.result()
                    sink.mark_done(done)
                    bar.update(len(done))
            finally:
                for future in futures:
                    future.cancel()
