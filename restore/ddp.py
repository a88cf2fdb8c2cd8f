"""Training on several processes: ``torchrun --nproc-per-node N -m restore.cli train …``.

torchrun starts N processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`group`
joins them into one process group (``nccl`` on GPUs, one GPU per local rank; ``gloo`` on the
CPU) and the network trains as ``DistributedDataParallel``: gradients are averaged over the
ranks every step, so the ranks' parameters stay identical and one step consumes N batches.
Rank ``r`` trains on its own runs of consecutive batches of the run's batch stream
(:func:`shard`, runs that crop whole simulated pairs): disjoint pairs, simulated by each rank
itself, whose union is the single-process stream. Every rank
validates on the same fixed set (so the learning-rate schedule is the same everywhere); rank 0
alone holds the run folder's lock and writes ``log.csv`` and the checkpoints; the ranks share one training
clock (the slowest rank's), and a stop (budget reached, or Ctrl-C on any rank) is agreed by all
(:func:`agree`), so no rank waits on a collective the others left and the cosine schedule sets
one learning rate everywhere. ``--resume`` works for the group: every rank loads
``last.pt``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from simulate import SynthcareError


@dataclass(frozen=True)
class Group:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0


def group(device: str) -> Group | None:
    """Join the torchrun job this process belongs to (None when not started by torchrun, or a
    job of one process). ``device`` is the run's ``train.device``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if local >= torch.cuda.device_count():
            raise SynthcareError(f"local rank {local} has no GPU ({torch.cuda.device_count()} "
                                 "visible): start at most one process per GPU")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Group(rank, world, local)


def device_of(g: Group | None, device: torch.device) -> torch.device:
    """The rank's device: its own GPU (``cuda:LOCAL_RANK``) under CUDA."""
    if g is not None and device.type == "cuda":
        return torch.device("cuda", g.local_rank)
    return device


def shard(make_batch, g: Group | None, group: int = 1):
    """The rank's share of a batch stream, in runs of ``group`` consecutive batches: its batch
    ``b`` is the stream's ``(b // group)·group·N + rank·group + b mod group``. With ``group`` the
    batches that crop a whole number of simulated pairs (:func:`batch_group`), no pair is
    simulated by two ranks."""
    if g is None:
        return make_batch

    def make(b: int):
        return make_batch((b // group) * group * g.world + g.rank * group + b % group)

    return make


def batch_group(batch_size: int, patches_per_image: int, configs: int = 1, chunk: int = 1) -> int:
    """The fewest consecutive batches of a simulated stream that crop whole chunks of pairs:
    pair ``p`` serves patches ``p·k … p·k + k − 1`` (k patches per image), pairs are simulated
    ``chunk`` at a time (1 on the CPU; the lcm of a mixture's GPU chunks), so
    ``k·chunk / gcd(k·chunk, batch)`` batches end on a chunk's boundary; a mixture of
    ``configs`` interleaves its configurations' batches."""
    k = max(1, patches_per_image) * chunk
    return k // math.gcd(k, batch_size) * configs


def own_chunks(makers: list, g: Group | None, group: int) -> None:
    """Tell chunked batch makers (GPU simulators, ``owns``) which chunks this rank uses, so they
    prepare no other rank's chunk ahead: with :func:`shard`'s runs of ``group`` batches, maker
    ``m`` of a mixture uses runs of ``group / len(makers)`` of its own batches, whole chunks."""
    if g is None:
        return
    for m in makers:
        if not hasattr(m, "owns"):
            continue
        per_run = group // len(makers) * m.batch_size // (m.per_image * m.chunk)
        m.owns = lambda c, n=per_run: (c // n) % g.world == g.rank


def wrap(model: torch.nn.Module, g: Group | None, device: torch.device) -> torch.nn.Module:
    """The module a step trains through: ``DistributedDataParallel`` in a group, else ``model``."""
    if g is None:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def anyone(flag: bool, g: Group | None, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (one tiny all-reduce)."""
    if g is None:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def agree(flag: bool, seconds: float, g: Group | None,
          device: torch.device) -> tuple[bool, float]:
    """``(flag on any rank, the largest seconds)`` on every rank (one tiny all-reduce).

    The training clock is shared this way: with a ``train.minutes`` budget and the cosine
    schedule, a rank on its own clock would set another learning rate than its peers, and the
    replicas' weights, equal after every averaged step only if the steps are equal, would drift.
    """
    if g is None:
        return flag, seconds
    t = torch.tensor([1.0 if flag else 0.0, seconds], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t[0].item() > 0), float(t[1].item())


def barrier(g: Group | None) -> None:
    """Wait for every rank (no-op outside a group)."""
    if g is not None:
        dist.barrier()


def leave(g: Group | None, failed: bool = False) -> None:
    """Leave the process group at the end of training; after an error (``failed``) without the
    closing barrier, which the other ranks, waiting in another collective, would never reach:
    this rank exits with its own error and torchrun stops the others."""
    if g is not None and dist.is_initialized():
        if not failed:
            dist.barrier()
        dist.destroy_process_group()
