"""numpy dressed as cupy: runs the ``device: cuda`` code path on a CPU, under numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``), with every branch that a real GPU would take.

:func:`install` puts modules named ``cupy``, ``cupyx``, ``cupyx.scipy``, ``cupyx.scipy.fft`` and
``cupyx.scipy.ndimage`` in ``sys.modules``. Their arrays are a numpy subclass whose type lives in
module ``cupy``, so :func:`simulate.backend.array_module` takes them for device arrays; the numba
simulator runs the CUDA kernels on them. They are as strict as cupy where the code is likely to
go wrong, the boundary between host and device:

- a cupy function (other than ``asarray``/``array``/``asanyarray``), an operator, a ufunc or a
  numpy function given both device arrays and a host numpy array raises ``TypeError``, as cupy
  does; a numpy function given only device arrays dispatches to "cupy" (``__array_function__``),
  as cupy does too;
- reductions give 0-d device arrays, not numpy scalars;
- ``.get()`` and ``cupy.asnumpy`` copy to the host.

What it cannot check is cupy's own signatures and dtype rules: those were read against cupy's
documentation and source instead.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import scipy.fft
import scipy.ndimage

HOST_OK = {"asarray", "array", "asanyarray", "asnumpy"}


class ndarray(np.ndarray):
    """A "device" array: numpy memory, cupy's type name and cupy's strictness."""

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _reject_host(inputs + (out or ()), f"cupy.{ufunc.__name__}")
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(a) for a in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        _reject_host((args, kwargs), f"cupy.{func.__name__}")
        return _wrap(func(*_plain(args), **_plain(kwargs)))


ndarray.__module__ = "cupy"


def _walk(tree):
    if isinstance(tree, (list, tuple)):
        for t in tree:
            yield from _walk(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from _walk(t)
    else:
        yield tree


def _reject_host(tree, where: str) -> None:
    for a in _walk(tree):
        if type(a) is np.ndarray and a.ndim > 0:
            raise TypeError(f"{where}: unsupported type {type(a)} (a host numpy array given to "
                            "cupy)")


def _plain(tree):
    if isinstance(tree, ndarray):
        return tree.view(np.ndarray)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_plain(t) for t in tree)
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _wrap(result):
    if type(result) is np.ndarray:
        return result.view(ndarray)
    if isinstance(result, np.generic):
        return np.asarray(result).view(ndarray)
    if isinstance(result, (list, tuple)):
        return type(result)(_wrap(r) for r in result)
    return result


def _device_function(name: str, f):
    def call(*args, **kwargs):
        if name not in HOST_OK:
            _reject_host((args, kwargs), f"cupy.{name}")
        return _wrap(f(*_plain(args), **_plain(kwargs)))

    call.__name__ = name
    return call


def _module(name: str, source, extra: dict | None = None) -> types.ModuleType:
    mod = types.ModuleType(name)

    def getattr_(attr: str):
        value = getattr(source, attr)
        return _device_function(attr, value) if callable(value) and not isinstance(value, type) \
            else value

    mod.__getattr__ = getattr_
    for k, v in (extra or {}).items():
        setattr(mod, k, v)
    return mod


class _Stream:
    def synchronize(self) -> None:
        pass


def install() -> types.ModuleType:
    """Register the stand-ins in ``sys.modules``; returns the ``cupy`` stand-in."""
    cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                 get_current_stream=lambda: _Stream())
    cp = _module("cupy", np, {"ndarray": ndarray, "cuda": cuda,
                              "asnumpy": lambda a: np.array(_plain(a))})
    fft = _module("cupyx.scipy.fft", scipy.fft)
    ndi = _module("cupyx.scipy.ndimage", scipy.ndimage)
    sp = types.ModuleType("cupyx.scipy")
    sp.fft, sp.ndimage = fft, ndi
    x = types.ModuleType("cupyx")
    x.scipy = sp
    sys.modules.update({"cupy": cp, "cupyx": x, "cupyx.scipy": sp, "cupyx.scipy.fft": fft,
                        "cupyx.scipy.ndimage": ndi})
    return cp
