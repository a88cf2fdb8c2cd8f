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
from typing import NamedTuple

import numba
import numpy as np

from .phantoms import Ellipsoids, Filaments, Sample


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


def filament_points(filaments: Filaments, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points at most ``step`` µm apart along every segment (midpoint rule), weighted so each
    segment deposits ``brightness × length`` exactly. Returns positions (n, 3) and weights (n,)."""
    v = filaments.vertices
    if len(v) < 2:
        return np.zeros((0, 3)), np.zeros(0)
    fil = np.repeat(np.arange(len(filaments.brightness)), np.diff(filaments.starts))
    seg_ok = fil[:-1] == fil[1:]  # no segment between the end of one filament and the next
    a, b = v[:-1][seg_ok], v[1:][seg_ok]
    bright = filaments.brightness[fil[:-1][seg_ok]]
    length = np.linalg.norm(b - a, axis=1)
    n = np.maximum(np.ceil(length / step).astype(np.int64), 1)
    seg = np.repeat(np.arange(len(n)), n)
    first = np.repeat(np.cumsum(n) - n, n)
    t = ((np.arange(n.sum()) - first) + 0.5) / n[seg]
    pos = a[seg] + t[:, None] * (b - a)[seg]
    return pos, (bright * length / n)[seg]


# --- ellipsoids: anti-aliased coverage, normalised to the exact integral ---------------------
def coverage(z, y, x, g, centres, inv_rot, axes, inner, aa):  # pragma: no cover - compiled
    """Fraction of the voxel at (z, y, x) µm inside granule g (anti-aliased over width aa µm)."""
    dz = z - centres[g, 0]
    dy = y - centres[g, 1]
    dx = x - centres[g, 2]
    r = inv_rot[g]
    u = (r[0, 0] * dz + r[0, 1] * dy + r[0, 2] * dx) / axes[g, 0]
    v = (r[1, 0] * dz + r[1, 1] * dy + r[1, 2] * dx) / axes[g, 1]
    w = (r[2, 0] * dz + r[2, 1] * dy + r[2, 2] * dx) / axes[g, 2]
    f = math.sqrt(u * u + v * v + w * w)
    r_eff = (axes[g, 0] * axes[g, 1] * axes[g, 2]) ** (1.0 / 3.0)
    # clipped to [0, 1] with if/else: numba's built-in CUDA target cannot type scalar min/max
    cov = 0.5 - (f - 1.0) * r_eff / aa
    cov = 0.0 if cov < 0.0 else (1.0 if cov > 1.0 else cov)
    if inner[g] > 0.0:
        hole = 0.5 - (f - inner[g]) * r_eff / aa
        cov -= 0.0 if hole < 0.0 else (1.0 if hole > 1.0 else hole)
    return cov


_coverage = numba.njit(cache=True)(coverage)  # the CUDA kernels compile the same function


def point_voxels(positions: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Continuous voxel coordinates (n, 3) of points in µm and their lower z voxel (n,)."""
    v = positions / np.asarray(spacing) - 0.5
    return v, np.floor(v[:, 0]).astype(np.int64)


@numba.njit(parallel=True, cache=True)
def _ellipsoid_sums(lo, hi, spacing, centres, inv_rot, axes, inner, aa, sums):  # pragma: no cover
    for g in numba.prange(centres.shape[0]):
        s = 0.0
        for i in range(lo[g, 0], hi[g, 0]):
            for j in range(lo[g, 1], hi[g, 1]):
                for k in range(lo[g, 2], hi[g, 2]):
                    s += _coverage((i + 0.5) * spacing[0], (j + 0.5) * spacing[1],
                                   (k + 0.5) * spacing[2], g, centres, inv_rot, axes, inner, aa)
        sums[g] = s


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


class EllipsoidLayout(NamedTuple):
    """Where granules go and how bright: voxel bounds [lo, hi) of each granule's box (n, 3)
    (reach: its longest semi-axis plus the anti-aliasing width), inverse rotations (n, 3, 3),
    the anti-aliasing width ``aa`` (µm), ``scale`` (n,) = brightness over the granule's summed
    coverage (so it integrates to its brightness exactly; 0 where it covers no voxel centre) and
    ``tiny`` (n,), the granules too small to cover a voxel centre (rendered as points)."""

    lo: np.ndarray
    hi: np.ndarray
    inv_rot: np.ndarray
    aa: float
    scale: np.ndarray
    tiny: np.ndarray


LARGE_VOXELS = 8  # semi-axes of at least this many voxels: normalised by the analytic volume


def ellipsoid_layout(ell: Ellipsoids, spacing: np.ndarray) -> EllipsoidLayout:
    """The :class:`EllipsoidLayout` of granules on a grid of ``spacing`` (dz, dy, dx) µm (the CPU
    kernel computes the normalisation for the CPU and the CUDA renderer alike)."""
    spacing = np.asarray(spacing, np.float64)
    aa = float(np.prod(spacing) ** (1 / 3))
    reach = ell.axes.max(axis=1)[:, None] + aa
    lo = np.floor((ell.centres - reach) / spacing).astype(np.int64)
    hi = np.ceil((ell.centres + reach) / spacing).astype(np.int64) + 1
    inv_rot = np.ascontiguousarray(np.transpose(ell.rotations, (0, 2, 1)))
    sums = np.zeros(len(ell.centres))
    # large ellipsoids (nuclei, cells): the anti-aliased coverage sums to the analytic volume in
    # voxels to well below 1 % (tested), and summing it would visit their whole box
    large = ell.axes.min(axis=1) >= LARGE_VOXELS * float(spacing.max())
    small_hi = np.where(large[:, None], lo, hi)
    _ellipsoid_sums(lo, small_hi, spacing, ell.centres, inv_rot, ell.axes, ell.inner, aa, sums)
    sums[large] = (4 / 3 * np.pi * np.prod(ell.axes[large], axis=1) * (1 - ell.inner[large] ** 3)
                   / float(np.prod(spacing)))
    scale = np.where(sums > 0, ell.brightness / np.where(sums > 0, sums, 1.0), 0.0)
    return EllipsoidLayout(lo, hi, inv_rot, aa, scale, sums <= 0)


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


def render_points(sample: Sample, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The point sources of a sample: filaments sampled every half voxel, then the beads;
    positions (n, 3) µm and weights (n,)."""
    pos, w = filament_points(sample.filaments, 0.5 * float(min(spacing)))
    return (np.concatenate([pos, sample.beads.positions]),
            np.concatenate([w, sample.beads.brightness]))


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
