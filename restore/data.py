"""Training data: endless simulated batches, patches, a fixed validation set (pairs read from
disk: :mod:`restore.diskpairs`).

Every batch is a pure function of (source, seed, batch number): batch ``b`` of the simulated
source draws pairs ``b·n … b·n + n − 1`` of the dataset ``seed`` and crops its patches with a
generator seeded by ``(seed, b)``. A DataLoader worker ``w`` of ``W`` makes batches
``w, w + W, w + 2W, …`` — disjoint, reproducible streams — and the loader hands them out in
order, so the stream is the same for any number of workers and a resumed run continues it
exactly (:class:`BatchStream` takes the first batch number).

Seeds: training uses the config's ``seed``; validation ``seed + VALIDATION_OFFSET``; held-out
evaluation ``seed + TEST_OFFSET``. The three never share a pair.
"""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from simulate import (
    Pair,
    SimConfig,
    SynthcareError,
    backend,
    interpolate_axis,
    set_threads,
    simulate_pair,
)
from simulate.dataset import EVAL_OFFSET

from .normalize import Affine, jittered_affine, percentile_affine
from .prefilter import wiener
from .workflows import workflow

VALIDATION_OFFSET = 1_000_000
TEST_OFFSET = EVAL_OFFSET  # the held-out cases simulate --volumes writes


# --- from a simulated pair to model-space images ----------------------------------------------
def model_ndim(cfg: SimConfig) -> int:
    """2 for 2D configs and the isotropic task (a 2D network on slices), else 3."""
    return 2 if cfg.ndim == 2 or workflow(cfg.task).slices else 3


def rotations(cfg: SimConfig) -> bool:
    """Whether training patches may be rotated by 90° (not slices whose rows are degraded)."""
    return not workflow(cfg.task).slices


def model_stacks(cfg: SimConfig, batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Model-space images of a batch of pairs (:func:`simulate.simulate_pairs`): stacks (N, ...)
    of inputs, targets and clean images, and the images per pair (N = pairs × that).

    ``upsample`` inputs are interpolated along z to the target's planes first (CARE's
    upsampling scheme: the network restores what interpolation cannot); ``isotropic`` pairs
    are stacks of 2D training slices; ``deconvolve`` inputs are Wiener-filtered with the PSF
    when ``target.wiener`` is set (:mod:`restore.prefilter`).
    """
    x, y, c = batch.input, batch.target, batch.clean
    wf = workflow(cfg.task)
    if wf.interpolate_z:
        return interpolate_axis(x, cfg.sampling.z_factor, axis=1), y, c, 1
    if wf.slices:
        n = x.shape[1]
        return (*(a.reshape(-1, *a.shape[2:]) for a in (x, y, c)), n)
    if cfg.target.wiener is not None:
        x = wiener(cfg, x)
    return x, y, c, 1


def model_images(cfg: SimConfig, pair) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input, target, clean) images of one pair in model space (:func:`model_stacks`), each
    triple the same shape."""
    one = Pair(pair.input[None], pair.target[None], pair.clean[None])
    xs, ys, cs, _ = model_stacks(cfg, one)
    return list(zip(xs, ys, cs, strict=True))


def normalise_pair(cfg: SimConfig, pair, jitter: float = 0.0,
                   rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, np.ndarray, Affine]]:
    """Model-space images of a pair, normalised by the input's percentiles (the target is in
    the input's photometric scale, so the same map applies): (input, target, affine) triples,
    on the pair's device (numpy or cupy)."""
    out = []
    for inp, tgt, _ in model_images(cfg, pair):
        aff = jittered_affine(inp, rng, jitter=jitter) if rng is not None else percentile_affine(inp)
        out.append((aff(inp), aff(tgt), aff))
    return out


def normalised(cfg: SimConfig, seed: int, index: int, jitter: float = 0.0,
               rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, np.ndarray, Affine]]:
    """:func:`normalise_pair` of pair (seed, index), as numpy arrays (simulated on the config's
    device, then copied to the host)."""
    return normalise_pair(cfg, simulate_pair(cfg, seed, index).to_host(), jitter, rng)


# --- patches ----------------------------------------------------------------------------------
def check_patch(shape: tuple[int, ...], patch: tuple[int, ...]) -> None:
    if len(patch) != len(shape) or any(p > n for p, n in zip(patch, shape, strict=True)):
        raise SynthcareError(f"train.patch {list(patch)} does not fit the {len(shape)}D training "
                             f"images of shape {list(shape)}")


def foreground_positions(target: np.ndarray, patch: tuple[int, ...], threshold: float) -> np.ndarray:
    """Corner positions (n, ndim) of patches whose target reaches ``threshold`` × the image's
    99.9th percentile somewhere (CSBDeep's filter against training on empty background).
    All positions if none qualifies. ``target`` numpy or cupy; the positions are numpy."""
    return foreground_positions_stack(target[None], patch, threshold)[0]


def foreground_positions_stack(targets, patch: tuple[int, ...], threshold: float) -> list[np.ndarray]:
    """:func:`foreground_positions` of every image of a stack (N, ...) at once (numpy or cupy:
    one filter, one transfer to the host)."""
    xp = backend.array_module(targets)
    n = targets.shape[0]
    peak = xp.percentile(targets.reshape(n, -1), 99.9, axis=1)
    local_max = backend.ndimage(xp).maximum_filter(targets, size=(1, *patch), mode="constant",
                                                   cval=-np.inf)
    # a patch with corner c covers c … c + patch − 1: its max is the filter output at its centre
    centre = (slice(None), *(slice(p // 2, m - (p - 1 - p // 2))
                             for p, m in zip(patch, targets.shape[1:], strict=True)))
    limit = xp.where(peak > 0, threshold * peak, -np.inf).astype(xp.float32)  # on the device
    ok = local_max[centre] >= limit.reshape(-1, *[1] * len(patch))
    found = backend.to_host(xp.argwhere(ok))
    starts = np.searchsorted(found[:, 0], np.arange(n + 1))
    every = np.argwhere(np.ones(ok.shape[1:], bool))
    return [found[a:b, 1:] if b > a else every for a, b in itertools.pairwise(starts)]


@dataclass(frozen=True)
class PatchDraws:
    """The random choices of ``n`` patches (:func:`draw_patches`): ``image`` (n,) which image,
    ``corner`` (n, ndim) where, ``flip`` (n, ndim) bool, which axes are reversed, and ``turns``
    (n,) quarter turns in the YX plane (applied after the flips)."""

    image: np.ndarray
    corner: np.ndarray
    flip: np.ndarray
    turns: np.ndarray

    @staticmethod
    def concatenate(parts: Sequence[PatchDraws]) -> PatchDraws:
        """The draws of several batches, one after the other."""
        return PatchDraws(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("image", "corner", "flip", "turns")))

    def take(self, which: np.ndarray) -> PatchDraws:
        """The draws of the patches selected by ``which`` (a mask or indices)."""
        return PatchDraws(self.image[which], self.corner[which], self.flip[which], self.turns[which])


def draw_patches(rng: np.random.Generator, n: int, n_images: int,
                 positions: Callable[[int], np.ndarray], patch: tuple[int, ...], *,
                 flips: bool = True, rotate: bool = True) -> PatchDraws:
    """Draw ``n`` patches at once: an image each (uniform over ``n_images``), a corner from that
    image's ``positions(i)`` (n_i, ndim), and (``flips``) a coin per axis and (``rotate``, square
    YX patches) a quarter turn. Vectorised, so the host keeps up with a GPU; the CPU and GPU
    trainers share it, so both see the same patches."""
    image = rng.integers(n_images, size=n)
    which = image.tolist()
    pos = {i: positions(i) for i in set(which)}
    pick = rng.integers(0, [len(pos[i]) for i in which]).tolist()
    corner = np.array([pos[i][j] for i, j in zip(which, pick, strict=True)], np.int64)
    corner = corner.reshape(n, len(patch))
    flip = rng.random((n, len(patch))) < 0.5 if flips else np.zeros((n, len(patch)), bool)
    square = len(patch) >= 2 and patch[-1] == patch[-2]
    turns = rng.integers(4, size=n) if flips and rotate and square else np.zeros(n, np.int64)
    return PatchDraws(image, corner, flip, turns)


def patch_indices(shape: tuple[int, ...], patch: tuple[int, ...], draws: PatchDraws, xp=np,
                  offset=None):
    """Flat (C-order) indices into an image of ``shape`` of each drawn patch, flipped and turned:
    (n, *patch) int64, so ``image.reshape(-1)[indices]`` gathers the augmented patches (as
    cropping, then ``np.flip`` and ``np.rot90(·, turns, axes=(-2, -1))``). ``offset`` (n,) is
    added to each patch's indices (e.g. its image's start in a stack). Built by broadcasting
    per-axis coordinates, with numpy or on a GPU with cupy (``xp``): the draws are small, the
    indices large.

    A quarter turn is a flip plus, for odd turns, a transpose of the YX plane: ``np.rot90`` by k
    reads ``m[j, P−1−i]``, ``m[P−1−i, P−1−j]``, ``m[P−1−j, i]`` for k = 1, 2, 3.
    """
    n, nd = len(draws.image), len(patch)
    strides = np.cumprod((*shape[1:], 1)[::-1])[::-1]
    odd = np.asarray(draws.turns) % 2 == 1
    turns = xp.asarray(draws.turns)
    flip = xp.asarray(draws.flip).copy()
    flip[:, -1] ^= (turns == 1) | (turns == 2)  # the flips hidden in a quarter turn
    flip[:, -2] ^= turns >= 2
    corner = xp.asarray(draws.corner)
    terms = []
    for d, (p, stride) in enumerate(zip(patch, strides, strict=True)):
        r = xp.arange(p)
        coord = corner[:, d, None] + xp.where(flip[:, d, None], p - 1 - r, r)  # (n, p)
        terms.append(coord.astype(xp.int64) * int(stride))
    y, x = terms[-2], terms[-1]
    plane = y[:, :, None] + x[:, None, :]  # (n, py, px)
    if odd.any():  # odd turns (square YX only): the plane transposed
        plane = xp.where(xp.asarray(odd)[:, None, None], y[:, None, :] + x[:, :, None], plane)
    idx = plane.reshape(n, *[1] * (nd - 2), *patch[-2:])
    for d in range(nd - 2):
        idx = idx + terms[d].reshape(n, *[p if a == d else 1 for a, p in enumerate(patch)])
    if offset is not None:
        idx = idx + xp.asarray(offset, xp.int64).reshape(n, *[1] * nd)
    return idx


def crop_patches(images: list[tuple[np.ndarray, np.ndarray]], n: int, patch: tuple[int, ...],
                 rng: np.random.Generator, *, threshold: float = 0.4, flips: bool = True,
                 rotate: bool = True, cache: dict[int, np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random foreground patches (input, target) from normalised images: arrays
    (n, 1, *patch), float32. ``cache`` keeps each image's foreground positions between calls."""
    cache = {} if cache is None else cache

    def positions(i: int) -> np.ndarray:
        check_patch(images[i][0].shape, patch)
        if i not in cache:
            cache[i] = foreground_positions(images[i][1], patch, threshold)
        return cache[i]

    draws = draw_patches(rng, n, len(images), positions, patch, flips=flips, rotate=rotate)
    xs, ys = (np.empty((n, 1, *patch), np.float32) for _ in range(2))
    for i in np.unique(draws.image):
        sel = draws.image == i
        idx = patch_indices(images[i][0].shape, patch, draws.take(sel))
        xs[sel, 0] = np.ravel(images[i][0])[idx]
        ys[sel, 0] = np.ravel(images[i][1])[idx]
    return xs, ys


# --- batch sources ----------------------------------------------------------------------------
def jitter_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of pair ``index``'s percentile jitter (CPU and GPU batches alike)."""
    return np.random.default_rng([seed, index, 0x717])


def patch_rng(seed: int, b: int) -> np.random.Generator:
    """The generator of batch ``b``'s patch positions and augmentations (CPU and GPU alike)."""
    return np.random.default_rng([seed, b, 0x5EED])


def pairs_of_batch(b: int, batch_size: int, per_image: int) -> tuple[int, int]:
    """First and last pair that batch ``b`` crops from: patch ``p`` (counting over all batches)
    comes from pair ``p // per_image``."""
    return b * batch_size // per_image, ((b + 1) * batch_size - 1) // per_image


class SimulatedBatches:
    """Batch ``b`` = patches from freshly simulated pairs, a pure function of (cfg, seed, b).

    Patch ``p`` (counting over all batches) comes from pair ``p // patches_per_image``, so a
    simulated pair serves several consecutive batches when ``patches_per_image`` exceeds the
    batch size (3D pairs are expensive; the most recent pairs are kept for that).
    """

    def __init__(self, cfg: SimConfig, *, seed: int, batch_size: int, patch: tuple[int, ...],
                 patches_per_image: int = 8, jitter: float = 0.0, threshold: float = 0.4,
                 augment: bool = True):
        self.cfg, self.seed, self.batch_size, self.patch = cfg, seed, batch_size, tuple(patch)
        self.per_image = max(1, patches_per_image)
        self.jitter, self.threshold, self.augment = jitter, threshold, augment
        self._recent: dict[int, list] = {}

    def _pair(self, index: int) -> list:
        if index not in self._recent:
            rng = jitter_rng(self.seed, index)
            self._recent[index] = [(x, y) for x, y, _ in
                                   normalised(self.cfg, self.seed, index, self.jitter, rng)]
            while len(self._recent) > 2:
                self._recent.pop(next(iter(self._recent)))
        return self._recent[index]

    def __call__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch number ``b``: (inputs, targets), each (batch, 1, *patch) float32."""
        rng = patch_rng(self.seed, b)
        first, last = pairs_of_batch(b, self.batch_size, self.per_image)
        images = [im for index in range(first, last + 1) for im in self._pair(index)]
        return crop_patches(images, self.batch_size, self.patch, rng, threshold=self.threshold,
                            flips=self.augment, rotate=self.augment and rotations(self.cfg))


class MixedBatches:
    """Batches drawn in turn from several batch functions: batch ``b`` is batch ``b // n`` of
    function ``b % n`` (pure in ``b``, so workers and resuming stay exact)."""

    def __init__(self, makers: list[Callable[[int], tuple[np.ndarray, np.ndarray]]]):
        self.makers = list(makers)

    def __call__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.makers)
        return self.makers[b % n](b // n)


class BatchStream(IterableDataset):
    """Endless stream of batches ``start, start + 1, …`` from a batch function; worker ``w`` of
    ``W`` computes batches ``start + w + k·W`` (use ``DataLoader(batch_size=None)``)."""

    def __init__(self, make_batch: Callable[[int], tuple[np.ndarray, np.ndarray]], start: int = 0):
        self.make_batch, self.start = make_batch, start

    def __iter__(self):
        info = get_worker_info()
        w, n = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            torch.set_num_threads(1)
            set_threads(1)  # workers share the cores with training: one thread each
            # A finished worker skips the C++ static destructors at interpreter exit: one of the
            # native thread pools in a simulating worker sometimes aborts there ("terminate
            # called without an active exception", ~1 exit in 5 on this machine), which the
            # DataLoader reports as a worker killed by SIGABRT. multiprocessing has flushed its
            # queues before atexit handlers run, so nothing is lost.
            atexit.register(os._exit, 0)
        b = self.start + w
        while True:
            x, y = self.make_batch(b)
            yield torch.from_numpy(x), torch.from_numpy(y)
            b += n


def validation_set(cfg: SimConfig, *, seed: int, patch: tuple[int, ...], n_patches: int,
                   n_pairs: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set: ``n_patches`` foreground patches from pairs of the held-out seed
    ``seed + VALIDATION_OFFSET`` (no augmentation), identical in every run with this config."""
    vseed = seed + VALIDATION_OFFSET
    rng = np.random.default_rng([vseed, 0xA1])
    images = []
    for index in range(n_pairs):
        images += [(x, y) for x, y, _ in normalised(cfg, vseed, index)]
    return crop_patches(images, n_patches, patch, rng, flips=False)
