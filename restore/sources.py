"""What a run trains on: :class:`TrainData` from simulated pairs (:func:`simulated_data`) or
pairs on disk (:func:`folder_data`), checked by :func:`check_data` before training starts."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulate import SimConfig, SynthcareError

from . import ddp
from .config import RunConfig
from .data import MixedBatches, SimulatedBatches, model_ndim, validation_set
from .device_batches import DeviceBatches, default_workers
from .diskpairs import FolderPairs, ZarrPairs, npz_pairs, pair_files, read_pair_files


def device_pairs(sims: list[SimConfig]) -> bool:
    """True if the pairs are simulated on the GPU (``device: cuda``) and so reach training as
    device tensors; a mixture must not mix devices."""
    devices = {s.device for s in sims}
    if len(devices) > 1:
        raise SynthcareError("every configuration of a mixture must simulate on the same device")
    return devices == {"cuda"}


@dataclass
class TrainData:
    """What a run trains on: ``make_batch(b)``, batch ``b`` as a pure function of ``b`` (numpy
    arrays, or from the GPU simulator tensors already on the device), and a fixed validation
    set (numpy, (n, 1, *patch))."""

    make_batch: Callable[[int], tuple]
    val_x: np.ndarray
    val_y: np.ndarray
    ndim: int
    on_device: bool = False
    makers: list = field(default_factory=list)  # batch makers to close after training
    group: int = 1  # consecutive batches that share no pair with the next (ddp.batch_group)

    def close(self) -> None:
        for m in self.makers:
            if hasattr(m, "close"):
                m.close()


def folder_data(run: RunConfig, pairs: str | Path) -> TrainData:
    """Batches from pairs on disk: a folder of low/GT TIFFs, a CSBDeep training-data ``.npz``,
    or an OME-Zarr dataset (read lazily, :class:`restore.diskpairs.ZarrPairs`); the last tenth of the
    images (or patches) validates."""
    from simulate.omezarr import is_zarr

    t, patch = run.train, run.patch
    if is_zarr(pairs):
        images = ZarrPairs(pairs)
    elif Path(pairs).suffix.lower() == ".npz":
        images = npz_pairs(pairs)
    else:
        images = read_pair_files(pair_files(pairs))
    n_val = max(1, len(images) // 10) if len(images) > 1 else 0
    train_images, val_images = images[: len(images) - n_val], images[len(images) - n_val:] or images
    source = FolderPairs(patch=patch, seed=run.seed, images=train_images,
                         patches_per_image=t.patches_per_image, threshold=t.foreground,
                         augment=t.augment)
    vsrc = FolderPairs(patch=patch, seed=run.seed + 1, images=val_images, augment=False,
                       threshold=t.foreground)
    val_x, val_y = vsrc.batch(0, t.val_patches)
    return TrainData(functools.partial(source.batch, batch_size=t.batch_size), val_x, val_y,
                     source.ndim)


def simulated_data(run: RunConfig, mixture: list[SimConfig] | None = None) -> TrainData:
    """Batches of pairs simulated on the fly from the run (or, in turn, from each configuration
    of ``mixture``); a GPU simulator hands device tensors (DeviceBatches: geometry drawn ahead
    by worker processes, the next chunk by a thread), the CPU one numpy arrays."""
    t = run.train
    sims = mixture or [run.sim]
    ndim = model_ndim(run)
    if any(model_ndim(s) != ndim for s in sims):
        raise SynthcareError("every configuration of a mixture must give the network the same "
                             "number of dimensions")
    on_device = device_pairs(sims)
    kw = dict(seed=run.seed, batch_size=t.batch_size, patch=run.patch,
              patches_per_image=t.patches_per_image, jitter=t.jitter, threshold=t.foreground,
              augment=t.augment)
    if on_device:
        gw = t.workers if t.workers is not None else default_workers()
        makers = [DeviceBatches(s, workers=gw, prefetch=True, **kw) for s in sims]
    else:
        makers = [SimulatedBatches(s, **kw) for s in sims]
    vals = [validation_set(s, seed=run.seed, patch=run.patch,
                           n_patches=max(1, t.val_patches // len(sims))) for s in sims]
    val_x, val_y = (np.concatenate(a) for a in zip(*vals, strict=True))
    return TrainData(makers[0] if len(makers) == 1 else MixedBatches(makers), val_x, val_y, ndim,
                     on_device, makers,
                     ddp.batch_group(t.batch_size, t.patches_per_image, len(makers),
                                     math.lcm(*(getattr(m, "chunk", 1) for m in makers))))


def check_data(run: RunConfig, data: TrainData) -> None:
    """Refuse a patch of the wrong dimensionality; warn when the targets carry no signal."""
    if _no_signal(data.val_y):
        print("warning: the training targets carry no signal (every validation patch is constant): "
              "check the sample settings and camera.photons (or the pairs)", file=sys.stderr)
    if len(run.patch) != data.ndim:
        raise SynthcareError(f"train.patch {list(run.patch)} must have {data.ndim} entries for "
                             "this task")


def _no_signal(targets: np.ndarray) -> bool:
    """True if every target patch is constant (nothing to learn)."""
    flat = targets.reshape(len(targets), -1)
    return bool(np.all(flat.max(axis=1) - flat.min(axis=1) <= 1e-6 * max(1.0, np.abs(flat).max())))
