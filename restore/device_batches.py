"""Training batches made where the network trains: on the GPU, pairs never leave the device.

:class:`DeviceBatches` is :class:`restore.data.SimulatedBatches` for a config whose ``device``
is ``cuda``: pairs are simulated a chunk at a time (:func:`simulate.simulate_pairs`: one set of
FFTs and camera launches for many pairs, their random samples drawn ahead by worker processes),
normalised, cropped and augmented on the device, and handed to torch through DLPack (no host
copy, no DataLoader). Batch ``b`` is the same
pure function of (config, seed, b) as on the CPU: the same pairs, the same random patch
positions, flips and rotations, drawn from the same generators, so a CPU run and a GPU run see
the same patches (to float rounding).

Patches are gathered in one indexing operation per batch. The host draws each batch's patches
(a few numbers per patch: image, corner, flips, quarter turns; :func:`~restore.data.draw_patches`,
shared with the CPU path); the device turns the draws of all the batches a chunk serves into
flat pixel indices at once (:func:`~restore.data.patch_indices`), and each batch gathers the
pixels its indices name. So between chunks the host never waits for the device, and it never
builds or uploads the large index arrays. It works on numpy too, which is how the tests check it
against the CPU path.
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from simulate import SimConfig, backend, chunk_size, draw_geometry, set_threads, simulate_pairs

from .data import (
    PatchDraws,
    check_patch,
    draw_patches,
    foreground_positions_stack,
    jitter_rng,
    model_stacks,
    pairs_of_batch,
    patch_indices,
    patch_rng,
    rotations,
)
from .normalize import jittered_percentiles, percentile_affines


@dataclass(frozen=True)
class _Chunk:
    """A chunk of pairs in model space: normalised stacks (N, ...) of inputs and targets on the
    device, ``per_pair`` images per pair (pair-major), and each image's foreground patch corners
    (host arrays)."""

    xs: object
    ys: object
    per_pair: int
    positions: list[np.ndarray]


class DeviceBatches:
    """Batch ``b`` = patches from pairs simulated on the config's device, as torch tensors on it.

    Same arguments and same batches as :class:`restore.data.SimulatedBatches`; ``chunk`` pairs
    are simulated at once (default :func:`simulate.chunk_size`). ``workers`` processes draw the
    geometry of the next chunk (random sample, rendering inputs: the host's share of a pair)
    while the device works on the current one; 0 draws it in this process, in turn.
    ``prefetch``: a thread simulates the next chunk and makes its patch indices while the
    batches of the current one are used, so the training loop keeps the GPU fed meanwhile
    (every launch stays on the one default stream: ordering holds without extra syncs).
    Call :meth:`close` when done (it stops the thread and the workers).
    """

    def __init__(self, cfg: SimConfig, *, seed: int, batch_size: int, patch: tuple[int, ...],
                 patches_per_image: int = 8, jitter: float = 0.0, threshold: float = 0.4,
                 augment: bool = True, chunk: int | None = None, workers: int = 0,
                 prefetch: bool = False):
        self.cfg, self.seed, self.batch_size, self.patch = cfg, seed, batch_size, tuple(patch)
        self.per_image = max(1, patches_per_image)
        self.jitter, self.threshold, self.augment = jitter, threshold, augment
        self.chunk = chunk or chunk_size(cfg)
        self.xp = backend.xp_for(cfg.device)
        self._chunks: dict[int, _Chunk] = {}
        self._pool = (ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"),
                                          initializer=set_threads, initargs=(1,))
                      if workers > 0 else None)
        self._geometry: dict[int, list[Future]] = {}
        self._plans: dict[int, tuple] = {}
        self._ahead = ThreadPoolExecutor(1, "synthcare-chunks") if prefetch else None
        self._pending: dict[int, Future] = {}
        # the chunks this consumer will use (a torchrun rank uses runs of them, restore.ddp):
        # geometry and plans are prepared ahead only for those
        self.owns: Callable[[int], bool] | None = None
        # stops the thread and the workers when this object goes away, e.g. on an error in the
        # training loop, if close() was not reached
        self._shutdown = weakref.finalize(self, _shutdown, self._ahead, self._pool)

    def close(self) -> None:
        """Stop the prefetch thread and the geometry workers (pending work is dropped)."""
        self._shutdown()
        self._ahead = self._pool = None
        self._pending.clear()

    def _indices(self, k: int) -> range:
        return range(k * self.chunk, (k + 1) * self.chunk)

    def _submit(self, k: int) -> None:
        if k not in self._geometry:
            self._geometry[k] = [self._pool.submit(draw_geometry, self.cfg, self.seed, i)
                                 for i in self._indices(k)]

    def _simulate_chunk(self, k: int) -> _Chunk:
        indices = self._indices(k)
        geometry = None
        if self._pool is not None:  # drawn ahead by the workers; the next chunk starts now
            self._submit(k)
            self._submit(self._next_own(k + 1))
            geometry = [f.result() for f in self._geometry.pop(k)]
            for old in [j for j in self._geometry if j < k]:
                for f in self._geometry.pop(old):
                    f.cancel()
        xs, ys, _, per_pair = model_stacks(self.cfg, simulate_pairs(self.cfg, self.seed, indices,
                                                                    geometry=geometry))
        q = []  # each pair's percentile jitter from its own generator, as on the CPU
        for index in indices:
            rng = jitter_rng(self.seed, index)
            q += [jittered_percentiles(rng, jitter=self.jitter) for _ in range(per_pair)]
        lo, scale = percentile_affines(xs, np.array(q))
        shape = (-1, *[1] * (xs.ndim - 1))
        lo = self.xp.asarray(lo.astype(np.float32)).reshape(shape)
        scale = self.xp.asarray(scale.astype(np.float32)).reshape(shape)
        xs, ys = (xs - lo) / scale, (ys - lo) / scale  # restore.normalize.Affine, batched
        return _Chunk(xs, ys, per_pair,
                      foreground_positions_stack(ys, self.patch, self.threshold))

    def _next_own(self, k: int) -> int:
        """The first chunk from ``k`` on that this consumer uses."""
        while self.owns is not None and not self.owns(k):
            k += 1
        return k

    def _chunk_of(self, k: int) -> _Chunk:
        """Chunk ``k`` of normalised images (the two latest chunks kept)."""
        if k not in self._chunks:
            self._chunks[k] = self._simulate_chunk(k)
            while len(self._chunks) > 2:
                self._chunks.pop(next(iter(self._chunks)))
        return self._chunks[k]

    def _locate(self, lo: int, i, first_chunk: int, per_pair: int):
        """Image ``i`` (int or array) of the images of pairs ``lo``, ``lo`` + 1, … (pair-major)
        → (chunk number counted from ``first_chunk``, image within that chunk)."""
        index = lo + i // per_pair
        j = index // self.chunk - first_chunk
        return j, (index - (first_chunk + j) * self.chunk) * per_pair + i % per_pair

    def _pairs_of(self, b: int) -> tuple[int, int]:
        """First and last pair that batch ``b`` crops from."""
        return pairs_of_batch(b, self.batch_size, self.per_image)

    def _batches_ending_in(self, k: int) -> range:
        """The batches whose last pair lies in chunk ``k``."""
        lo, hi = k * self.chunk, (k + 1) * self.chunk
        b = max(0, lo * self.per_image // self.batch_size - 1)
        while self._pairs_of(b)[1] < lo:
            b += 1
        end = b
        while self._pairs_of(end + 1)[1] < hi:
            end += 1
        return range(b, end + 1)

    def _plan(self, k: int) -> tuple[int, object, object, object]:
        """Patch indices of every batch whose last pair lies in chunk ``k``, uploaded at once:
        (first batch, bank of inputs, bank of targets, indices into the banks). One upload per
        chunk, so the batches themselves never make the host wait for the device."""
        batches = self._batches_ending_in(k)
        first, last = self._pairs_of(batches[0])[0], self._pairs_of(batches[-1])[1]
        ks = range(first // self.chunk, last // self.chunk + 1)
        chunks = [self._chunk_of(j) for j in ks]
        offsets = np.cumsum([0] + [len(c.xs) for c in chunks])
        shape = tuple(chunks[0].xs.shape[1:])
        check_patch(shape, self.patch)
        size = int(np.prod(shape))
        rotate = self.augment and rotations(self.cfg)
        per_pair = chunks[0].per_pair
        draws, banks = [], []
        for b in batches:  # the host draws each batch's patches (small arrays) ...
            rng = patch_rng(self.seed, b)
            lo, hi = self._pairs_of(b)

            def positions(i: int, lo: int = lo) -> np.ndarray:
                j, at = self._locate(lo, i, ks[0], per_pair)
                return chunks[j].positions[at]

            draws.append(draw_patches(rng, self.batch_size, (hi - lo + 1) * per_pair, positions,
                                      self.patch, flips=self.augment, rotate=rotate))
            j, at = self._locate(lo, draws[-1].image, ks[0], per_pair)
            banks.append((offsets[j] + at) * size)
        # ... and the device turns them into the pixel indices of every batch at once
        index = patch_indices(shape, self.patch, PatchDraws.concatenate(draws), self.xp,
                              offset=np.concatenate(banks))
        index = index.reshape(len(batches), self.batch_size, 1, *self.patch)
        bank_x, bank_y = ((c[0] if len(c) == 1 else self.xp.concatenate(c)).reshape(-1)
                          for c in ([c.xs for c in chunks], [c.ys for c in chunks]))
        return batches[0], bank_x, bank_y, index

    def __call__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``b``: (inputs, targets), each (batch, 1, *patch) float32 tensors on the
        config's device."""
        k = self._pairs_of(b)[1] // self.chunk
        if k not in self._plans:
            future = self._pending.pop(k, None)
            if future is not None and future.cancelled():
                future = None
            if future is None and self._ahead is not None:  # all planning in the one thread
                future = self._ahead.submit(self._plan, k)
            self._plans[k] = self._plan(k) if future is None else future.result()
            while len(self._plans) > 2:
                self._plans.pop(next(iter(self._plans)))
        start, bank_x, bank_y, where = self._plans[k]
        if self._ahead is not None:  # the plan the batch after this plan's last will need
            ahead = self._next_own(self._pairs_of(start + len(where))[1] // self.chunk)
            for old in [j for j in self._pending if j != ahead]:
                self._pending.pop(old).cancel()  # e.g. after a jump back (a running one finishes)
            if ahead not in self._plans and ahead not in self._pending:
                self._pending[ahead] = self._ahead.submit(self._plan, ahead)
        return torch.from_dlpack(bank_x[where[b - start]]), torch.from_dlpack(bank_y[where[b - start]])


def _shutdown(*executors) -> None:
    for ex in executors:
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Geometry workers for GPU training: the cores beside the training process, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 2))
