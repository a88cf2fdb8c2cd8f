"""Training on two CPU processes with torchrun (DistributedDataParallel, gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def test_two_ranks_see_different_pairs_keep_equal_weights_and_resume(tmp_path):
    out = tmp_path / "run"
    _torchrun(out, 4)
    ranks = [json.loads((tmp_path / f"rank{r}-first.json").read_text()) for r in (0, 1)]
    assert all(r["ddp"] == "DistributedDataParallel" for r in ranks)
    # rank r made the stream's batches 2b + r: disjoint, together the single-process stream
    assert set(ranks[0]["seen"]).isdisjoint(ranks[1]["seen"])
    assert sorted(ranks[0]["seen"] + ranks[1]["seen"])[:8] == list(range(8))
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])  # gradients averaged
    log = read_log(out)  # rank 0 alone writes the log and the checkpoints
    assert [int(r["step"]) for r in log] == [2, 4] and (out / "last.pt").exists()
    _torchrun(out, 6, "resume")  # the group resumes from last.pt
    again = [json.loads((tmp_path / f"rank{r}-resume.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in again] == [6, 6]
    assert min(again[0]["seen"] + again[1]["seen"]) == 8  # the stream continues where it stopped
    np.testing.assert_array_equal(again[0]["params"], again[1]["params"])
    assert [int(r["step"]) for r in read_log(out)] == [2, 4, 6]
