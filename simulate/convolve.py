"""FFT convolution of the truth volume with the PSF, straight onto the detector planes.

The truth is rendered with a lateral margin (cropped afterwards, so nothing wraps into the field
and borders are not dark) and transformed with real FFTs. Along z the transform is zero-padded to
at least twice the sample depth, so the convolution is linear over the whole depth: the PSF spans
every distance between a source plane and a focal plane, and out-of-focus haze from the whole
sample reaches every detector plane.

Only the output planes and pixels are needed, so the product spectrum is folded onto the detector
grid (:func:`simulate.sampling.fold`) before a small inverse transform: a pair costs about one
forward FFT of the truth. OTFs (PSF spectrum × pixel integration) are cached per (PSF, grid).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import scipy.fft

from . import psf as psf_models
from .sampling import Grid, fold, pixel_transfer

WORKERS = -1  # scipy.fft threads: all cores


def truth_spectrum(truth: np.ndarray, z_fft: int) -> np.ndarray:
    """Half spectrum (z_fft, Ny, Nx//2 + 1), complex64, of a (nz, Ny, Nx) truth volume
    zero-padded along z to ``z_fft`` planes."""
    lateral = scipy.fft.rfft2(truth, workers=WORKERS)
    return scipy.fft.fft(lateral, n=z_fft, axis=0, workers=WORKERS, overwrite_x=True)


def otf(psf: np.ndarray) -> np.ndarray:
    """Half spectrum (complex64) of a centred PSF (centre at index n // 2 of every axis)."""
    return scipy.fft.rfftn(np.fft.ifftshift(psf), workers=WORKERS).astype(np.complex64)


def _psf_for(key: tuple, shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    if key[0] == "narrow":
        return psf_models.narrow_gaussian(shape, spacing, fwhm_xy=key[1], fwhm_z=key[2])
    return psf_models.from_config(key[1], shape, spacing)


@functools.lru_cache(maxsize=4)
def _detector_otf(key: tuple, grid: Grid) -> np.ndarray:
    shape = (grid.z_fft, *grid.truth_shape[1:])
    h = otf(_psf_for(key, shape, grid.truth_spacing))
    s = grid.oversample
    h *= pixel_transfer(shape[1], s, real=False).astype(np.complex64)[None, :, None]
    h *= pixel_transfer(shape[2], s, real=True).astype(np.complex64)[None, None, :]
    return h


def detector_otf(optics, grid: Grid) -> np.ndarray:
    """Cached OTF of ``optics`` on ``grid``'s FFT grid, including detector-pixel integration."""
    key: tuple = ("optics", optics)
    if optics.psf == "measured":  # a changed file must not hit a stale cache entry
        p = Path(optics.psf_file)
        key += (p.stat().st_mtime_ns if p.exists() else None,)
    return _detector_otf(key, grid)


def gaussian_target_otf(fwhm_xy: float, fwhm_z: float, grid: Grid) -> np.ndarray:
    """Cached OTF of the narrow Gaussian of deconvolution targets (see
    :func:`simulate.psf.narrow_gaussian`)."""
    return _detector_otf(("narrow", float(fwhm_xy), float(fwhm_z)), grid)


def detector_planes(spectrum: np.ndarray, h: np.ndarray, grid: Grid,
                    planes: tuple[int, ...], *, crop: bool = True) -> np.ndarray:
    """Blur, integrate pixels and sample focal planes: (len(planes), ny, nx) float32 photons
    (relative units), cropped to the detector field.

    ``spectrum`` from :func:`truth_spectrum`, ``h`` from :func:`detector_otf`; ``planes`` are truth
    plane indices (the focal position of each output plane). ``crop=False`` keeps the margins
    (the whole periodic field, where every photon of the truth is accounted for).
    """
    folded = fold(spectrum, h, grid.oversample)
    along_z = scipy.fft.ifft(folded, axis=0, workers=WORKERS, overwrite_x=True)
    picked = along_z[np.asarray(planes)]
    image = scipy.fft.irfft2(picked, s=grid.padded, workers=WORKERS)
    return np.ascontiguousarray(grid.crop(image) if crop else image, dtype=np.float32)
