"""FFT convolution of the truth volume with the PSF, straight onto the detector planes.

The truth is rendered with a lateral margin (cropped afterwards, so nothing wraps into the field
and borders are not dark) and transformed with real FFTs. Along z the transform is zero-padded to
at least twice the sample depth, so the convolution is linear over the whole depth: the PSF spans
every distance between a source plane and a focal plane, and out-of-focus haze from the whole
sample reaches every detector plane.

Only the output planes and pixels are needed, so the product spectrum is folded onto the detector
grid (:func:`simulate.sampling.fold`) before a small inverse transform, and only the lateral
frequencies inside the OTF's support are transformed along z: a pair costs less than one
forward FFT of the truth. OTFs (PSF spectrum × pixel integration) are cached per (PSFs, grid).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.fft

from . import backend
from . import psf as psf_models
from .sampling import Grid, fold, fold_table, fold_targets, pixel_transfer

# OTF values below this fraction of the OTF's maximum are outside its support: those lateral
# frequencies are dropped before the axial FFT. The widefield support (|k| <= 2 NA / λ) is ~17 %
# of the truth's lateral spectrum at 2x oversampling; the dropped part changes an image by
# ~1e-5 of its maximum, far below shot noise even at 10^6 photons.
SUPPORT_THRESHOLD = 1e-5


@dataclass(frozen=True)
class Plan:
    """The spectral layout of one grid and a set of OTFs.

    The truth's spectrum is kept only at the lateral frequencies where some OTF is non-zero:
    ``index`` (n,) into the (Ny, kx_cut) lateral half-spectrum. ``otfs`` holds one (L, n)
    complex64 array per PSF (pixel integration included, exactly zero at axial frequencies
    outside its support); ``direct``/``mirror`` are the gather tables of where each
    kept frequency lands on the detector grid (:func:`simulate.sampling.fold_table`). Arrays
    are numpy or, after :func:`on_device`, cupy.
    """

    kx_cut: int
    index: np.ndarray
    direct: np.ndarray
    mirror: np.ndarray
    otfs: tuple[np.ndarray, ...]


def otf(psf: np.ndarray) -> np.ndarray:
    """Half spectrum (complex64) of a centred PSF (centre at index n // 2 of every axis)."""
    return scipy.fft.rfftn(np.fft.ifftshift(psf), workers=backend.FFT_WORKERS).astype(np.complex64)


class OpticsKey(NamedTuple):
    """Cache key of the microscope's PSF: its optics, the simulation's dimensionality and a
    measured PSF file's modification time (so an edited file is not served stale)."""

    optics: object  # an OpticsConfig (frozen, hashable)
    ndim: int
    mtime: int | None


class NarrowKey(NamedTuple):
    """Cache key of a narrow Gaussian PSF (:func:`simulate.psf.narrow_gaussian`), µm FWHM."""

    fwhm_xy: float
    fwhm_z: float


def optics_key(optics, ndim: int = 3) -> OpticsKey:
    """The :class:`OpticsKey` of an :class:`~simulate.config.OpticsConfig` for a ``ndim``-D
    simulation."""
    mtime = None
    if optics.psf == "measured":
        p = Path(optics.psf_file)
        mtime = p.stat().st_mtime_ns if p.exists() else None
    return OpticsKey(optics, ndim, mtime)


def narrow_key(fwhm_xy: float, fwhm_z: float) -> NarrowKey:
    """The :class:`NarrowKey` of the narrow Gaussian of deconvolution targets and isotropic
    references."""
    return NarrowKey(float(fwhm_xy), float(fwhm_z))


def _psf_for(key: OpticsKey | NarrowKey, shape: tuple[int, ...],
             spacing: tuple[float, ...]) -> np.ndarray:
    if isinstance(key, NarrowKey):
        return psf_models.narrow_gaussian(shape, spacing, fwhm_xy=key.fwhm_xy, fwhm_z=key.fwhm_z)
    return psf_models.from_config(key.optics, shape, spacing, thin_sample=key.ndim == 2)


def detector_otf(key: OpticsKey | NarrowKey, grid: Grid) -> tuple[np.ndarray, float]:
    """Full OTF (L, Ny, Nx//2 + 1) of a PSF key on ``grid``'s FFT grid, with pixel integration,
    and the light the PSF's focal plane carries (its sum)."""
    shape = (grid.z_fft, *grid.truth_shape[1:])
    psf = _psf_for(key, shape, grid.truth_spacing)
    focus = float(psf[shape[0] // 2].sum(dtype=np.float64))
    h = otf(psf)
    s = grid.oversample
    h *= pixel_transfer(shape[1], s, real=False).astype(np.complex64)[None, :, None]
    h *= pixel_transfer(shape[2], s, real=True).astype(np.complex64)[None, None, :]
    return h, focus


@functools.lru_cache(maxsize=4)
def plan(keys: tuple, grid: Grid, threshold: float = SUPPORT_THRESHOLD) -> Plan:
    """Cached :class:`Plan` for the PSFs ``keys`` (from :func:`optics_key`, :func:`narrow_key`).

    The first PSF is the acquisition's; the others (targets) are scaled so their focal plane
    carries the same light as the acquisition PSF's, keeping targets in the input's photometric
    scale whether the input PSF is normalised per plane (widefield) or per volume (confocal).
    """
    full, focus = zip(*(detector_otf(k, grid) for k in keys), strict=True)
    full = [h if i == 0 else h * np.complex64(focus[0] / focus[i]) for i, h in enumerate(full)]
    _, ny, kx = full[0].shape
    lateral = np.zeros((ny, kx), bool)
    for h in full:
        mag = np.abs(h)
        lateral |= (mag > threshold * mag.max()).any(axis=0)
    kx_cut = int(np.nonzero(lateral.any(axis=0))[0].max()) + 1
    rows, cols = np.nonzero(lateral[:, :kx_cut])
    direct, mirror = fold_targets(ny, grid.truth_shape[2], grid.oversample, rows, cols)
    half = (grid.padded[0], grid.padded[1] // 2 + 1)
    direct, mirror = fold_table(direct, half), fold_table(mirror, half)
    otfs = []
    for h in full:
        values = np.ascontiguousarray(h[:, rows, cols])
        mag = np.abs(values)
        if threshold > 0:  # axial frequencies outside the support: exactly zero
            values[~(mag > threshold * mag.max()).any(axis=1)] = 0
        otfs.append(values)
    return Plan(kx_cut, (rows * kx_cut + cols).astype(np.int64), direct, mirror, tuple(otfs))


_ON_DEVICE: dict[int, tuple[Plan, Plan]] = {}


def on_device(p: Plan, xp) -> Plan:
    """The plan with its arrays in the array module ``xp`` (cupy: on the GPU), cached per plan
    (plans themselves are cached, so a pair costs no host-to-device copy of its OTFs)."""
    if xp is np:
        return p
    hit = _ON_DEVICE.get(id(p))
    if hit is None or hit[0] is not p:
        moved = {f.name: getattr(p, f.name) for f in fields(p)}
        for name in ("index", "direct", "mirror"):
            moved[name] = xp.asarray(moved[name])
        moved["otfs"] = tuple(xp.asarray(a) for a in moved["otfs"])
        if len(_ON_DEVICE) >= 4:
            _ON_DEVICE.pop(next(iter(_ON_DEVICE)))
        hit = _ON_DEVICE[id(p)] = (p, Plan(**moved))
    return hit[1]


def truth_spectrum(truth, plan: Plan, grid: Grid):
    """Spectrum (..., L, n) complex64 of (..., nz, Ny, Nx) truth volumes (leading axes: a batch)
    at the plan's lateral frequencies, zero-padded along z to ``grid.z_fft`` planes (linear
    convolution in z). numpy or cupy, with ``plan`` on the same device.

    The lateral transform is pruned: columns beyond the support are dropped after the x-FFT,
    and only supported frequencies enter the (largest) axial FFT.
    """
    f = backend.fft(backend.array_module(truth))
    along_x = f.rfft(truth, axis=-1)[..., :plan.kx_cut]
    lateral = f.fft(along_x, axis=-2, overwrite_x=True)
    kept = lateral.reshape(*truth.shape[:-2], -1)[..., plan.index]
    return f.fft(kept, n=grid.z_fft, axis=-2, overwrite_x=True).astype(np.complex64, copy=False)


def detector_planes(spectrum, plan: Plan, which: int, grid: Grid, planes: tuple[int, ...], *,
                    crop: bool = True):
    """Blur with OTF number ``which`` of the plan, integrate pixels and sample focal planes:
    (..., len(planes), ny, nx) float32 (relative photons), cropped to the detector field.

    ``planes`` are truth plane indices (the focal position of each output plane). ``crop=False``
    keeps the margins (the whole periodic field, where every photon of the truth is counted).
    """
    xp = backend.array_module(spectrum)
    f = backend.fft(xp)
    py, px = grid.padded
    folded = fold(spectrum, plan.otfs[which], plan.direct, plan.mirror,
                  (grid.z_fft, py, px // 2 + 1))
    along_z = f.ifft(folded, axis=-3, overwrite_x=True)
    picked = along_z[..., xp.asarray(planes), :, :]
    image = f.irfft2(picked, s=grid.padded)
    return xp.ascontiguousarray(grid.crop(image) if crop else image, dtype=xp.float32)
