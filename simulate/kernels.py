"""What the CPU kernels and their CUDA twins share: the per-pixel exposure of the camera
(:func:`pixel_adu`) and the ellipsoid coverage (:func:`coverage`), plain numba functions that
numba compiles for either target, and the host-side layouts both renderers start from (points
along filaments, each granule's box and normalisation). :mod:`simulate.render` and
:mod:`simulate.camera` (CPU) and :mod:`simulate.render_cuda` and :mod:`simulate.camera_cuda`
(GPU) import from here and never from each other, except for the CPU modules' dispatch to
their twin when handed a GPU array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numba
import numpy as np

from .phantoms import Ellipsoids, Filaments, Sample
from .rng import gamma, normal, poisson


# --- camera ----------------------------------------------------------------------------------
@numba.njit(inline="always")
def pixel_adu(photons, stream, qe, dark, hot, em_gain, em_spread, read_noise, gain, offset, counting,
              top, quantise, k0, k1):  # pragma: no cover - numba
    """One pixel's exposure from its own random ``stream`` under key (k0, k1) (CPU and CUDA):
    integer ADU clipped to [0, top], or the analogue value (``quantise`` False: the camera
    correlates its noise before the converter)."""
    e, draw = poisson(qe * photons + dark + hot, stream, 0, k0, k1)
    if em_gain > 0.0 and e > 0.0:
        # Gamma(n/c², c²·G): n electrons' multiplied output, each with relative variance c²
        # (c² = 1: an EM register's exponential, F² = 2); the shape n/c² ≥ 1 as c² ≤ 1
        g, draw = gamma(e / em_spread, stream, draw, k0, k1)
        e = g * em_spread * em_gain
    if counting:
        adu = e
    else:
        r, draw = normal(stream, draw, k0, k1)
        adu = gain * (e + read_noise * r) + offset
    if not quantise:
        return adu
    adu = math.floor(adu + 0.5)
    # clipped with if/else: numba's built-in CUDA target cannot type min/max of two scalars
    if adu < 0.0:
        return 0.0
    return top if adu > top else adu


# --- rendering -------------------------------------------------------------------------------
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


def render_points(sample: Sample, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The point sources of a sample: filaments sampled every half voxel, then the beads;
    positions (n, 3) µm and weights (n,)."""
    pos, w = filament_points(sample.filaments, 0.5 * float(min(spacing)))
    return (np.concatenate([pos, sample.beads.positions]),
            np.concatenate([w, sample.beads.brightness]))
