"""The camera on a GPU: the per-pixel exposure of :mod:`simulate.camera` as a numba CUDA kernel.

One thread per pixel runs the very same function as the CPU kernel
(:func:`simulate.kernels.pixel_adu`, a numba ``@jit`` function, which numba compiles as a CUDA
device function), with the same counter-based Philox streams, so a frame captured on the GPU
is the CPU's frame for the same photons and key. Under numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, how the tests check it on the CPU) the two are bit-identical; on a
GPU the compiler fuses multiply-adds and the device has its own ``log``/``exp``, so a last-bit
difference can flip a rare draw (``benchmarks/gpu_check.py`` measures the identical fraction).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .backend import kernel_array
from .kernels import pixel_adu

_THREADS = 256


@cuda.jit
def _capture_kernel(photons, hot, read_noise, gain, offset, qe, dark, em_gain, em_spread, counting,
                    top, quantise, keys, out):  # pragma: no cover - CUDA
    i = cuda.grid(1)
    nb, nf, ny, nx = photons.shape
    if i >= nb * nf * ny * nx:
        return
    x = i % nx
    r = i // nx
    local = r % (nf * ny)  # row within its pair: f·ny + y, as on the CPU
    b = r // (nf * ny)
    y = local % ny
    f = local // ny
    out[b, f, y, x] = pixel_adu(photons[b, f, y, x], local * nx + x, qe, dark, hot[y, x], em_gain,
                                em_spread, read_noise[y, x], gain[y, x], offset[y, x], counting, top,
                                quantise, keys[b, 0], keys[b, 1])


def capture_cuda(frames, hot: np.ndarray, read_noise: np.ndarray, gain: np.ndarray,
                 offset: np.ndarray, qe: float, dark: float, em_gain: float, em_spread: float,
                 counting: bool, top: float, quantise: bool, keys: np.ndarray, out) -> None:
    """Fill ``out`` (device array (nb, nf, ny, nx) float32) with the exposure of ``frames``
    (same shape, photons); maps are (ny, nx) float64 host arrays, ``keys`` (nb, 2) uint64.
    Arguments as :func:`simulate.camera._capture`. Device arrays are cupy or numba arrays."""
    maps = [cuda.to_device(np.ascontiguousarray(m)) for m in (hot, read_noise, gain, offset)]
    n = int(np.prod(frames.shape))
    _capture_kernel[math.ceil(n / _THREADS), _THREADS](kernel_array(frames), *maps, qe, dark,
                                                        em_gain, em_spread, counting, top,
                                                        quantise, cuda.to_device(keys),
                                                        kernel_array(out))
