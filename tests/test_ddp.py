"""Training on two CPU processes with torchrun (DistributedDataParallel, gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from restore.config import load_run
from restore.data import pairs_of_batch
from restore.ddp import Group, batch_group, own_chunks, shard
from restore.train import read_log

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def _torchrun(out: Path, steps: int, *extra: str) -> None:
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHCARE_NO_TENSORBOARD": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(port), str(SCRIPT), str(out),
           str(steps), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _stream(rank: int, steps: range, group: int) -> list[int]:
    """The stream batches rank ``rank`` of 2 makes for its own batches ``steps``."""
    return [shard(lambda b: b, Group(rank, 2, 0), group)(b) for b in steps]


def _pairs(batches, batch: int, per_image: int) -> set[int]:
    """The simulated pairs that ``batches`` crop from."""
    return {p for b in batches for p in range(pairs_of_batch(b, batch, per_image)[0],
                                              pairs_of_batch(b, batch, per_image)[1] + 1)}


def test_two_ranks_see_different_pairs_keep_equal_weights_and_resume(tmp_path):
    per_image = load_run("denoise2d", None, []).train.patches_per_image
    group = batch_group(2, per_image)  # batches of 2 patches: runs that crop whole pairs
    out = tmp_path / "run"
    _torchrun(out, 4)
    ranks = [json.loads((tmp_path / f"rank{r}-first.json").read_text()) for r in (0, 1)]
    assert all(r["ddp"] == "DistributedDataParallel" for r in ranks)
    # each rank made its own runs of the stream's batches, and no pair was simulated twice
    assert [r["seen"] for r in ranks] == [_stream(r, range(4), group) for r in (0, 1)]
    assert _pairs(ranks[0]["seen"], 2, per_image).isdisjoint(_pairs(ranks[1]["seen"], 2, per_image))
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])  # gradients averaged
    log = read_log(out)  # rank 0 alone writes the log and the checkpoints
    assert [int(r["step"]) for r in log] == [2, 4] and (out / "last.pt").exists()
    _torchrun(out, 6, "resume")  # the group resumes from last.pt
    again = [json.loads((tmp_path / f"rank{r}-resume.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in again] == [6, 6]
    # the stream continues where it stopped
    assert [r["seen"] for r in again] == [_stream(r, range(4, 6), group) for r in (0, 1)]
    np.testing.assert_array_equal(again[0]["params"], again[1]["params"])
    assert [int(r["step"]) for r in read_log(out)] == [2, 4, 6]


def test_ranks_share_one_clock_for_the_minutes_budget_and_the_cosine_schedule(tmp_path):
    _torchrun(tmp_path / "run", 100, "clocks")  # 1.2 s budget; rank 1 0.2 s slower per batch
    ranks = [json.loads((tmp_path / f"rank{r}-clocks.json").read_text()) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] < 100  # the minutes ended the run
    assert ranks[0]["seconds"] == ranks[1]["seconds"] >= 1.2  # the slower rank's clock
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])  # one learning rate


def test_rank_runs_cover_the_stream_once_and_share_no_pair():
    for batch, per_image, ranks in ((2, 16, 2), (6, 8, 3), (8, 3, 2), (16, 16, 4)):
        group = batch_group(batch, per_image)
        made = [[shard(lambda b: b, Group(r, ranks, 0), group)(b) for b in range(5 * group)]
                for r in range(ranks)]
        assert sorted(b for m in made for b in m) == list(range(5 * group * ranks))  # all, once
        pairs = [_pairs(m, batch, per_image) for m in made]
        assert all(pairs[i].isdisjoint(pairs[j]) for i in range(ranks) for j in range(i))


def test_a_gpu_simulator_prepares_only_its_ranks_chunks(monkeypatch):
    # on numpy standing in for cupy: rank 1 of 2 simulates and prefetches its own chunks only,
    # and its batches are the stream's
    from restore.data import SimulatedBatches
    from restore.device_batches import DeviceBatches

    run = load_run("denoise2d", None, ["shape=[48,48]", "train.patch=[32,32]"])
    kw = dict(seed=3, batch_size=4, patch=(32, 32), patches_per_image=3)
    dev = DeviceBatches(run.sim, chunk=2, prefetch=True, **kw)
    made, real = [], DeviceBatches._simulate_chunk

    def counted(self, k):
        made.append(k)
        return real(self, k)

    monkeypatch.setattr(DeviceBatches, "_simulate_chunk", counted)
    group = batch_group(4, 3, chunk=2)  # 3 batches: 12 patches, 4 pairs, 2 chunks
    g = Group(1, 2, 0)
    own_chunks([dev], g, group)
    batches, cpu = shard(dev, g, group), SimulatedBatches(run.sim, **kw)
    try:
        for b in range(2 * group):
            x = batches(b)[0]
            want = cpu(shard(lambda i: i, g, group)(b))[0]
            np.testing.assert_allclose(x.numpy(), want, rtol=1e-5, atol=1e-5)
    finally:
        dev.close()
    assert set(made) <= {2, 3, 6, 7, 10, 11} and {2, 3, 6, 7} <= set(made)


def test_a_rank_that_fails_leaves_without_waiting_for_the_others(monkeypatch):
    import torch.distributed as dist

    from restore import ddp

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    ddp.leave(Group(0, 2, 0), failed=True)
    assert calls == ["destroy"]  # a barrier here would wait for ranks busy in another collective
    ddp.leave(Group(0, 2, 0))
    assert calls == ["destroy", "barrier", "destroy"]
