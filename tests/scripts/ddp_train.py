"""Run under torchrun by tests/test_ddp.py: train a tiny denoise2d run, recording which batches
this rank made and its final parameters.

    torchrun --nproc-per-node 2 tests/scripts/ddp_train.py OUT STEPS [resume|clocks]

``clocks``: a minutes budget (1.2 s) with the cosine schedule, rank 1 slower to make its batches (its
own clock would set another learning rate).
"""

import json
import os
import sys
import time
from pathlib import Path

import torch

from restore import train as T
from restore.config import load_run

out, steps = Path(sys.argv[1]), int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "first"
rank = int(os.environ["RANK"])
seen, nets = [], []
real_data, real_step = T.simulated_data, T.train_step


def recording_data(run, mixture=None):
    data = real_data(run, mixture)
    make = data.make_batch

    def batch(b):  # the stream's global batch index, before the rank's share is taken
        seen.append(int(b))
        if mode == "clocks" and rank == 1:
            time.sleep(0.2)
        return make(b)

    data.make_batch = batch
    return data


def recording_step(net, *args, **kw):
    if not nets:
        nets.append(net)
    return real_step(net, *args, **kw)


T.simulated_data, T.train_step = recording_data, recording_step
run = load_run("denoise2d", None, ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=2",
                                   "train.filters=8", "train.val_patches=4", "train.workers=0",
                                   f"train.steps={steps}", "train.val_every=2",
                                   *(["train.minutes=0.02", "train.schedule=cosine"]
                                     if mode == "clocks" else [])])
summary = T.train(run, out, resume=mode == "resume", progress=False)
params = torch.cat([p.detach().flatten() for p in nets[0].parameters()]).tolist()
(out.parent / f"rank{rank}-{mode}.json").write_text(json.dumps(
    {"seen": seen, "params": params, "steps": summary["steps"], "seconds": summary["seconds"],
     "ddp": type(nets[0]).__name__}))
