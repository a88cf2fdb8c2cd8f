"""Blind-spot (Noise2Void) patches of the user's raw images, mixed into simulated batches.

A network trained on simulation learns the simulated sample; the user's raw images hold the
real one, but with their noise and no clean target. Noise2Void (Krull et al., CVPR 2019) learns
from noisy images alone: a few pixels of each patch are replaced by a random neighbour's value
and the loss is taken on those pixels only, against their raw values. The network cannot see a
masked pixel's own noise, and noise independent between pixels cannot be predicted from the
neighbours, so the minimiser is the pixel's expected value given its surroundings — the clean
signal — without a clean image. Unlike recorrupted pairs of one image (the input carries the
target's noise at the same pixel, so a network that sees the same frame thousands of times learns
its noise), a blind-spot target's noise is never in the input.

With ``train.blind_spot.images`` a share of every batch's patches are such patches (targets NaN
where unsupervised); :func:`masked` turns the run's loss into a per-patch mean over the
supervised pixels, so a blind-spot patch counts as much as a simulated one. Patches are a pure
function of (seed, batch number), as every batch source (:mod:`restore.data`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from simulate import SynthcareError

from .data import draw_patches, patch_indices
from .normalize import percentile_affine

RADIUS = 2  # px: a masked pixel takes the value of a random pixel within ±RADIUS (not itself)
STREAM = 0xB11D  # separates the blind-spot generator from the simulated batches' seeds
MASKABLE = ("mse", "mae")  # losses with a per-pixel form that :func:`masked` can restrict


def blind_spot_count(batch_size: int, share: float, images: tuple[str, ...]) -> int:
    """Blind-spot patches per batch: ``share`` of ``batch_size`` (at least one when there are
    images and a share, at most all but one)."""
    if not images or share <= 0:
        return 0
    return int(min(batch_size - 1, max(1, round(share * batch_size))))


class BlindSpotPatches:
    """Masked patches of raw 2D images, each normalised as prediction normalises it (its own
    percentiles, :func:`restore.normalize.percentile_affine`).

    Parameters
    ----------
    images : raw (y, x) images (ADU), each at least ``patch``.
    patch : (y, x) patch size, px.
    seed : the run's seed.
    pixels : fraction of each patch's pixels masked (one per cell of a regular grid, at a random
        place in the cell).
    augment : random flips and 90° rotations.
    """

    def __init__(self, images: list[np.ndarray], patch: tuple[int, int], *, seed: int,
                 pixels: float = 0.02, augment: bool = True):
        if len(patch) != 2:
            raise SynthcareError(f"train.blind_spot needs a 2D run (patch {list(patch)})")
        self.images = [percentile_affine(a)(np.asarray(a, np.float32)) for a in images]
        self.patch, self.seed, self.augment = tuple(patch), seed, augment
        self.cell = max(2, round(pixels ** -0.5))
        self._cache: dict[int, np.ndarray] = {}

    def _positions(self, i: int) -> np.ndarray:
        """Every patch corner of image ``i`` may be drawn (raw images have no target to
        filter on)."""
        hi = [s - p + 1 for s, p in zip(self.images[i].shape, self.patch, strict=True)]
        if i not in self._cache:
            self._cache[i] = np.stack(np.meshgrid(*map(np.arange, hi), indexing="ij"),
                                      -1).reshape(-1, 2)
        return self._cache[i]

    def __call__(self, b: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` masked patches for batch ``b``: inputs (n, 1, y, x) float32 and targets, NaN
        except at the masked pixels, which hold the raw values."""
        rng = np.random.default_rng([self.seed, b, STREAM])
        draws = draw_patches(rng, n, len(self.images), self._positions, self.patch,
                             flips=self.augment, rotate=self.augment)
        raw = np.empty((n, *self.patch), np.float32)
        for i in np.unique(draws.image):
            sel = draws.image == i
            raw[sel] = np.ravel(self.images[i])[patch_indices(self.images[i].shape, self.patch,
                                                              draws.take(sel))]
        x, y = mask(raw, rng, self.cell)
        return x[:, None], y[:, None]


def mask(raw: np.ndarray, rng: np.random.Generator, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask one pixel per ``cell``×``cell`` block of every (n, y, x) patch with a random
    neighbour's raw value (within ±:data:`RADIUS`, clipped to the patch, never itself); returns
    (input, target), the target NaN except at the masked pixels."""
    n, h, w = raw.shape
    gy, gx = np.meshgrid(np.arange(0, h, cell), np.arange(0, w, cell), indexing="ij")
    k = gy.size
    py = np.minimum(gy.ravel()[None] + rng.integers(0, cell, (n, k)), h - 1)
    px = np.minimum(gx.ravel()[None] + rng.integers(0, cell, (n, k)), w - 1)
    offsets = np.array([(dy, dx) for dy in range(-RADIUS, RADIUS + 1)
                        for dx in range(-RADIUS, RADIUS + 1) if dy or dx])
    o = offsets[rng.integers(0, len(offsets), (n, k))]
    qy = np.clip(py + o[..., 0], 0, h - 1)
    qx = np.clip(px + o[..., 1], 0, w - 1)
    same = (qy == py) & (qx == px)  # clipped onto itself at an edge: take the other side
    qy = np.where(same, np.clip(py - o[..., 0], 0, h - 1), qy)
    qx = np.where(same, np.clip(px - o[..., 1], 0, w - 1), qx)
    rows = np.arange(n)[:, None]
    x, y = raw.copy(), np.full_like(raw, np.nan)
    y[rows, py, px] = raw[rows, py, px]
    x[rows, py, px] = raw[rows, qy, qx]
    return x, y


class WithBlindSpot:
    """A batch function whose batches end with blind-spot patches: batch ``b`` is ``make(b)``
    followed by ``n`` patches of :class:`BlindSpotPatches` (numpy, or tensors on the device of
    a device batch source's)."""

    def __init__(self, make: Callable[[int], tuple], patches: BlindSpotPatches, n: int):
        self.make, self.patches, self.n = make, patches, n

    def __call__(self, b: int) -> tuple:
        x, y = self.make(b)
        bx, by = self.patches(b, self.n)
        if isinstance(x, torch.Tensor):
            bx, by = (torch.from_numpy(a).to(x.device) for a in (bx, by))
            return torch.cat([x, bx]), torch.cat([y, by])
        return np.concatenate([x, bx]), np.concatenate([y, by])

    def close(self) -> None:
        if hasattr(self.make, "close"):
            self.make.close()


def masked(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``name`` (one of :data:`MASKABLE`) as the mean over patches of each patch's mean
    over its finite target pixels: equal to the plain loss on fully supervised batches."""
    if name not in MASKABLE:
        raise SynthcareError(f"train.blind_spot needs train.loss mse or mae, not {name}")
    power = 2 if name == "mse" else 1

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = torch.isfinite(target)
        err = torch.where(valid, pred - torch.nan_to_num(target), 0).abs() ** power
        count = valid.flatten(1).sum(1).clamp(min=1)
        return (err.flatten(1).sum(1) / count).mean()

    return loss
