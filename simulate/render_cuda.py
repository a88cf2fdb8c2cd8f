"""Rasterisation on a GPU: numba CUDA versions of the kernels in :mod:`simulate.render`.

Same geometry, weights and anti-aliasing as the CPU kernels (the ellipsoid coverage is the very
same Python function, compiled for both targets). Determinism without float atomics: one
thread owns one output row ``volume[p, y, :]`` and visits the objects that touch that row in a
fixed order, so a render is identical from run to run. The summation order differs from the
CPU's (which owns whole planes), so CPU and GPU agree to float32 rounding, not bit for bit.

Runs on the CPU under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is
imported), which is how the tests check these kernels against the CPU ones on a machine
without a GPU. Arrays returned are numba device arrays, or the caller's cupy array (``out``), written
in place through the CUDA array interface without a copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import cuda

from .errors import SynthcareError
from .phantoms import Ellipsoids, Sample
from .render import coverage, ellipsoid_boxes, filament_points, point_voxels

_coverage_dev = cuda.jit(device=True)(coverage)
_ROWS = (8, 16)  # threads per block over (plane, row)


@cuda.jit
def _splat_rows(volume, zv, yv, xv, w, order, starts):  # pragma: no cover - CUDA
    """Thread (p, y) adds the points whose trilinear footprint reaches row y of plane p.
    Points are bucketed by key (iz + 1)·(ny + 1) + (iy + 1)."""
    p, yy = cuda.grid(2)
    nz, ny, nx = volume.shape
    if p >= nz or yy >= ny:
        return
    for side in range(2):          # floor(z) == p - 1 (upper weight), then == p
        for dy in range(2):        # floor(y) == y (lower weight), then == y - 1
            bucket = (p + side) * (ny + 1) + (yy - dy + 1)
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
                        volume[p, yy, xx] += w[j] * wz * wy * wx


@cuda.jit
def _ellipsoid_sums(lo, hi, spacing, centres, inv_rot, axes, inner, aa, sums):  # pragma: no cover
    g = cuda.grid(1)
    if g >= centres.shape[0]:
        return
    s = 0.0
    for i in range(lo[g, 0], hi[g, 0]):
        for j in range(lo[g, 1], hi[g, 1]):
            for k in range(lo[g, 2], hi[g, 2]):
                s += _coverage_dev((i + 0.5) * spacing[0], (j + 0.5) * spacing[1],
                                   (k + 0.5) * spacing[2], g, centres, inv_rot, axes, inner, aa)
    sums[g] = s


@cuda.jit
def _ellipsoid_rows(volume, lo, hi, spacing, centres, inv_rot, axes, inner, aa,
                    scale):  # pragma: no cover - CUDA
    p, j = cuda.grid(2)
    nz, ny, nx = volume.shape
    if p >= nz or j >= ny:
        return
    z = (p + 0.5) * spacing[0]
    y = (j + 0.5) * spacing[1]
    for g in range(centres.shape[0]):
        if p < lo[g, 0] or p >= hi[g, 0] or j < lo[g, 1] or j >= hi[g, 1] or scale[g] == 0.0:
            continue
        for k in range(max(lo[g, 2], 0), min(hi[g, 2], nx)):
            c = _coverage_dev(z, y, (k + 0.5) * spacing[2], g, centres, inv_rot, axes, inner, aa)
            if c > 0.0:
                volume[p, j, k] += scale[g] * c


def _grid2(shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    return (math.ceil(shape[0] / _ROWS[0]), math.ceil(shape[1] / _ROWS[1])), _ROWS


def splat_points_cuda(volume, positions: np.ndarray, weights: np.ndarray,
                      spacing: Sequence[float]) -> None:
    """:func:`simulate.render.splat_points` into a device ``volume`` (in place)."""
    if len(positions) == 0:
        return
    nz, ny, _ = volume.shape
    v, iz = point_voxels(positions, spacing)
    iy = np.floor(v[:, 1]).astype(np.int64)
    keep = (iz >= -1) & (iz < nz) & (iy >= -1) & (iy < ny)
    v, w, iz, iy = v[keep], np.asarray(weights, np.float64)[keep], iz[keep], iy[keep]
    key = (iz + 1) * (ny + 1) + (iy + 1)
    order = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[order], np.arange((nz + 1) * (ny + 1) + 1)).astype(np.int64)
    args = [cuda.to_device(np.ascontiguousarray(a)) for a in
            (v[:, 0], v[:, 1], v[:, 2], w, order, starts)]
    _splat_rows[_grid2((nz, ny))](volume, *args)


def render_ellipsoids_cuda(volume, ell: Ellipsoids, spacing: Sequence[float]) -> None:
    """:func:`simulate.render.render_ellipsoids` into a device ``volume`` (in place)."""
    if len(ell.centres) == 0:
        return
    spacing = np.asarray(spacing, np.float64)
    lo, hi, inv_rot, aa = ellipsoid_boxes(ell, spacing)
    dev = [cuda.to_device(np.ascontiguousarray(a)) for a in
           (lo, hi, spacing, ell.centres, inv_rot, ell.axes, ell.inner)]
    sums = cuda.device_array(len(ell.centres), np.float64)
    n = len(ell.centres)
    _ellipsoid_sums[math.ceil(n / 64), 64](*dev, aa, sums)
    sums = sums.copy_to_host()
    scale = np.where(sums > 0, ell.brightness / np.where(sums > 0, sums, 1.0), 0.0)
    _ellipsoid_rows[_grid2(volume.shape[:2])](volume, *dev, aa, cuda.to_device(scale))
    tiny = sums <= 0
    if tiny.any():
        splat_points_cuda(volume, ell.centres[tiny], ell.brightness[tiny], spacing)


def render_cuda(sample: Sample, shape: Sequence[int], spacing: Sequence[float], out=None):
    """:func:`simulate.render.render` on the GPU: a float32 device array of ``shape``, or added
    into ``out`` (a zeroed float32 device array of ``shape``: numba's or cupy's) and returned."""
    if not cuda.is_available():
        raise SynthcareError("device 'cuda' asked for, but numba finds no CUDA GPU (and the CUDA "
                             "simulator is off)")
    if out is None:
        volume = cuda.to_device(np.zeros(tuple(shape), np.float32))
    else:
        volume = out  # numba kernels take cupy arrays as they are (CUDA array interface)
    step = 0.5 * float(min(spacing))
    pos, w = filament_points(sample.filaments, step)
    pos = np.concatenate([pos, sample.beads.positions])
    w = np.concatenate([w, sample.beads.brightness])
    splat_points_cuda(volume, pos, w, spacing)
    render_ellipsoids_cuda(volume, sample.granules, spacing)
    return volume if out is None else out
