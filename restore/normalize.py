"""Robust percentile normalisation (CSBDeep's scheme), invertible.

An image ``x`` maps to ``(x − lo) / (hi − lo)`` with ``lo``, ``hi`` its 1st and 99.8th percentiles
(computed on the whole image, before cropping patches, as prediction will see it). Simulated
targets are in the input's photometric scale, so the same affine map normalises input and target
and its inverse returns predictions in the input's units. A constant image maps to zeros, never
to NaN or Inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulate import backend

PMIN, PMAX = 1.0, 99.8


@dataclass(frozen=True)
class Affine:
    """x_normalised = (x − lo) / scale."""

    lo: float
    scale: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalise (float32; numpy or cupy)."""
        xp = backend.array_module(x)
        return ((xp.asarray(x, xp.float32) - np.float32(self.lo)) / np.float32(self.scale)).astype(
            xp.float32, copy=False)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Back to the input's units (float32; numpy or cupy)."""
        xp = backend.array_module(y)
        return (xp.asarray(y, xp.float32) * np.float32(self.scale) + np.float32(self.lo)).astype(
            xp.float32, copy=False)


def percentile_affine(x: np.ndarray, pmin: float = PMIN, pmax: float = PMAX) -> Affine:
    """The affine map sending the ``pmin``/``pmax`` percentiles of ``x`` to 0 and 1."""
    if not 0 <= pmin < pmax <= 100:
        raise ValueError(f"need 0 <= pmin < pmax <= 100, got pmin={pmin}, pmax={pmax}")
    xp = backend.array_module(x)
    lo, hi = (float(v) for v in xp.percentile(xp.asarray(x, xp.float32), xp.asarray([pmin, pmax])))
    return Affine(lo, float(_scale(lo, hi)))


def _scale(lo, hi):
    """hi − lo, floored for a (near-)constant image: no division by ~0 (scalars or arrays)."""
    return np.maximum(hi - lo, 1e-6 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi))))


def jittered_percentiles(rng: np.random.Generator, pmin: float = PMIN, pmax: float = PMAX,
                         jitter: float = 0.0) -> tuple[float, float]:
    """CSBDeep-style random jitter of the normalisation percentiles (``pmin`` ± jitter, ``pmax``
    ± jitter/4, clipped to [0, 100]): two draws from ``rng`` if ``jitter`` > 0, else none."""
    if jitter <= 0:
        return pmin, pmax
    lo = float(np.clip(pmin + rng.uniform(-jitter, jitter), 0.0, 50.0))
    hi = float(np.clip(pmax + rng.uniform(-jitter / 4, jitter / 4), lo + 1.0, 100.0))
    return lo, hi


def jittered_affine(x: np.ndarray, rng: np.random.Generator, pmin: float = PMIN,
                    pmax: float = PMAX, jitter: float = 0.0) -> Affine:
    """Percentile normalisation with random jitter of the percentiles
    (:func:`jittered_percentiles`), an augmentation that makes a network robust to how a user's
    image happens to be normalised."""
    return percentile_affine(x, *jittered_percentiles(rng, pmin, pmax, jitter))


def percentile_affines(stack, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`percentile_affine` of every image of ``stack`` (N, ...) at once (numpy or cupy:
    one sort, one transfer): image ``i`` at its own percentiles ``q[i]`` = (pmin, pmax), linear
    interpolation as numpy's default. Returns the maps' ``lo`` and ``scale``, (N,) float64."""
    xp = backend.array_module(stack)
    n_img = stack.shape[0]
    flat = xp.sort(xp.asarray(stack, xp.float32).reshape(n_img, -1), axis=1)
    n = flat.shape[1]
    v = np.asarray(q, np.float64) / 100 * (n - 1)
    i0 = np.clip(np.floor(v).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    ends = backend.to_host(xp.take_along_axis(flat, xp.asarray(np.concatenate([i0, i1], 1)), 1))
    a, b = ends[:, :2].astype(np.float64), ends[:, 2:].astype(np.float64)
    t = v - i0
    val = np.where(t < 0.5, a + (b - a) * t, b - (b - a) * (1 - t))  # numpy's lerp
    return val[:, 0], _scale(val[:, 0], val[:, 1])
