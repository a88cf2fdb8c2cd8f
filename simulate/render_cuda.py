"""Rasterisation on a GPU: numba CUDA versions of the kernels in :mod:`simulate.render`.

Same geometry, weights and anti-aliasing as the CPU kernels (the ellipsoid coverage is the very
same Python function, compiled for both targets, and each granule's normalisation comes from the
CPU kernel). The host-side work (points along filaments, bucketing, normalisation) is split off
as :func:`prepare`, so it can run ahead in other processes while the GPU renders. Determinism
without float atomics: one thread owns one output row ``volume[p, y, :]`` and visits the
objects that touch that row in a fixed order, so a render is identical from run to run. The
summation order differs from the CPU's (which owns whole planes), so CPU and GPU agree to
float32 rounding, not bit for bit.

Runs on the CPU under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is
imported), which is how the tests check these kernels against the CPU ones on a machine
without a GPU. Arrays returned are numba device arrays, or the caller's cupy array (``out``),
written in place through the CUDA array interface without a copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import cuda

from .backend import kernel_array
from .errors import SynthcareError
from .kernels import coverage, ellipsoid_layout, point_voxels, render_points
from .phantoms import Sample

_coverage_dev = cuda.jit(device=True)(coverage)
_ROWS = (8, 16)  # threads per block over (sample·plane, row)


@cuda.jit
def _splat_rows(volume, zv, yv, xv, w, order, starts):  # pragma: no cover - CUDA
    """Thread (b·nz + p, y) adds the points of sample b whose trilinear footprint reaches row y
    of plane p. Each sample's points are bucketed by key (iz + 1)·(ny + 1) + (iy + 1); sample b's
    bucket starts are entries b·n_keys … of ``starts`` (n_keys = (nz + 1)(ny + 1) + 1)."""
    bp, yy = cuda.grid(2)
    nb, nz, ny, nx = volume.shape
    if bp >= nb * nz or yy >= ny:
        return
    b = bp // nz
    p = bp % nz
    first = b * ((nz + 1) * (ny + 1) + 1)
    for side in range(2):          # floor(z) == p - 1 (upper weight), then == p
        for dy in range(2):        # floor(y) == y (lower weight), then == y - 1
            bucket = first + (p + side) * (ny + 1) + (yy - dy + 1)
            for jj in range(starts[bucket], starts[bucket + 1]):
                j = order[jj]
                fz = zv[j] - math.floor(zv[j])
                wz = fz if side == 0 else 1.0 - fz
                fy = yv[j] - math.floor(yv[j])
                wy = fy if dy == 1 else 1.0 - fy
                ix = int(math.floor(xv[j]))
                fx = xv[j] - ix
                for dx in range(2):
                    xx = ix + dx
                    if 0 <= xx < nx:
                        wx = fx if dx else 1.0 - fx
                        volume[b, p, yy, xx] += w[j] * wz * wy * wx


@cuda.jit
def _ellipsoid_rows(volume, first, lo, hi, spacing, centres, inv_rot, axes, inner, aa,
                    scale):  # pragma: no cover - CUDA
    """Thread (b·nz + p, y) adds the coverage of sample b's granules (``first[b]`` …
    ``first[b + 1]`` − 1) to row y of plane p."""
    bp, j = cuda.grid(2)
    nb, nz, ny, nx = volume.shape
    if bp >= nb * nz or j >= ny:
        return
    b = bp // nz
    p = bp % nz
    z = (p + 0.5) * spacing[0]
    y = (j + 0.5) * spacing[1]
    for g in range(first[b], first[b + 1]):
        if p < lo[g, 0] or p >= hi[g, 0] or j < lo[g, 1] or j >= hi[g, 1] or scale[g] == 0.0:
            continue
        k0 = lo[g, 2] if lo[g, 2] > 0 else 0  # if/else, not min/max: numba's built-in CUDA
        k1 = hi[g, 2] if hi[g, 2] < nx else nx  # target fails to type those on scalars
        for k in range(k0, k1):
            c = _coverage_dev(z, y, (k + 0.5) * spacing[2], g, centres, inv_rot, axes, inner,
                              aa[b])
            if c > 0.0:
                volume[b, p, j, k] += scale[g] * c


def _grid2(shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    return (math.ceil(shape[0] / _ROWS[0]), math.ceil(shape[1] / _ROWS[1])), _ROWS


class Points(NamedTuple):
    """Point sources bucketed by row for ``_splat_rows``: voxel coordinates, weights, the sort
    order by bucket key (iz + 1)·(ny + 1) + (iy + 1), and each bucket's start in that order."""

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    w: np.ndarray
    order: np.ndarray
    starts: np.ndarray


class GranuleLayout(NamedTuple):
    """Granules for ``_ellipsoid_rows``: voxel bounds, the grid spacing (µm), centres, inverse
    rotations, semi-axes, inner fractions, anti-aliasing width and brightness scale (from the
    CPU's :func:`simulate.kernels.ellipsoid_layout`)."""

    lo: np.ndarray
    hi: np.ndarray
    spacing: np.ndarray
    centres: np.ndarray
    inv_rot: np.ndarray
    axes: np.ndarray
    inner: np.ndarray
    aa: float
    scale: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """What the CUDA kernels need to render one sample, all host (numpy) arrays, so it can be
    made ahead of time in another process (:func:`prepare`).

    points : :class:`Points`, the point sources (filaments, beads, granules too small to cover a
        voxel centre).
    granules : :class:`GranuleLayout` or None; ``scale`` (brightness over the granule's summed
        coverage) is computed by the CPU kernel, so each granule integrates to the same
        brightness as on the CPU.
    """

    shape: tuple[int, int, int]
    points: Points
    granules: GranuleLayout | None


def _buckets(positions: np.ndarray, weights: np.ndarray, shape: Sequence[int],
             spacing: Sequence[float]) -> Points:
    nz, ny, _ = shape
    v, iz = point_voxels(positions, spacing)
    iy = np.floor(v[:, 1]).astype(np.int64)
    keep = (iz >= -1) & (iz < nz) & (iy >= -1) & (iy < ny)
    v, w, iz, iy = v[keep], np.asarray(weights, np.float64)[keep], iz[keep], iy[keep]
    key = (iz + 1) * (ny + 1) + (iy + 1)
    order = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[order], np.arange((nz + 1) * (ny + 1) + 1)).astype(np.int64)
    return Points(*(np.ascontiguousarray(a) for a in (v[:, 0], v[:, 1], v[:, 2], w, order, starts)))


def prepare(sample: Sample, shape: Sequence[int], spacing: Sequence[float]) -> Prepared:
    """The host-side part of rendering ``sample`` on a GPU (see :class:`Prepared`)."""
    pos, w = render_points(sample, spacing)
    ell, granules = sample.granules, None
    if len(ell.centres):
        spacing_a = np.asarray(spacing, np.float64)
        lo, hi, inv_rot, aa, scale, tiny = ellipsoid_layout(ell, spacing_a)
        granules = GranuleLayout(*(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a
                                   for a in (lo, hi, spacing_a, ell.centres, inv_rot, ell.axes,
                                             ell.inner, aa, scale)))
        # too small to cover a voxel centre: a point, as on the CPU
        pos = np.concatenate([pos, ell.centres[tiny]])
        w = np.concatenate([w, ell.brightness[tiny]])
    return Prepared(tuple(int(n) for n in shape), _buckets(pos, w, shape, spacing), granules)


def _require_gpu() -> None:
    if not cuda.is_available():
        raise SynthcareError("device 'cuda' asked for, but numba finds no CUDA GPU (and the CUDA "
                             "simulator is off)")


def _stack_points(prepared: Sequence[Prepared]) -> tuple[np.ndarray, ...]:
    """The point buckets of several samples as one set of arrays (orders and starts shifted by
    each sample's first point), the layout ``_splat_rows`` reads."""
    counts = [len(p.points.z) for p in prepared]
    shift = np.cumsum([0, *counts[:-1]])
    coords = [np.concatenate([getattr(p.points, k) for p in prepared]) for k in "zyxw"]
    order = np.concatenate([p.points.order + s for p, s in zip(prepared, shift, strict=True)])
    starts = np.concatenate([p.points.starts + s for p, s in zip(prepared, shift, strict=True)])
    return (*coords, order.astype(np.int64), starts.astype(np.int64))


def _stack_granules(prepared: Sequence[Prepared]) -> tuple[np.ndarray, ...]:
    """The granules of several samples as one set of arrays plus ``first`` ((B + 1,): sample b
    owns granules first[b] … first[b + 1] − 1) and a per-sample ``aa``, for ``_ellipsoid_rows``."""
    own = [p.granules for p in prepared if p.granules is not None]
    first = np.cumsum([0] + [0 if p.granules is None else len(p.granules.lo) for p in prepared])
    lo, hi, centres, inv_rot, axes, inner, scale = (
        np.ascontiguousarray(np.concatenate([getattr(g, k) for g in own]))
        for k in ("lo", "hi", "centres", "inv_rot", "axes", "inner", "scale"))
    aa = np.array([1.0 if p.granules is None else p.granules.aa for p in prepared], np.float64)
    return (first.astype(np.int64), lo, hi, own[0].spacing, centres, inv_rot, axes, inner, aa,
            scale)


def render_prepared_batch(prepared: Sequence[Prepared], out=None):
    """Render several :class:`Prepared` samples of one shape on the GPU, in two kernel launches
    and one upload per array for the whole batch: a float32 device array (B, *shape), or added
    into ``out`` (a zeroed float32 device array of that shape, numba's or cupy's) and returned."""
    _require_gpu()
    if out is not None and not out.flags["C_CONTIGUOUS"]:  # numpy, cupy and numba flags alike
        raise ValueError("out must be a C-contiguous device array")
    if len(prepared) == 0:
        if out is None:
            raise ValueError("no samples to render")
        return out
    shape = prepared[0].shape
    if any(p.shape != shape for p in prepared):
        raise ValueError("the samples of a batch must share one shape")
    volume = cuda.to_device(np.zeros((len(prepared), *shape), np.float32)) if out is None else out
    target = kernel_array(volume)
    grid = _grid2((len(prepared) * shape[0], shape[1]))
    points = _stack_points(prepared)
    if len(points[0]):
        _splat_rows[grid](target, *(cuda.to_device(a) for a in points))
    if any(p.granules is not None for p in prepared):
        _ellipsoid_rows[grid](target, *(cuda.to_device(a) for a in _stack_granules(prepared)))
    return volume


def render_prepared_cuda(prepared: Prepared, out=None):
    """Render one :class:`Prepared` sample on the GPU: a float32 device array of its shape, or
    added into ``out`` (a zeroed float32 device array of that shape) and returned."""
    _require_gpu()
    volume = cuda.to_device(np.zeros(prepared.shape, np.float32)) if out is None else out
    if not volume.flags["C_CONTIGUOUS"]:
        raise ValueError("out must be a C-contiguous device array")
    render_prepared_batch([prepared], volume.reshape(1, *prepared.shape))  # a view: contiguous
    return volume


def render_cuda(sample: Sample, shape: Sequence[int], spacing: Sequence[float], out=None):
    """:func:`simulate.render.render` on the GPU: a float32 device array of ``shape``, or added
    into ``out`` (see :func:`render_prepared_cuda`)."""
    _require_gpu()
    return render_prepared_cuda(prepare(sample, shape, spacing), out)
