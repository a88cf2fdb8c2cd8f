"""Prediction on images of any size, tiled so it fits in memory, seamless.

The image is normalised by its percentiles, padded once to a multiple of 2^depth and cut into
tiles whose cores start on multiples of 2^depth (so max-pooling sees the same grid as an
untiled pass) with a halo of at least the network's receptive radius: every core pixel is
computed from exactly the context an untiled pass would use, so tiled output equals untiled
output to float rounding. The number of tiles is chosen from a memory budget unless given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
from tqdm.auto import tqdm

from simulate import SynthcareError, interpolate_axis
from simulate.config import SimConfig

from .normalize import Affine, percentile_affine
from .prefilter import wiener
from .unet import UNet, memory_format_for
from .workflows import workflow

# float32 bytes held per voxel per first-level filter during a forward pass (measured peak ~6 live
# maps of `filters` channels at full resolution, with headroom for the convolution workspace)
_BYTES_PER_VOXEL_PER_FILTER = 4 * 8


def _default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.5 * free)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(min(2 * 2**30, 0.25 * total))


def parse_axes(axes: str, image: np.ndarray, model_ndim: int) -> str:
    """Validate an axes string such as 'YX', 'ZYX', 'CYX', 'ZCYX' against an image and model."""
    axes = axes.upper()
    if len(set(axes)) != len(axes) or not set(axes) <= set("CZYX") or not {"Y", "X"} <= set(axes):
        raise SynthcareError(f"axes '{axes}' must use each of C, Z, Y, X at most once and contain Y "
                             "and X")
    if len(axes) != image.ndim:
        raise SynthcareError(f"axes '{axes}' has {len(axes)} letters but the image has {image.ndim} "
                             f"dimensions {image.shape}")
    if model_ndim == 3 and "Z" not in axes:
        raise SynthcareError(f"the model is 3D but the image (axes '{axes}') has no Z axis")
    return axes


def choose_tiles(shape: Sequence[int], model: UNet, budget: int) -> tuple[int, ...]:
    """Fewest tiles per axis (splitting the longest cores first) whose halo-padded tile fits
    ``budget`` bytes."""
    m, halo = model.multiple, _halo(model)
    per_voxel = _BYTES_PER_VOXEL_PER_FILTER * model.cfg.filters
    smallest = max(m, halo)  # a core smaller than its halo would mostly compute halo
    tiles = [1] * len(shape)
    while True:
        core = [math.ceil(n / t / m) * m for n, t in zip(shape, tiles, strict=True)]
        extent = [min(c + 2 * halo, n) for c, n in zip(core, shape, strict=True)]
        splittable = [c > smallest for c in core]
        if math.prod(extent) * per_voxel <= budget or not any(splittable):
            return tuple(tiles)
        axis = int(np.argmax([c if ok else -1 for c, ok in zip(core, splittable, strict=True)]))
        tiles[axis] += 1


def _halo(model: UNet) -> int:
    m = model.multiple
    return math.ceil(model.receptive_radius() / m) * m


def _run(model: UNet, x: np.ndarray, device: torch.device, autocast) -> np.ndarray:
    with torch.no_grad(), autocast:
        t = torch.from_numpy(np.ascontiguousarray(x))[None, None].to(device)
        t = t.to(memory_format=memory_format_for(model.cfg.ndim))
        return model(t)[0].float().contiguous().cpu().numpy()


def predict_normalised(model: UNet, x: np.ndarray, tiles: Sequence[int] | None, device: torch.device,
                       autocast, progress: bool = False) -> np.ndarray:
    """Network output (C_out, *x.shape) for one normalised single-channel image ``x`` whose
    spatial dims match the model; ``tiles`` per axis (None: untiled)."""
    m = model.multiple
    xp, crop = padded(x, m)
    n_out = model.cfg.channels_out * (2 if model.cfg.probabilistic else 1)
    if tiles is None or all(t == 1 for t in tiles):
        out = _run(model, xp, device, autocast)
    else:
        halo = _halo(model)
        out = np.empty((n_out, *xp.shape), np.float32)
        cores = [math.ceil(n / t / m) * m for n, t in zip(xp.shape, tiles, strict=True)]
        starts = [range(0, n, c) for n, c in zip(xp.shape, cores, strict=True)]
        jobs = list(product(*starts))
        for corner in tqdm(jobs, desc="tiles", disable=not progress or len(jobs) < 4):
            core = tuple(slice(a, min(a + c, n)) for a, c, n in zip(corner, cores, xp.shape, strict=True))
            ext = tuple(slice(max(s.start - halo, 0), min(s.stop + halo, n))
                        for s, n in zip(core, xp.shape, strict=True))
            y = _run(model, xp[ext], device, autocast)
            inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext, strict=True))
            out[(slice(None), *core)] = y[(slice(None), *inner)]
    return out[(slice(None), *crop)]


def predict(model: UNet, image: np.ndarray, axes: str, tiles: str | Sequence[int] | None = "auto", *,
            return_scale: bool = False, memory_budget: int | None = None, device: str | None = None,
            bf16: bool = False, progress: bool = False, affine: Affine | None = None,
            augment: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Restore ``image`` (any size) with a trained model.

    Parameters
    ----------
    model : a trained :class:`~restore.unet.UNet` (see :func:`restore.checkpoints.load_model`).
    image : array with the axes ``axes`` ('YX', 'ZYX', optionally with 'C'); a 2D model applied
        to a 'ZYX' image restores each plane.
    tiles : 'auto' (from ``memory_budget``, default min(2 GiB, ¼ of RAM) on a CPU, half the free
        GPU memory on CUDA), a tile count per spatial axis of the model, or None (untiled).
    return_scale : also return the per-pixel Laplace scale (probabilistic models), in the input's
        units.
    bf16 : bfloat16 autocast (faster on hardware with bf16 units, ~1e-2 relative error).
    affine : one normalisation for every image (default: each image by its own percentiles).
    augment : test-time augmentation: the mean of the predictions of the 8 rotations and flips
        of the YX plane (8× the time; on the real pairs of ``benchmarks/realdata.py`` +0.15 dB).

    Returns
    -------
    float32 array with the input's shape and axes, in the input's units (and the scale).
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number):
        raise SynthcareError(f"image must be numeric, got dtype {image.dtype}")
    nd = model.cfg.ndim
    axes = parse_axes(axes, image, nd)
    if not np.all(np.isfinite(image)):
        raise SynthcareError("the image contains NaN or Inf values; replace them before predicting")
    if return_scale and not model.cfg.probabilistic:
        raise SynthcareError("return_scale needs a probabilistic model (train.loss = laplace)")
    dev = torch.device(device) if device else next(model.parameters()).device
    model = model.to(dev).eval().to(memory_format=memory_format_for(nd))
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else torch.autocast(dev.type,
                                                                                           enabled=False)
    # bring to (batch..., spatial...) with the model's spatial axes last
    spatial = "ZYX"[3 - nd:]
    lead = [a for a in axes if a not in spatial]
    order = [axes.index(a) for a in lead] + [axes.index(a) for a in spatial]
    moved = np.transpose(image, order).astype(np.float32)
    flat = moved.reshape(-1, *moved.shape[len(lead):])
    if tiles == "auto":
        tile_counts = choose_tiles(flat.shape[1:], model, memory_budget or _default_budget(dev))
    elif tiles is None:
        tile_counts = None
    else:
        tile_counts = tuple(int(t) for t in tiles)
        if len(tile_counts) != nd or min(tile_counts) < 1:
            raise SynthcareError(f"tiles must be 'auto' or {nd} positive counts, got {tiles}")
    means, scales = [], []
    def run(x: np.ndarray, turned: bool = False) -> np.ndarray:
        counts = tile_counts
        if turned and counts is not None:  # a quarter turn swaps the Y and X extents
            counts = (*counts[:-2], counts[-1], counts[-2])
        return predict_normalised(model, x, counts, dev, autocast, progress and not augment)

    for x in tqdm(flat, desc="predict", disable=not progress or (len(flat) < 4 and not augment)):
        aff = affine or percentile_affine(x)
        xp, crop = padded(aff(x), model.multiple)  # one padded image for all eight views
        y = (dihedral_mean(run, xp) if augment else run(xp))[(..., *crop)]
        c = model.cfg.channels_out
        means.append(aff.inverse(y[0] if c == 1 else y[:c]))
        if return_scale:
            scales.append((y[c] if c == 1 else y[c:]) * np.float32(aff.scale))
    inverse = np.argsort(order)

    def back(parts: list[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(np.stack(parts).reshape(moved.shape), inverse))

    return (back(means), back(scales)) if return_scale else back(means)


def padded(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``x`` padded at the end of every axis to a multiple of ``multiple`` (reflection; edge
    values if an axis is too short to reflect), and the slices that crop an output of the padded
    shape back to ``x``'s. :func:`predict` pads before test-time augmentation turns the image,
    so all eight views (and the slabs of :mod:`restore.blocks`) see one padded image."""
    pads = [(0, (-n) % multiple) for n in x.shape]
    crop = tuple(slice(0, n) for n in x.shape)
    if not any(p for _, p in pads):
        return x, crop
    return np.pad(x, pads, mode=pad_mode(x.shape, multiple)), crop


def pad_mode(shape: tuple[int, ...], multiple: int) -> str:
    """How :func:`padded` pads an image of ``shape``: by reflection, or with edge values on
    every axis when any axis is too short to reflect to a multiple of ``multiple``."""
    return "reflect" if all(n > (-n) % multiple for n in shape) else "edge"


def dihedral_mean(fn, x: np.ndarray) -> np.ndarray:
    """The mean of ``fn`` over the 8 rotations and flips of the last two axes of ``x``, each
    output turned back: ``fn(t, turned)`` gets the transformed array and whether Y and X swapped,
    and returns an array whose last two axes are those of ``t``."""
    total = None
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(x, k, axes=(-2, -1))
            t = t[..., ::-1] if flip else t
            y = fn(np.ascontiguousarray(t), k % 2 == 1)
            y = np.rot90(y[..., ::-1] if flip else y, -k, axes=(-2, -1))
            total = y if total is None else total + y
    return total / np.float32(8)


def upsample_z(image: np.ndarray, axes: str, factor: int) -> np.ndarray:
    """Linear interpolation along Z by an integer factor, as in training: plane i of the input
    becomes plane i·factor of the output, which has (nz − 1)·factor + 1 planes."""
    if "Z" not in axes:
        raise SynthcareError(f"axial upsampling needs a Z axis, got axes '{axes}'")
    if factor < 1:
        raise SynthcareError(f"the z factor must be a positive integer, got {factor}")
    if image.shape[axes.index("Z")] < 2:
        raise SynthcareError("axial upsampling needs at least 2 planes")
    return interpolate_axis(image.astype(np.float32), factor, axis=axes.index("Z"), order=1)


def predict_isotropic(model: UNet, volume: np.ndarray, factor: int, tiles="auto",
                      progress: bool = False, **kw) -> np.ndarray:
    """Isotropic reconstruction of an anisotropic ZYX stack with a 2D model trained by the
    lateral-slice scheme.

    The stack is interpolated along z (``factor``), then the model restores every XZ slice and
    every YZ slice (z is the rows axis, as the degraded y axis was in training); the two
    estimates are averaged. The arithmetic mean is linear, so photometry is kept and independent
    errors of the two passes average down; CSBDeep's geometric mean instead pulls intensities
    towards zero wherever the two disagree. One normalisation (the whole stack's percentiles)
    serves every slice, so slices agree in brightness.
    """
    if model.cfg.ndim != 2:
        raise SynthcareError("isotropic reconstruction needs the 2D model of the isotropic task")
    if volume.ndim != 3:
        raise SynthcareError(f"isotropic reconstruction needs a ZYX stack, got shape {volume.shape}")
    up = upsample_z(volume, "ZYX", factor)
    aff = percentile_affine(up)
    xz = predict(model, np.moveaxis(up, 1, 0), "ZYX", tiles, affine=aff, progress=progress, **kw)
    yz = predict(model, np.moveaxis(up, 2, 0), "ZYX", tiles, affine=aff, progress=progress, **kw)
    # xz[y] is the (z, x) slice at row y; yz[x] the (z, y) slice at column x
    return np.ascontiguousarray(0.5 * (np.moveaxis(xz, 0, 1) + np.moveaxis(yz, 0, 2)), np.float32)


def predict_task(model: UNet, task: str, image: np.ndarray, axes: str, *, factor: int | None = None,
                 z_factor: int | None = None, tiles="auto", progress: bool = False,
                 augment: bool = False, return_scale: bool = False,
                 memory_budget: int | None = None, sim: SimConfig | None = None):
    """Restore an image the way a task's model expects it.

    ``upsample``: the stack as acquired (plane i at z = i·k·pixel) is interpolated along z and
    restored; ``isotropic``: see :func:`predict_isotropic`; other tasks: :func:`predict`.
    ``factor`` overrides the model's z factor ``z_factor`` (never changed silently). ``augment``:
    test-time augmentation (see :func:`predict`; not for isotropic models, whose rows axis is
    the degraded one). ``return_scale``: also the per-pixel Laplace scale of a probabilistic
    model, as :func:`predict` returns it (not for isotropic models, whose two passes would need
    a rule to combine it). ``memory_budget``: bytes for the network's tiles (see :func:`predict`).
    ``sim``: the model's simulation config; a deconvolution model trained with ``target.wiener``
    gets the image Wiener-filtered with its PSF first (:mod:`restore.prefilter`).
    """
    k = factor or z_factor
    if sim is not None and sim.target.wiener is not None:
        spatial = "ZYX"[-sim.ndim:]
        if not axes.endswith(spatial) or image.ndim != len(axes):
            raise SynthcareError(f"this model Wiener-filters {spatial} images with its PSF: give "
                                 f"an image whose last axes are {spatial} (got axes '{axes}', "
                                 f"shape {tuple(image.shape)})")
        image = wiener(sim, image)
    wf = workflow(task)
    if wf.interpolate_z:
        if k is None:
            raise SynthcareError("give the z factor (--factor) of the acquisition")
        return predict(model, upsample_z(image, axes, k), axes, tiles, progress=progress,
                       augment=augment, return_scale=return_scale, memory_budget=memory_budget)
    if wf.slices:
        if k is None:
            raise SynthcareError("give the z factor (--factor) of the acquisition")
        if axes != "ZYX":
            raise SynthcareError(f"isotropic reconstruction takes a ZYX stack, got axes '{axes}'")
        if augment:
            raise SynthcareError("test-time augmentation (--tta) turns the YX plane, which an "
                                 "isotropic model must not: its rows are the degraded axis")
        if return_scale:
            raise SynthcareError("--scale is not available for isotropic reconstruction (it "
                                 "averages two passes of the network)")
        return predict_isotropic(model, image, k, tiles, progress=progress)
    return predict(model, image, axes, tiles, progress=progress, augment=augment,
                   return_scale=return_scale, memory_budget=memory_budget)
