"""Random ground-truth geometry: filaments, granules, beads and a smooth background.

Each function draws objects in physical coordinates (µm, axes z, y, x, origin at the corner of the
rendered box) from an explicit ``numpy.random.Generator``; rendering onto a voxel grid is
:mod:`simulate.render`'s job. Densities are per µm³ for 3D samples and per µm² of image area for
2D samples (a thin slab around the focal plane), as a microscopist would count them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class Filaments:
    """Polylines: ``vertices`` (n, 3) µm, filament ``f`` spans ``vertices[starts[f]:starts[f+1]]``;
    ``brightness`` (n_filaments,) per µm of length."""

    vertices: np.ndarray
    starts: np.ndarray
    brightness: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """Length of each filament, µm."""
        seg = np.linalg.norm(np.diff(self.vertices, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        ends = self.starts[1:] - 1
        return cum[ends] - cum[self.starts[:-1]]


@dataclass(frozen=True)
class Ellipsoids:
    """Solid or hollow ellipsoids. ``centres`` (n, 3) µm; ``axes`` (n, 3) outer semi-axes µm;
    ``inner`` (n,) inner/outer ratio (0: solid); ``rotations`` (n, 3, 3) body-to-lab;
    ``brightness`` (n,) total integral of each."""

    centres: np.ndarray
    axes: np.ndarray
    inner: np.ndarray
    rotations: np.ndarray
    brightness: np.ndarray


@dataclass(frozen=True)
class Points:
    """Point sources: ``positions`` (n, 3) µm and ``brightness`` (n,) total of each."""

    positions: np.ndarray
    brightness: np.ndarray


@dataclass(frozen=True)
class Sample:
    """All objects of one random sample."""

    filaments: Filaments
    granules: Ellipsoids
    beads: Points


def spread(rng: np.random.Generator, n: int, cv: float) -> np.ndarray:
    """``n`` positive factors with mean 1 and coefficient of variation ``cv`` (Gamma distributed)."""
    if cv <= 0:
        return np.ones(n)
    shape = 1.0 / cv**2
    return rng.gamma(shape, 1.0 / shape, size=n)


# --- filaments -------------------------------------------------------------------------------
_TILT_RELAX = 2.0  # µm


@numba.njit(cache=True)
def _grow(start, tangent, kicks, step, box, slab, z_kick, out):  # pragma: no cover - numba
    """Worm-like chain from ``start`` along ``tangent`` until it leaves ``box`` (or runs out of
    kicks). In ``slab`` mode z reflects at the slab faces instead of ending the chain. Returns the
    number of vertices written to ``out``."""
    p = start.copy()
    t = tangent.copy()
    out[0] = p
    n = 1
    for i in range(kicks.shape[0]):
        # perpendicular random kick: the tangent diffuses on the sphere (<t(s).t(0)> = exp(-s/Lp))
        k = kicks[i] - (kicks[i, 0] * t[0] + kicks[i, 1] * t[1] + kicks[i, 2] * t[2]) * t
        angle = np.sqrt(k[0] ** 2 + k[1] ** 2 + k[2] ** 2)
        if angle > 0.0:  # rotate t by `angle` towards k (exact, unlike t + k)
            t = np.cos(angle) * t + np.sin(angle) / angle * k
        if slab:  # keep the chain near the plane: the z-tilt relaxes over 2 µm (rms ~0.1 rad)
            t[0] = (t[0] - k[0] * (1.0 - z_kick)) * (1.0 - step / _TILT_RELAX)
        t = t / np.sqrt(t[0] ** 2 + t[1] ** 2 + t[2] ** 2)
        p = p + step * t
        if slab:
            if p[0] < 0.0:
                p[0] = -p[0]
                t[0] = -t[0]
            elif p[0] > box[0]:
                p[0] = 2.0 * box[0] - p[0]
                t[0] = -t[0]
        out[n] = p
        n += 1
        inside = p[1] >= 0.0 and p[1] <= box[1] and p[2] >= 0.0 and p[2] <= box[2]
        if not slab:
            inside = inside and p[0] >= 0.0 and p[0] <= box[0]
        if not inside:
            break
    return n


def microtubules(params, box: np.ndarray, rng: np.random.Generator, *, slab: bool,
                 axis: np.ndarray | None = None, alignment: float = 0.0) -> Filaments:
    """Worm-like-chain filaments that cross the box (µm, (z, y, x) extent).

    Filaments start at uniform random points with random directions (in-plane within ±0.1 rad for a
    ``slab``) and grow both ways until they leave the box, so they cross its edges. Filaments are
    added until their total length reaches ``density`` × volume (3D) or × area (slab). With a unit
    ``axis``, each start direction is pulled towards it (``alignment`` 1: along it), as for
    stress fibres; the random draws are the same either way.
    """
    box = np.asarray(box, dtype=np.float64)
    target = params.density * (box[1] * box[2] if slab else float(np.prod(box)))
    step = float(min(0.1, params.persistence / 20.0))
    max_steps = int(np.ceil(2.0 * np.linalg.norm(box) / step)) + 1
    sigma = np.sqrt(step / params.persistence)
    # slab: scale of the z-kicks so the stationary tilt (an OU process) has rms 0.1 rad
    z_kick = min(1.0, 0.1 * np.sqrt(2 * params.persistence / _TILT_RELAX))
    chains, total = [], 0.0
    while total < target and len(chains) < 100_000:
        start = rng.uniform(0.0, 1.0, 3) * box
        if slab:
            phi = rng.uniform(0, 2 * np.pi)
            tilt = 0.1 * rng.standard_normal()
            t0 = np.array([np.sin(tilt), np.cos(tilt) * np.sin(phi), np.cos(tilt) * np.cos(phi)])
        else:
            t0 = rng.standard_normal(3)
            t0 /= np.linalg.norm(t0)
        if axis is not None:
            t0 = alignment * np.sign(t0 @ axis + 1e-12) * axis + (1.0 - alignment) * t0
            t0 /= max(np.linalg.norm(t0), 1e-12)
        halves = []
        for direction in (1.0, -1.0):
            kicks = sigma * rng.standard_normal((max_steps, 3))
            buf = np.empty((max_steps + 1, 3))
            n = _grow(start, direction * t0, kicks, step, box, slab, z_kick, buf)
            halves.append(buf[:n])
        chain = np.concatenate([halves[1][::-1], halves[0][1:]])
        chains.append(chain)
        total += step * (len(chain) - 1)
    if not chains:
        return Filaments(np.zeros((0, 3)), np.zeros(1, np.int64), np.zeros(0))
    starts = np.concatenate([[0], np.cumsum([len(c) for c in chains])]).astype(np.int64)
    brightness = params.brightness * spread(rng, len(chains), params.brightness_spread)
    return Filaments(np.concatenate(chains), starts, brightness)


# --- granules and beads ----------------------------------------------------------------------
def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random rotation matrices (from unit quaternions)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def _positions(rng: np.random.Generator, n_mean: float, box: np.ndarray, cluster_size: float,
               cluster_radius: float) -> np.ndarray:
    """Uniform (Poisson) or clustered (Thomas process) positions in the box."""
    if cluster_size <= 1:
        return rng.uniform(0, 1, (rng.poisson(n_mean), 3)) * box
    parents = rng.uniform(0, 1, (rng.poisson(n_mean / cluster_size), 3)) * box
    counts = rng.poisson(cluster_size, len(parents))
    pos = np.repeat(parents, counts, axis=0)
    pos = pos + cluster_radius / np.sqrt(3) * rng.standard_normal(pos.shape)
    return pos[np.all((pos >= 0) & (pos <= box), axis=1)]


def granules(params, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Ellipsoids:
    """Random ellipsoids (spheres if ``aspect`` is 1), optionally hollow and clustered."""
    box = np.asarray(box, dtype=np.float64)
    n_mean = params.density * (box[1] * box[2] if slab else float(np.prod(box)))
    centres = _positions(rng, n_mean, box, params.cluster_size, params.cluster_radius)
    n = len(centres)
    radius = params.radius * spread(rng, n, params.radius_spread)
    q = rng.uniform(1.0, params.aspect, n)  # prolate, same volume as the sphere of `radius`
    axes = radius[:, None] * np.stack([q ** (2 / 3), q ** (-1 / 3), q ** (-1 / 3)], axis=1)
    hollow = rng.uniform(0, 1, n) < params.hollow
    inner = np.where(hollow, np.clip(1.0 - params.shell / axes.min(axis=1), 0.0, None), 0.0)
    brightness = params.brightness * spread(rng, n, params.brightness_spread)
    return Ellipsoids(centres, axes, inner, _random_rotations(rng, n), brightness)


def beads(params, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Points:
    """Uniformly scattered sub-resolution beads."""
    box = np.asarray(box, dtype=np.float64)
    n_mean = params.density * (box[1] * box[2] if slab else float(np.prod(box)))
    pos = rng.uniform(0, 1, (rng.poisson(n_mean), 3)) * box
    return Points(pos, params.brightness * spread(rng, len(pos), params.brightness_spread))


# --- background ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmoothField:
    """A stationary smooth random field, sum of random plane waves; a pure function of position,
    so every geometry of one pair (input planes, target planes) sees the same background."""

    wavevectors: np.ndarray  # (m, 3) cycles per µm
    phases: np.ndarray  # (m,)

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float, n_modes: int = 24) -> SmoothField:
        """Modes with wavelengths around ``scale`` µm."""
        return cls(rng.standard_normal((n_modes, 3)) / (2 * np.pi * scale),
                   rng.uniform(0, 2 * np.pi, n_modes))

    def __call__(self, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Positive field with mean ≈ 1 on the grid of coordinate vectors z, y, x (µm)."""
        kz, ky, kx = (2 * np.pi * self.wavevectors).T
        # Σ cos(k·r + φ) = Re Σ_m e^{i(kz z + φ)} e^{i ky y} e^{i kx x}: per plane one (ny × m)
        # by (m × nx) product instead of 2m trigonometric evaluations of the whole plane
        # (40× faster at 256², where it took a quarter of a 2D pair's simulation)
        pz = np.exp(1j * (np.outer(z, kz) + self.phases))
        py, px = np.exp(1j * np.outer(y, ky)), np.exp(1j * np.outer(x, kx)).T
        f = np.stack([np.real((py * pz[k]) @ px) for k in range(len(z))])
        f *= np.sqrt(2.0 / len(self.phases))  # unit variance
        return np.exp(0.5 * f - 0.125)  # log-normal, mean 1
