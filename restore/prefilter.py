"""Deconvolution prefilter: the input stack Wiener-filtered with the microscope's PSF.

A widefield stack's out-of-focus light comes from planes microns away, spread over tens of
pixels. A U-Net whose patches and receptive field span less than that undoes it only on
average and leaves low-frequency undulations of a few per cent of the range where the sample is
empty, which SSIM's luminance term punishes (a window whose mean is 1 % of the range off a zero
background halves its score). A linear inverse with the known PSF gives the light back to its
source over the whole stack for the cost of two FFTs, as far as the optics allow: the widefield
OTF is zero at zero lateral frequency for every axial frequency but 0 (the missing cone), so each
plane keeps its total and a smooth per-plane haze stays for the network, with the noise the
inverse amplifies. With ``target.wiener`` set, :func:`restore.data.model_stacks` filters every
training input and :func:`restore.predict.predict_task` every image it is given, the same way.

The filter is ``conj(H) / (|H|² + λ)`` with the optical transfer function ``H`` of
:func:`restore.baselines.detector_psf` normalised to 1 at zero frequency; the stack is
continued by its mirror image on every axis (to at least twice its size), so the periodic FFT
sees no jump at the borders, and a constant stays constant.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from simulate.backend import array_module, fft
from simulate.config import SimConfig
from simulate.convolve import otf

from .baselines import detector_psf

_CACHE: dict[tuple, tuple] = {}


def _filter(cfg: SimConfig, shape: tuple[int, ...], xp) -> tuple[tuple[int, ...], object]:
    """(FFT shape, Wiener filter in rfftn layout) for images of ``shape``: on each axis at least
    twice the image (its mirror image continues it without a jump at either end)."""
    key = (cfg.optics.model_dump_json(), cfg.sampling.model_dump_json(), shape,
           cfg.target.wiener, xp.__name__)
    if key not in _CACHE:
        kernel = detector_psf(cfg, shape).astype(np.float64)
        kernel /= kernel.sum()
        fast = tuple(scipy.fft.next_fast_len(max(2 * n, m), real=True)
                     for n, m in zip(shape, kernel.shape, strict=True))
        centred = np.zeros(fast)  # the kernel's centre at fast // 2, as convolve.otf wants it
        centred[tuple(slice(f // 2 - m // 2, f // 2 - m // 2 + m)
                      for f, m in zip(fast, kernel.shape, strict=True))] = kernel
        h = otf(centred)
        inverse = np.conj(h) / (np.abs(h) ** 2 + np.float32(cfg.target.wiener))
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = (fast, xp.asarray(inverse))
    return _CACHE[key]


def wiener(cfg: SimConfig, images):
    """Images (..., [z,] y, x) — one image or a stack of them, numpy or cupy, in ADU — filtered
    with the Wiener inverse of the microscope's PSF (``cfg.target.wiener`` = λ), float32, same
    shape and array type. A constant image stays constant (scaled by 1 / (1 + λ))."""
    xp = array_module(images)
    nd = cfg.ndim
    shape = tuple(images.shape[-nd:])
    fast, filt = _filter(cfg, shape, xp)
    pad = [(0, 0)] * (images.ndim - nd) + [(0, f - n) for f, n in zip(fast, shape, strict=True)]
    padded = xp.pad(xp.asarray(images, xp.float32), pad, mode="symmetric")
    ops = fft(xp)
    axes = tuple(range(images.ndim - nd, images.ndim))
    out = ops.irfftn(ops.rfftn(padded, axes=axes) * filt, fast, axes=axes)
    return out[(Ellipsis, *(slice(0, n) for n in shape))].astype(xp.float32)
