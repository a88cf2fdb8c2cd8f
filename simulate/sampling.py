"""From the fine truth grid to detector pixels and focal planes.

* **Laterally**, a detector pixel integrates the light falling on its area: the sum of the
  ``s × s`` truth voxels it covers (``s`` = ``sampling.oversample``), so photons are conserved.
* **Axially**, each detector plane is one exposure with the focal plane at its position: the
  blurred volume is *sampled* at the focal planes, not summed over the z-step. Summing over the
  z-step would count photons that no exposure collects: the light emitted between two focal
  planes reaches the camera during both exposures, blurred, and is already in each plane through
  the widefield PSF.

The fast path never forms the blurred truth volume: it multiplies the truth's spectrum by the
OTF, folds the spectrum onto the detector grid (pixel integration = box filter + decimation, done
in Fourier space) and inverts only the detector planes. :func:`integrate_pixels` is the plain
real-space reference for the same operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft
from scipy.interpolate import make_interp_spline

from .backend import array_module
from .config import SimConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Grid:
    """Geometry of one simulated field: the detector grid, the padded truth grid, the planes.

    Axes are (z, y, x). A 2D field is the focal plane (``detector[0] == 1``) of a thin slab.
    """

    ndim: int
    detector: tuple[int, int, int]  # (nz, ny, nx) detector pixels; nz = 1 in 2D
    pixel: float  # lateral detector pixel, µm
    z_factor: int  # z-step / pixel
    oversample: int  # truth voxels per pixel, laterally
    oversample_z: int  # truth planes per pixel length, axially
    margin: tuple[int, int]  # detector pixels rendered before the field in y and x
    padded: tuple[int, int]  # (Py, Px) detector pixels of the padded field
    nz_truth: int  # truth planes (sample depth)
    z_fft: int  # FFT length along z (>= 2 nz_truth - 1: linear convolution over the whole depth)
    input_planes: tuple[int, ...]  # truth plane of each acquired detector plane
    iso_planes: tuple[int, ...]  # truth planes at pixel spacing spanning the acquired stack

    @classmethod
    def from_config(cls, cfg: SimConfig) -> Grid:
        """The grid of a configuration (sizes chosen so every FFT length is fast)."""
        smp = cfg.sampling
        (s, oz), k = cfg.oversampling(), smp.z_factor
        ny, nx = cfg.shape[-2:]
        margin_um = smp.margin if smp.margin is not None else max(1.0, 4 * cfg.optics.wavelength
                                                                  / cfg.optics.na)
        m = int(math.ceil(margin_um / smp.pixel))
        padded = tuple(_fast_even(n + 2 * m, s) for n in (ny, nx))
        dz = smp.pixel / oz
        if cfg.ndim == 2:
            thickness = cfg.sample.thickness if cfg.sample.thickness is not None else 1.0
            nz_truth = 2 * int(round(thickness / (2 * dz))) + 1
            planes = (nz_truth // 2,)
            iso = planes
            nz = 1
        else:
            nz = cfg.shape[0]
            r = k * oz  # truth planes per z-step; each detector plane owns r planes
            stack = nz * r
            extra = 0
            if cfg.sample.thickness is not None:
                extra = max(0, int(round(cfg.sample.thickness / dz)) - stack)
            lo = extra // 2
            nz_truth = stack + extra
            planes = tuple(lo + r // 2 + i * r for i in range(nz))
            iso = tuple(lo + r // 2 + j * oz for j in range((nz - 1) * k + 1))
        grid = cls(ndim=cfg.ndim, detector=(nz, ny, nx), pixel=smp.pixel, z_factor=k, oversample=s,
                   oversample_z=oz, margin=(m, m), padded=padded, nz_truth=nz_truth,
                   z_fft=scipy.fft.next_fast_len(2 * nz_truth - 1), input_planes=planes,
                   iso_planes=iso)
        voxels = grid.z_fft * grid.truth_shape[1] * grid.truth_shape[2]
        if voxels > 2**31:
            raise ConfigError(f"shape {list(cfg.shape)} with sampling.oversample={s} needs a "
                              f"{grid.z_fft}x{grid.truth_shape[1]}x{grid.truth_shape[2]} FFT grid, "
                              "too large for one pair: use a smaller shape or oversample")
        return grid

    @property
    def truth_spacing(self) -> tuple[float, float, float]:
        """Truth voxel size (dz, dy, dx), µm."""
        d = self.pixel / self.oversample
        return (self.pixel / self.oversample_z, d, d)

    @property
    def truth_shape(self) -> tuple[int, int, int]:
        """Truth grid (planes, rows, columns): the padded field at the truth resolution."""
        return (self.nz_truth, self.padded[0] * self.oversample, self.padded[1] * self.oversample)

    @property
    def extent(self) -> np.ndarray:
        """Size of the truth box (z, y, x), µm."""
        return np.asarray(self.truth_shape) * np.asarray(self.truth_spacing)

    @property
    def z_step(self) -> float:
        """Distance between acquired planes, µm."""
        return self.pixel * self.z_factor

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The detector field (..., ny, nx) out of a padded detector image (..., Py, Px)."""
        (my, mx), (_, ny, nx) = self.margin, self.detector
        return image[..., my:my + ny, mx:mx + nx]

    def plane_coords(self, planes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates (µm, truth-box frame) of the given truth planes and of the detector pixels'
        centres in the cropped field: vectors (z, y, x)."""
        dz = self.truth_spacing[0]
        z = (np.asarray(planes) + 0.5) * dz
        y = (self.margin[0] + np.arange(self.detector[1]) + 0.5) * self.pixel
        x = (self.margin[1] + np.arange(self.detector[2]) + 0.5) * self.pixel
        return z, y, x


def _fast_even(n: int, s: int) -> int:
    """Smallest even m >= n such that s·m is a fast FFT length (5-smooth for the real FFT if
    s allows it, else 11-smooth, which pocketfft also handles well)."""
    m = n + (n % 2)
    real = all(p in (2, 3, 5) for p in _prime_factors(s))
    while scipy.fft.next_fast_len(s * m, real=real) != s * m:
        m += 2
    return m


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def integrate_pixels(volume: np.ndarray, factor: int) -> np.ndarray:
    """Sum ``factor × factor`` blocks of the last two axes (real-space pixel integration).

    Sizes must be multiples of ``factor``; the result keeps the leading axes.
    """
    *lead, ny, nx = volume.shape
    if ny % factor or nx % factor:
        raise ValueError(f"lateral size {(ny, nx)} is not a multiple of {factor}")
    blocks = volume.reshape(*lead, ny // factor, factor, nx // factor, factor)
    return blocks.sum(axis=(-3, -1), dtype=np.float64).astype(volume.dtype)


def pixel_transfer(n: int, factor: int, *, real: bool) -> np.ndarray:
    """Transfer function of integrating ``factor`` truth voxels into one pixel along an axis of
    ``n`` voxels, including the 1/factor of decimation in Fourier space (see :func:`fold`).

    Pixel ``q`` sums voxels ``q·factor … q·factor + factor − 1``: v[n] = Σ_t x[n + t] has the
    transfer Σ_t exp(+2πi k t / n).
    """
    k = np.arange(n // 2 + 1) if real else np.arange(n)
    t = np.arange(factor)
    return np.exp(2j * np.pi * np.outer(k, t) / n).sum(axis=1) / factor


def fold_targets(ny: int, nx: int, factor: int, rows: np.ndarray,
                 cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where stored half-spectrum frequencies land when the lateral grid is decimated by
    ``factor`` (pixel integration, in Fourier space).

    A truth field of (ny, nx) pixels, nx even, stores frequencies (row, col) with col <= nx/2;
    decimation by ``factor`` folds every frequency onto index (row mod Py, col mod Mx) of the
    detector grid (Py = ny / factor, Mx = nx / factor), whose half spectrum keeps u <= Mx/2.
    A stored frequency with 0 < col < nx/2 also stands for its Hermitian mirror
    (-row, nx - col), conjugated. Returns ``direct`` and ``mirror``, each (n, 2) int64 of
    (p, u), with u = -1 where the frequency does not land in the stored half.
    """
    py, mx = ny // factor, nx // factor
    keep = mx // 2

    def target(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        u = c % mx
        return np.stack([r % py, np.where(u <= keep, u, -1)], axis=1).astype(np.int64)

    direct = target(rows, cols)
    mirror = target((ny - rows) % ny, nx - cols)
    mirror[(cols == 0) | (cols >= nx // 2), 1] = -1
    return direct, mirror


def fold_table(targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Gather table of a fold onto a detector half spectrum of ``shape`` = (Py, Mx//2 + 1).

    Row ``t`` lists, in increasing order, the stored frequencies (rows of ``targets``, from
    :func:`fold_targets`) that land on the flat detector frequency ``t``, padded with ``n`` (the
    index of an extra zero column). Returns (Py · (Mx//2 + 1), K) int64, K ≤ factor² the most
    frequencies landing on one target.
    """
    n, n_out = len(targets), shape[0] * shape[1]
    src = np.nonzero(targets[:, 1] >= 0)[0]
    flat = targets[src, 0] * shape[1] + targets[src, 1]
    order = np.argsort(flat, kind="stable")  # stable: sources stay in increasing order
    flat, src = flat[order], src[order]
    counts = np.bincount(flat, minlength=n_out)
    rank = np.arange(len(flat)) - (np.cumsum(counts) - counts)[flat]
    table = np.full((n_out, max(int(counts.max(initial=0)), 1)), n, np.int64)
    table[flat, rank] = src
    return table


def fold(spectrum, otf, direct, mirror, out_shape: tuple[int, int, int]):
    """Multiply a truth spectrum by the OTF and fold it onto the detector's lateral grid
    (numpy or cupy arrays alike).

    ``spectrum`` is (..., L, n): L axial frequencies × n stored lateral frequencies (the OTF's
    support, see :mod:`simulate.convolve`), leading axes a batch; ``otf`` (L, n);
    ``direct``/``mirror`` are the :func:`fold_table` of the :func:`fold_targets`. The OTF must
    include :func:`pixel_transfer`, so that the inverse FFT of the result,
    (..., L, Py, Mx//2 + 1), is the pixel-integrated, blurred field. A Hermitian mirror at axial
    frequency ``l`` comes from frequency ``−l``, conjugated. Every output frequency sums its
    sources in a fixed order with no atomics, so the result is deterministic on any backend.
    numpy arrays go through a numba kernel (no intermediate arrays, 3–4× faster on a CPU),
    others through :func:`fold_gather`; the two agree (tested).
    """
    if array_module(spectrum) is not np:
        return fold_gather(spectrum, otf, direct, mirror, out_shape)
    *lead, nl, n = spectrum.shape
    spec = np.ascontiguousarray(spectrum.reshape(-1, nl, n), dtype=np.complex64)
    out = np.empty((spec.shape[0], nl, direct.shape[0]), np.complex64)
    _fold_tables(spec, np.ascontiguousarray(otf, dtype=np.complex64), direct, mirror, out)
    return out.reshape(*lead, *out_shape)


@numba.njit(parallel=True, cache=True)
def _fold_tables(spec, otf, direct, mirror, out):  # pragma: no cover - numba
    nb, nl, n = spec.shape
    for job in numba.prange(nb * nl):
        b = job // nl
        iz = job - b * nl
        izm = (nl - iz) % nl
        for t in range(direct.shape[0]):
            acc = np.complex64(0)
            for k in range(direct.shape[1]):
                s = direct[t, k]
                if s < n:
                    acc += spec[b, iz, s] * otf[iz, s]
            for k in range(mirror.shape[1]):
                s = mirror[t, k]
                if s < n:
                    acc += (spec[b, izm, s] * otf[izm, s]).conjugate()
            out[b, iz, t] = acc


def fold_gather(spectrum, otf, direct, mirror, out_shape: tuple[int, int, int]):
    """:func:`fold` written with array operations only (the GPU's path; works on numpy too)."""
    xp = array_module(spectrum)
    *lead, nl, n = spectrum.shape
    padded = xp.empty((*lead, nl, n + 1), xp.complex64)  # column n: zero, for padded table rows
    xp.multiply(spectrum, otf, out=padded[..., :n])
    padded[..., n] = 0
    out = xp.take(padded, direct[:, 0], axis=-1)
    for k in range(1, direct.shape[1]):
        out += xp.take(padded, direct[:, k], axis=-1)
    mirrored = xp.conj(xp.take(padded, xp.asarray((-np.arange(nl)) % nl), axis=-2))
    for k in range(mirror.shape[1]):
        out += xp.take(mirrored, mirror[:, k], axis=-1)
    return out.reshape(*lead, *out_shape)


def interpolate_axis(stack, factor: int, axis: int = 0, order: int = 1):
    """Upsample ``axis`` by an integer factor with a spline through the samples.

    Sample i sits at i·factor in the output, which has (n − 1)·factor + 1 entries along ``axis``
    (no extrapolation past the last sample). ``order`` 1 is linear (numpy or cupy arrays), 3
    cubic (numpy).
    """
    n = stack.shape[axis]
    if n < 2:
        raise ValueError("need at least two samples to interpolate")
    order = min(order, n - 1)
    if order == 1:
        xp = array_module(stack)
        j = np.arange((n - 1) * factor + 1)
        lo = np.minimum(j // factor, n - 2)
        t = ((j - lo * factor) / factor).astype(np.float32)
        shape = [1] * stack.ndim
        shape[axis] = len(j)
        t = xp.asarray(t).reshape(shape)
        a = xp.take(stack, xp.asarray(lo), axis=axis).astype(xp.float32, copy=False)
        b = xp.take(stack, xp.asarray(lo + 1), axis=axis).astype(xp.float32, copy=False)
        return xp.ascontiguousarray((1 - t) * a + t * b)  # exact at both samples
    spline = make_interp_spline(np.arange(n) * factor, stack, k=order, axis=axis)
    return np.ascontiguousarray(spline(np.arange((n - 1) * factor + 1)), dtype=np.float32)
