"""Array backends: numpy on the CPU, cupy on a CUDA GPU.

The array code of the forward model is written once against an array module ``xp`` (numpy or
cupy) and the matching FFT and ndimage modules (scipy's or cupyx's). cupy is an optional extra
(``pip install 'synthcare[gpu]'``), imported only when a ``cuda`` device is asked for, so the CPU
path never needs it.
"""

from __future__ import annotations

import functools
from types import ModuleType, SimpleNamespace

import numpy as np
import scipy.fft
import scipy.ndimage

from .errors import SynthcareError

DEVICES = ("cpu", "cuda")
FFT_WORKERS = -1  # scipy.fft threads (all cores); set_threads() lowers it in DataLoader workers


@functools.cache
def cupy() -> ModuleType:
    """The cupy module, with a CUDA device behind it; one clear error otherwise."""
    try:
        import cupy as cp
    except ImportError:
        raise SynthcareError("device 'cuda' needs cupy: pip install 'synthcare[gpu]' (or the "
                             "cupy-cuda12x wheel that matches your CUDA driver)") from None
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy raises its own CUDARuntimeError without a driver
        raise SynthcareError(f"device 'cuda': cupy finds no usable CUDA device ({exc})") from None
    if n < 1:
        raise SynthcareError("device 'cuda': cupy finds no CUDA device")
    return cp


def gpu_available() -> bool:
    """True if cupy is installed and sees a real CUDA device (the numba CUDA simulator, which
    makes ``numba.cuda.is_available()`` true on any machine, does not count)."""
    try:
        cupy()
    except SynthcareError:
        return False
    return True


def xp_for(device: str) -> ModuleType:
    """The array module of a device name ('cpu' or 'cuda')."""
    if device == "cpu":
        return np
    if device == "cuda":
        return cupy()
    raise SynthcareError(f"device must be one of {list(DEVICES)}, got {device!r}")


def array_module(a) -> ModuleType:
    """numpy or cupy, whichever owns the array ``a``."""
    if type(a).__module__.split(".")[0] == "cupy":  # cupy.ndarray (or a stand-in in the tests)
        return cupy()
    return np


def is_device_array(a) -> bool:
    """True for a cupy (GPU) array."""
    return array_module(a) is not np


def kernel_array(a):
    """A device array as a numba CUDA kernel argument. cupy arrays are wrapped without numba's
    synchronisation on their stream (by default numba waits for the whole device at every launch
    that takes a cupy array); ordering still holds, as numba, cupy and torch all issue to the
    legacy default stream. Other arrays are returned as they are."""
    if array_module(a) is np or not hasattr(a, "__cuda_array_interface__"):
        return a
    from numba import cuda

    as_cuda_array = getattr(cuda, "as_cuda_array", None)
    return a if as_cuda_array is None else as_cuda_array(a, sync=False)


def to_host(a) -> np.ndarray:
    """A numpy array of ``a`` (a copy from the GPU for cupy arrays)."""
    return a.get() if is_device_array(a) else np.asarray(a)


@functools.cache
def _fft_ops(name: str) -> SimpleNamespace:
    if name == "numpy":
        mod, kw = scipy.fft, lambda: {"workers": FFT_WORKERS}
    else:
        import cupyx.scipy.fft as mod  # cupy caches FFT plans itself (cupy.fft.config)

        kw = dict

    def wrap(f):
        return lambda *a, **k: f(*a, **k, **kw())

    names = ("rfft", "fft", "ifft", "irfft2", "rfftn", "irfftn")
    return SimpleNamespace(**{f: wrap(getattr(mod, f)) for f in names})


def fft(xp: ModuleType) -> SimpleNamespace:
    """``rfft``, ``fft``, ``ifft``, ``irfft2``, ``rfftn``, ``irfftn`` for arrays of ``xp``
    (scipy.fft with all cores on the CPU, cupyx.scipy.fft on the GPU)."""
    return _fft_ops(xp.__name__)


def ndimage(xp: ModuleType) -> ModuleType:
    """scipy.ndimage or cupyx.scipy.ndimage."""
    if xp is np:
        return scipy.ndimage
    import cupyx.scipy.ndimage

    return cupyx.scipy.ndimage
