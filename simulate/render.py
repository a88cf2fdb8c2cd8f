"""Rasterise a sample onto the fine truth grid (numba kernels).

Voxel ``i`` of an axis covers ``[i·d, (i+1)·d)`` µm, centre ``(i + ½)·d``. Profiles are
anti-aliased and every object keeps its integral exactly (to float rounding): a filament
deposits ``brightness × length``, a granule or bead its ``brightness``, minus what falls outside
the grid. Cost grows with the voxels each object touches, never with volume × objects.

The kernels run in parallel over z-planes: each thread owns whole planes and visits the objects
touching its plane in a fixed order, so the result is bit-identical for any thread count and no
atomics are needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from .kernels import _coverage, ellipsoid_layout, point_voxels, render_points
from .phantoms import Ellipsoids, Sample


# --- points: trilinear ("cloud in cell") deposition ------------------------------------------
@numba.njit(parallel=True, cache=True)
def _splat(volume, zv, yv, xv, w, order, starts):  # pragma: no cover - numba
    nz, ny, nx = volume.shape
    for p in numba.prange(nz):
        for side in range(2):  # points with floor(z) == p - 1 (upper weight), then == p
            bucket = p + side
            for jj in range(starts[bucket], starts[bucket + 1]):
                j = order[jj]
                fz = zv[j] - math.floor(zv[j])
                wz = fz if side == 0 else 1.0 - fz
                iy = int(math.floor(yv[j]))
                ix = int(math.floor(xv[j]))
                fy = yv[j] - iy
                fx = xv[j] - ix
                for dy in range(2):
                    yy = iy + dy
                    if yy < 0 or yy >= ny:
                        continue
                    wy = fy if dy else 1.0 - fy
                    for dx in range(2):
                        xx = ix + dx
                        if xx < 0 or xx >= nx:
                            continue
                        wx = fx if dx else 1.0 - fx
                        volume[p, yy, xx] += w[j] * wz * wy * wx


def splat_points(volume: np.ndarray, positions: np.ndarray, weights: np.ndarray,
                 spacing: Sequence[float]) -> None:
    """Add point sources to ``volume`` (in place) with trilinear weights that sum to each point's
    weight. ``positions`` (n, 3) in µm, ``spacing`` (dz, dy, dx) µm."""
    if len(positions) == 0:
        return
    v, iz = point_voxels(positions, spacing)
    keep = (iz >= -1) & (iz < volume.shape[0])
    v, w, iz = v[keep], np.asarray(weights, np.float64)[keep], iz[keep]
    order = np.argsort(iz + 1, kind="stable")
    starts = np.searchsorted(iz[order] + 1, np.arange(volume.shape[0] + 2)).astype(np.int64)
    _splat(volume, v[:, 0].copy(), v[:, 1].copy(), v[:, 2].copy(), w, order, starts)


# --- ellipsoids: anti-aliased coverage, normalised to the exact integral ---------------------
@numba.njit(parallel=True, cache=True)
def _ellipsoid_fill(volume, lo, hi, spacing, centres, inv_rot, axes, inner, aa,
                    scale):  # pragma: no cover - numba
    nz, ny, nx = volume.shape
    for p in numba.prange(nz):
        z = (p + 0.5) * spacing[0]
        for g in range(centres.shape[0]):
            if p < lo[g, 0] or p >= hi[g, 0] or scale[g] == 0.0:
                continue
            for j in range(max(lo[g, 1], 0), min(hi[g, 1], ny)):
                for k in range(max(lo[g, 2], 0), min(hi[g, 2], nx)):
                    c = _coverage(z, (j + 0.5) * spacing[1], (k + 0.5) * spacing[2], g, centres,
                                  inv_rot, axes, inner, aa)
                    if c > 0.0:
                        volume[p, j, k] += scale[g] * c


def render_ellipsoids(volume: np.ndarray, ell: Ellipsoids, spacing: Sequence[float]) -> None:
    """Add anti-aliased ellipsoids to ``volume`` (in place), each integrating to its brightness
    (the part outside the grid is lost, not squeezed in). Granules too small to cover any voxel
    centre are deposited as points."""
    if len(ell.centres) == 0:
        return
    spacing = np.asarray(spacing, np.float64)
    lo, hi, inv_rot, aa, scale, tiny = ellipsoid_layout(ell, spacing)
    _ellipsoid_fill(volume, lo, hi, spacing, ell.centres, inv_rot, ell.axes, ell.inner, aa, scale)
    if tiny.any():
        splat_points(volume, ell.centres[tiny], ell.brightness[tiny], spacing)


def render(sample: Sample, shape: Sequence[int], spacing: Sequence[float],
           out: np.ndarray | None = None) -> np.ndarray:
    """The truth volume (float32, ``shape`` = (nz, ny, nx) voxels of ``spacing`` µm) of a sample,
    or added into ``out`` (a float32 C-contiguous array of ``shape``, e.g. one entry of a batch).

    Filaments are sampled every half voxel and deposited trilinearly, so their profile is a
    one-voxel anti-aliasing kernel (a microtubule, 25 nm wide, is far below the truth voxel).
    """
    volume = np.zeros(tuple(shape), np.float32) if out is None else out
    splat_points(volume, *render_points(sample, spacing), spacing)
    render_ellipsoids(volume, sample.granules, spacing)
    return volume


def render_batch(samples: Sequence[Sample], shape: Sequence[int], spacing: Sequence[float], xp=np):
    """The truth volumes of several samples, (len(samples), *shape) float32, on the device of the
    array module ``xp`` (numpy: the CPU kernels; cupy: the CUDA kernels of
    :mod:`simulate.render_cuda`, the whole batch in one launch per kernel, where a sample may also be
    given already prepared, :func:`simulate.render_cuda.prepare`)."""
    out = xp.zeros((len(samples), *shape), xp.float32)
    if xp is np:
        for b, s in enumerate(samples):
            render(s, shape, spacing, out=out[b])
        return out
    from .render_cuda import Prepared, prepare, render_prepared_batch

    return render_prepared_batch([s if isinstance(s, Prepared) else prepare(s, shape, spacing)
                                  for s in samples], out)
