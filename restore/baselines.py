"""Classical baselines a user would try instead of a network, each with its knob tuned.

* denoising: a Gaussian filter (σ tuned);
* axial upsampling and isotropic reconstruction: linear and cubic interpolation along z;
* deconvolution: Richardson–Lucy with the true PSF (iterations tuned).

Tuning maximises the mean PSNR against the noise-free reference on validation images (the
best these methods can do, an upper bound on what a user would get).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter

from simulate import Camera, SimConfig, interpolate_axis, psf

from .metrics import scores

SIGMAS = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
RL_ITERATIONS = (1, 2, 4, 8, 16, 32, 64)


def tune(candidates: Sequence, apply: Callable, cases: list[tuple[np.ndarray, np.ndarray]]):
    """The candidate whose ``apply(x, c)`` has the best mean PSNR against the references."""
    return max(candidates, key=lambda c: np.mean([scores(apply(x, c), ref)["psnr"] for x, ref in cases]))


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of ``sigma`` pixels in every axis."""
    return gaussian_filter(np.asarray(x, np.float32), sigma)


def interpolate_z(stack: np.ndarray, factor: int, order: int) -> np.ndarray:
    """Linear (order 1) or cubic (order 3) spline interpolation along z by ``factor``."""
    return interpolate_axis(stack, factor, axis=0, order=order)


def detector_psf(cfg: SimConfig, shape: tuple[int, ...]) -> np.ndarray:
    """The microscope's PSF sampled on the detector grid, spanning an image of ``shape``
    (every z distance between two planes of the stack; 2D: the in-focus plane)."""
    lateral = 2 * (int(4 * cfg.optics.wavelength / cfg.optics.na / cfg.sampling.pixel) + 4) + 1
    if len(shape) == 2:
        return psf.from_config(cfg.optics, (lateral, lateral), (cfg.sampling.pixel,) * 2,
                               thin_sample=True)
    z_step = cfg.sampling.pixel * cfg.sampling.z_factor
    return psf.from_config(cfg.optics, (2 * shape[0] - 1, lateral, lateral),
                           (z_step, cfg.sampling.pixel, cfg.sampling.pixel))


def _fft_convolve(x: np.ndarray, otf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return scipy.fft.irfftn(scipy.fft.rfftn(x, shape) * otf, shape)


def richardson_lucy(image: np.ndarray, kernel: np.ndarray, iterations: Sequence[int],
                    camera: Camera) -> dict[int, np.ndarray]:
    """Richardson–Lucy deconvolution of a camera image (ADU) with ``kernel``, in photons.

    The forward model is the linear convolution cropped to the image (A x = crop(k ⊛ x)); the
    update is x ← x · Aᵀ(y / A x) / Aᵀ1, so borders are handled without wrap-around and
    positivity is kept. Returns the estimate after each count in ``iterations`` (one run).
    """
    y = np.clip(camera.photons_from_expected(image).astype(np.float64), 0, None)
    fast = tuple(scipy.fft.next_fast_len(n + m - 1, real=True)
                 for n, m in zip(y.shape, kernel.shape, strict=True))
    otf = scipy.fft.rfftn(kernel / kernel.sum(), fast)
    crop = tuple(slice(m // 2, m // 2 + n) for n, m in zip(y.shape, kernel.shape, strict=True))
    corner = tuple(slice(0, n) for n in y.shape)

    def forward(x: np.ndarray) -> np.ndarray:
        return _fft_convolve(x, otf, fast)[crop]

    def adjoint(r: np.ndarray) -> np.ndarray:
        padded = np.zeros(fast)
        padded[crop] = r
        return _fft_convolve(padded, np.conj(otf), fast)[corner]

    norm = np.maximum(adjoint(np.ones_like(y)), 1e-12)
    x = np.full_like(y, max(float(y.mean()), 1e-6))
    out, done = {}, 0
    for n in sorted(iterations):
        for _ in range(n - done):
            x = x * adjoint(y / np.maximum(forward(x), 1e-12)) / norm
        done = n
        out[n] = x.astype(np.float32)
    return out
