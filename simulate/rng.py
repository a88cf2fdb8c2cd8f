"""Counter-based random numbers for the camera: Philox4x32-10 and samplers, in numba.

Why not ``numpy.random.Generator`` directly: its samplers are single-threaded (Poisson costs
~75 ns per pixel), and their streams depend on how an array is split among threads. Philox
(Salmon et al., SC'11 — the generator of cuRAND, JAX and numpy's ``Philox``) maps a counter and a
key to random bits with no state, so every pixel draws from its own stream, keyed by the frame's
key and counted by (pixel index, draw number): the result is bit-identical for any number of
threads, and a CUDA kernel running the same functions gives the same numbers on a GPU.

The key of a frame comes from the caller's ``numpy.random.Generator`` (:func:`key_from`), so
randomness still flows from one explicit generator. The implementation is checked against the
Random123 known-answer vectors in the tests.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53
_INV = 1.0 / np.maximum(np.arange(128, dtype=np.float64), 1.0)  # 1/k for the Poisson inversion


@numba.njit(inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):  # pragma: no cover - numba
    """Philox4x32-10 of the counter (c0..c3) under key (k0, k1); all uint64 holding 32-bit words."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0, lo0 = p0 >> _S32, p0 & _MASK
        hi1, lo1 = p1 >> _S32, p1 & _MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(inline="always")
def uniform2(pixel, draw, k0, k1):  # pragma: no cover - numba
    """Two uniforms in (0, 1) with 53 random bits each: block ``draw`` of stream ``pixel``."""
    c = np.uint64(pixel)
    r0, r1, r2, r3 = philox4x32(c & _MASK, c >> _S32, np.uint64(draw), np.uint64(0), k0, k1)
    u0 = (float((r0 << _S32 | r1) >> np.uint64(11)) + 0.5) * _TWO_M53
    u1 = (float((r2 << _S32 | r3) >> np.uint64(11)) + 0.5) * _TWO_M53
    return u0, u1


# Wichura's AS241 (PPND16): the inverse normal CDF to ~1e-16, with no trigonometry, so one
# uniform gives one normal (3x faster than Box-Muller here).
_A = (3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
      45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727)
_B = (1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
      21213.794301586595867, 39307.89580009271061, 28729.085735721942674, 5226.495278852854561)
_C = (1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055,
      3.64784832476320460504, 1.27045825245236838258, 0.24178072517745061177,
      0.0227238449892691845833, 7.7454501427834140764e-4)
_D = (1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455,
      0.14810397642748007459, 0.0151986665636164571966, 5.475938084995344946e-4,
      1.05075007164441684324e-9)
_E = (6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358,
      0.29656057182850489123, 0.026532189526576123093, 0.0012426609473880784386,
      2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
      7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7,
      2.04426310338993978564e-15)


@numba.njit(inline="always")
def _poly(c, x):  # pragma: no cover - numba
    return ((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]


@numba.njit(inline="always")
def ndtri(p):  # pragma: no cover - numba
    """Inverse of the standard normal CDF for p in (0, 1)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = math.sqrt(-math.log(p if q < 0.0 else 1.0 - p))
    if r <= 5.0:
        r -= 1.6
        x = _poly(_C, r) / _poly(_D, r)
    else:
        r -= 5.0
        x = _poly(_E, r) / _poly(_F, r)
    return -x if q < 0.0 else x


@numba.njit(inline="always")
def normal(pixel, draw, k0, k1):  # pragma: no cover - numba
    """A standard normal from one block; returns (value, next draw)."""
    u, _ = uniform2(pixel, draw, k0, k1)
    return ndtri(u), draw + 1


_LOGGAM = (8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04,
           -5.952380952380952e-04, 8.417508417508418e-04, -1.917526917526918e-03,
           6.410256410256410e-03, -2.955065359477124e-02, 1.796443723688307e-01,
           -1.39243221690590e00)


@numba.njit(inline="always")
def log_factorial(k):  # pragma: no cover - numba
    """log(k!) for k >= 0 (Stirling series, shifted up for small k; libm's lgamma is slower)."""
    x0 = k + 1.0
    if x0 <= 2.0:
        return 0.0
    n = 0
    if x0 <= 7.0:
        n = int(7.0 - x0)
        x0 += n
    x2 = 1.0 / (x0 * x0)
    gl0 = _LOGGAM[9]
    for j in range(8, -1, -1):
        gl0 = gl0 * x2 + _LOGGAM[j]
    gl = gl0 / x0 + 0.9189385332046727 + (x0 - 0.5) * math.log(x0) - x0
    for _ in range(n):
        x0 -= 1.0
        gl -= math.log(x0)
    return gl


@numba.njit(inline="always")
def _poisson_inversion(lam, pixel, draw, k0, k1):  # pragma: no cover - numba
    u, _ = uniform2(pixel, draw, k0, k1)
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and k < _INV.size - 1:
        k += 1
        p *= lam * _INV[k]  # a table of 1/k: division would dominate the loop
        cdf += p
    return float(k), draw + 1


@numba.njit
def _poisson_ptrs(lam, pixel, draw, k0, k1):  # pragma: no cover - numba
    slam = math.sqrt(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        uu, v = uniform2(pixel, draw, k0, k1)
        draw += 1
        u = uu - 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k, draw
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        invalpha = 1.1239 + 1.1328 / (b - 3.4)
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * math.log(lam) - log_factorial(k)):
            return k, draw


@numba.njit(inline="always")
def poisson(lam, pixel, draw, k0, k1):  # pragma: no cover - numba
    """A Poisson variate of mean ``lam``; returns (count, next draw).

    Inversion for lam < 10 (one block); above, Hörmann's transformed rejection PTRS (1993), the
    method numpy uses for the same range.
    """
    if lam <= 0.0:
        return 0.0, draw
    if lam < 10.0:
        return _poisson_inversion(lam, pixel, draw, k0, k1)
    return _poisson_ptrs(lam, pixel, draw, k0, k1)


@numba.njit
def gamma(shape, pixel, draw, k0, k1):  # pragma: no cover - numba
    """A Gamma(shape, 1) variate for shape >= 1 (Marsaglia & Tsang, 2000); (value, next draw)."""
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x, draw = normal(pixel, draw, k0, k1)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, _ = uniform2(pixel, draw, k0, k1)
        draw += 1
        if u < 1.0 - 0.0331 * x**4 or math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v, draw


def key_from(rng: np.random.Generator) -> tuple[np.uint64, np.uint64]:
    """A Philox key drawn from a numpy Generator (consumes one draw of two 32-bit words)."""
    k = rng.integers(0, 2**32, size=2, dtype=np.uint64)
    return np.uint64(k[0]), np.uint64(k[1])


@numba.njit(parallel=True, cache=True)
def _fill(kind, param, k0, k1, out):  # pragma: no cover - numba
    flat = out.ravel()
    for i in numba.prange(flat.size):
        if kind == 0:
            flat[i], _ = uniform2(i, 0, k0, k1)
        elif kind == 1:
            flat[i], _ = normal(i, 0, k0, k1)
        elif kind == 2:
            flat[i], _ = poisson(param, i, 0, k0, k1)
        else:
            flat[i], _ = gamma(param, i, 0, k0, k1)


def sample(kind: str, n: int, rng: np.random.Generator, param: float = 0.0) -> np.ndarray:
    """``n`` variates of one kind ('uniform', 'normal', 'poisson' with mean ``param``, 'gamma' with
    shape ``param``), one per stream: for tests and diagnostics."""
    out = np.empty(n)
    k0, k1 = key_from(rng)
    _fill(("uniform", "normal", "poisson", "gamma").index(kind), float(param), k0, k1, out)
    return out
