"""Prediction block by block, for images larger than memory (OME-Zarr in and out).

:func:`predict_blocks` restores an array that is read and written in slabs along its first
spatial axis (Z for a 3D model, Y for a 2D one): each slab is a core of whole multiples of 2^depth
plus a halo of the network's receptive radius on both sides, restored by :func:`restore.predict.
predict` (itself tiled within the slab) with one normalisation for the whole image, and only its
core written. The padding a whole-image pass would add (up to a multiple of 2^depth at the end
of every axis, by reflection or, where an axis is too short for that, edge values on all axes)
is added to each slab before prediction, so every slab sees the pooling grid and borders of the
whole image: the result equals one pass over the whole image to float rounding, with and without
test-time augmentation (which pads before it turns the image), while at most one slab, its
output and the network's tiles are in memory.
The non-spatial axes (T, S, C, and Z for a 2D model) are looped over, each index an image of its
own as in :func:`restore.predict.predict`.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from itertools import product

import numpy as np
import torch
from tqdm.auto import tqdm

from simulate import SynthcareError

from .normalize import Affine, percentile_affine
from .predict import _default_budget, _halo, pad_mode, predict
from .unet import UNet

# bytes held per voxel of a slab: the float32 slab, its normalised and padded copies, the output
# (mean, or mean and scale) and the running sum of test-time augmentation
BYTES_PER_SLAB_VOXEL = 4 * 8


def slab_planes(model: UNet, plane_voxels: int, budget: int) -> int:
    """Core thickness of a slab (a multiple of 2^depth, at least one multiple) whose halo-padded
    slab of ``plane_voxels`` per plane fits ``budget`` bytes."""
    m, halo = model.multiple, _halo(model)
    fits = budget // (BYTES_PER_SLAB_VOXEL * max(plane_voxels, 1)) - 2 * halo
    return max(m, fits // m * m)


def image_affine(source, index: tuple[int, ...], n: int, max_voxels: int) -> Affine:
    """The normalisation of one image ``source[index]`` (first spatial axis of length ``n``): its
    percentiles, exact when it holds at most ``max_voxels``, else from every k-th plane."""
    plane = math.prod(source.shape[len(index) + 1:])
    step = max(1, math.ceil(n * plane / max_voxels))
    return percentile_affine(np.asarray(source[(*index, slice(0, n, step))], np.float32))


def predict_blocks(model: UNet, source, axes: str, out, *, scale_out=None,
                   memory_budget: int | None = None, tiles="auto", augment: bool = False,
                   device: str | None = None, progress: bool = False) -> None:
    """Restore ``source`` into ``out`` slab by slab (see the module docstring).

    Parameters
    ----------
    model : trained network (2D or 3D).
    source : array-like read by slicing (a Zarr array, a NumPy array) with ``axes`` (letters
        among T, S, C, Z, Y, X); the model's spatial axes (ZYX or YX) must come last.
    out, scale_out : writable arrays of ``source``'s shape for the restoration (input units) and,
        for a probabilistic model, the per-pixel Laplace scale.
    memory_budget : bytes for one slab and the network's tiles (default: min(2 GiB, ¼ of RAM) on
        a CPU, half the free GPU memory on CUDA).
    """
    nd = model.cfg.ndim
    spatial = "ZYX"[3 - nd:]
    if axes[-nd:] != spatial:
        raise SynthcareError(f"block-wise prediction needs the axes {spatial} last, got '{axes}'")
    if tuple(out.shape) != tuple(source.shape):
        raise SynthcareError(f"the output's shape {tuple(out.shape)} differs from the input's "
                             f"{tuple(source.shape)}")
    dev = torch.device(device) if device else next(model.parameters()).device
    budget = memory_budget or _default_budget(dev)
    lead, space = tuple(source.shape[:-nd]), tuple(source.shape[-nd:])
    n, m, halo = space[0], model.multiple, _halo(model)
    padded, mode = n + (-n) % m, pad_mode(space, m)
    core = slab_planes(model, math.prod(space[1:]), budget)
    starts = range(0, padded, core)
    jobs = list(product(*(range(k) for k in lead), starts))
    bar = tqdm(jobs, desc="blocks", unit="slab", disable=not progress or len(jobs) < 2)
    affine, current = None, None
    for *index, a in bar:
        index = tuple(index)
        if index != current:
            affine, current = image_affine(source, index, n, budget // BYTES_PER_SLAB_VOXEL), index
        b = min(a + core, padded)
        lo, hi = max(a - halo, 0), min(b + halo, padded)
        slab = np.asarray(source[(*index, slice(lo, min(hi, n)))], np.float32)
        # the whole image's padding (its end rows, and every other axis, in the whole image's
        # mode), so the pooling grid and the borders stay the whole image's
        pad = [(0, max(hi - n, 0))] + [(0, (-k) % m) for k in space[1:]]
        if any(p for _, p in pad):
            slab = np.pad(slab, pad, mode=mode)
        y = predict(model, slab, spatial, tiles, affine=affine, augment=augment,
                    memory_budget=budget, return_scale=scale_out is not None, device=str(dev))
        keep = (*index, slice(a, min(b, n)))
        inner = (slice(a - lo, min(b, n) - lo), *(slice(0, k) for k in space[1:]))
        if scale_out is None:
            out[keep] = y[inner]
        else:
            out[keep], scale_out[keep] = y[0][inner], y[1][inner]


def open_input(path: str, axes: str | None) -> tuple[object, str, tuple[float, ...] | None]:
    """Predict's input: an OME-Zarr image or bare Zarr array read lazily, or a TIFF in memory;
    returns (array, axes letters, voxel size in µm or None)."""
    from simulate import read_tiff
    from simulate.dataset import SLICES_INFO
    from simulate.omezarr import is_zarr, open_image

    if not is_zarr(path):
        image, meta = read_tiff(path)
        if meta.get("info") == SLICES_INFO:
            raise SynthcareError(
                f"{path} is an isotropic training pair (lateral slices degraded like z, not a "
                "stack): predict takes a stack as the microscope records it, e.g. "
                "eval/input/ of synthcare simulate --volumes N")
        return image, (axes or default_axes(meta.get("axes"), image.ndim)).upper(), meta.get("spacing")
    array, letters, scale = open_image(path)
    if letters and axes and axes.upper() != letters:
        raise SynthcareError(f"--axes {axes} contradicts the axes {letters} of the OME-Zarr "
                             f"image {path}")
    guess = "ZYX"[3 - len(array.shape):] if len(array.shape) in (2, 3) else ""
    letters = (letters or axes or guess).upper()
    if not letters or len(letters) != len(array.shape) or not set(letters) <= set("TSCZYX"):
        raise SynthcareError(f"the Zarr array {path} has shape {tuple(array.shape)}: give its axes "
                             "with --axes (letters among T, S, C, Z, Y, X)")
    return array, letters, scale


def default_axes(tiff_axes: str | None, ndim: int) -> str:
    """A TIFF's axes as predict names them (C, Z, Y, X), or YX/ZYX by its dimensions."""
    if tiff_axes and len(tiff_axes) == ndim:
        mapped = tiff_axes.replace("Q", "Z").replace("I", "Z").replace("S", "C")
        if set(mapped) <= set("CZYX") and len(set(mapped)) == ndim:
            return mapped
    if ndim in (2, 3):
        return "ZYX"[3 - ndim:]
    raise SynthcareError(f"cannot guess the axes of a {ndim}D image: give --axes (e.g. ZCYX)")


def spatial_last(image, axes: str, ndim: int) -> tuple[object, str]:
    """``image`` (a NumPy array) with the model's spatial axes moved last, and its new axes."""
    spatial = "ZYX"[3 - ndim:]
    if axes[-ndim:] == spatial:
        return image, axes
    if not set(spatial) <= set(axes):
        raise SynthcareError(f"the model restores {spatial} images; the input's axes are '{axes}'")
    if not isinstance(image, np.ndarray):
        raise SynthcareError(f"the Zarr array's axes '{axes}' must end in {spatial}")
    order = [i for i, a in enumerate(axes) if a not in spatial] + [axes.index(a) for a in spatial]
    return np.transpose(image, order), "".join(axes[i] for i in order)


def space_scale(axes: str, spacing) -> tuple[float, ...]:
    """The voxel size (µm) of the space axes among ``axes``, 1.0 where ``spacing`` lacks one."""
    n = sum(a in "ZYX" for a in axes)
    spacing = tuple(float(v) for v in (spacing or ()))[-n:] if n else ()
    return (1.0,) * (n - len(spacing)) + spacing


def output_arrays(stack: ExitStack, paths: list[str], shape: tuple[int, ...], axes: str,
                  spacing, chunks: tuple[int, ...]) -> list:
    """An array to write each output into: an OME-Zarr image built in a staged folder (renamed
    onto its path when ``stack`` closes without error) or, for a TIFF, an array in memory."""
    from simulate.omezarr import create_image, is_zarr
    from simulate.paths import staged_folder

    arrays = []
    for path in paths:
        if is_zarr(path) and "".join(a for a in axes if a in "TSCZ") not in \
                "".join(a for a in "TSCZ" if a in axes):
            raise SynthcareError(f"{path}: OME-Zarr keeps the axes in the order t, c, z, y, x; "
                                 f"the input's axes are '{axes}': write a TIFF, or reorder the "
                                 "input")
        if is_zarr(path):
            tmp = stack.enter_context(staged_folder(path))
            arrays.append(create_image(tmp, shape, axes, space_scale(axes, spacing), chunks))
        else:
            arrays.append(np.zeros(shape, np.float32))
    return arrays


def write_image(path: str, image: np.ndarray, axes: str, spacing) -> str:
    """``image`` to a TIFF (ImageJ, voxel size) or, for a path ending in .zarr, a new OME-Zarr
    image; returns the axes written."""
    from simulate import write_tiff
    from simulate.omezarr import is_zarr
    from simulate.paths import make_parent

    if not is_zarr(path):  # ImageJ has no pair axis S (its S is colour samples): pairs as frames
        return write_tiff(make_parent(path), image, space_scale(axes, spacing),
                          axes=axes.replace("S", "T"))
    with ExitStack() as stack:
        chunks = tuple(1 if a not in "ZYX" else min(n, 1024) for a, n in zip(axes, image.shape,
                                                                                strict=True))
        output_arrays(stack, [path], image.shape, axes, spacing, chunks)[0][...] = image
    return axes


def predict_files(model: UNet, source, axes: str, output: str, scale_path: str | None,
                  spacing, **kw) -> str:
    """:func:`predict_blocks` from an opened input into the files ``output`` (and ``scale_path``
    for a probabilistic model), each a new OME-Zarr image or a TIFF; returns the axes written.
    An interrupted run leaves no output behind."""
    source, axes = spatial_last(source, axes, model.cfg.ndim)
    nd, shape = model.cfg.ndim, tuple(source.shape)
    budget = kw.get("memory_budget") or _default_budget(next(model.parameters()).device)
    core = slab_planes(model, math.prod(shape[len(shape) - nd + 1:]), budget)
    chunks = ((1,) * (len(shape) - nd) + (min(core, shape[-nd]),)
              + tuple(min(n, 1024) for n in shape[len(shape) - nd + 1:]))
    paths = [output] + ([scale_path] if scale_path else [])
    with ExitStack() as stack:
        arrays = output_arrays(stack, paths, shape, axes, spacing, chunks)
        predict_blocks(model, source, axes, arrays[0],
                       scale_out=arrays[1] if scale_path else None, **kw)
    for path, array in zip(paths, arrays, strict=True):
        if isinstance(array, np.ndarray):
            write_image(path, array, axes, spacing)
    return axes
