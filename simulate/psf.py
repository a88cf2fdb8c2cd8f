"""Point-spread functions on any grid.

All functions return float32 arrays, centred at index ``n // 2`` of every axis (the convention of
``numpy.fft.fftshift``), on a grid of the given ``shape`` and ``spacing`` (µm; ``(dz, dy, dx)`` for
3D, ``(dy, dx)`` for 2D, where a 2D PSF is the in-focus plane).

Normalisation follows the physics of each microscope:

* widefield: a point's light reaches the camera whatever its defocus, so **every plane sums to 1**
  and a detector plane collects light from the whole sample depth (out-of-focus haze);
* light sheet: the widefield detection PSF times the sheet's intensity profile, so the focal plane
  sums to 1 and the others to the sheet profile (the sheet moves with the focal plane);
* confocal and Gaussian: sectioning models whose **whole volume sums to 1**.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np
import scipy.signal
import scipy.special
from scipy import ndimage

from .errors import SynthcareError

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --- diffraction theory ----------------------------------------------------------------------
def lateral_fwhm(na: float, wavelength: float) -> float:
    """Lateral FWHM of the in-focus widefield PSF (Airy disk), 0.5145 λ/NA, in µm."""
    return 0.5145 * wavelength / na


def axial_fwhm(na: float, wavelength: float, ni: float) -> float:
    """Axial FWHM of the widefield PSF, 0.88 λ / (n − √(n² − NA²)), in µm (valid at any NA)."""
    return 0.88 * wavelength / (ni - math.sqrt(ni * ni - na * na))


def fwhm(profile: np.ndarray, spacing: float = 1.0) -> float:
    """Full width at half maximum of a 1D profile, by linear interpolation, in units of ``spacing``.

    Raises :class:`SynthcareError` if the profile does not fall below half its maximum on both sides.
    """
    p = np.asarray(profile, dtype=np.float64)
    i = int(np.argmax(p))
    half = p[i] / 2.0
    below_left = np.nonzero(p[:i] < half)[0]
    below_right = np.nonzero(p[i:] < half)[0]
    if p[i] <= 0 or below_left.size == 0 or below_right.size == 0:
        raise SynthcareError("profile does not fall to half its maximum on both sides; widen the grid")
    a = below_left[-1]  # p[a] < half <= p[a + 1]
    b = i + below_right[0]  # p[b - 1] >= half > p[b]
    left = a + (half - p[a]) / (p[a + 1] - p[a])
    right = b - 1 + (p[b - 1] - half) / (p[b - 1] - p[b])
    return float((right - left) * spacing)


# --- models ----------------------------------------------------------------------------------
def _grid_axes(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    if len(shape) != len(spacing):
        raise SynthcareError(f"shape {tuple(shape)} and spacing {tuple(spacing)} differ in length")
    if len(shape) not in (2, 3) or any(int(n) < 1 for n in shape) or any(d <= 0 for d in spacing):
        raise SynthcareError(f"PSF grid needs 2 or 3 positive sizes and spacings, got shape "
                             f"{tuple(shape)}, spacing {tuple(spacing)}")
    return [(np.arange(n) - n // 2) * d for n, d in zip(shape, spacing, strict=True)]


def _check_optics(na: float, wavelength: float, ni: float) -> None:
    if not 0 < na < ni:
        raise SynthcareError(f"na must be in (0, ni = {ni}), got {na}")
    if wavelength <= 0:
        raise SynthcareError(f"wavelength must be positive (µm), got {wavelength}")


def _box_gaussian_1d(coords: np.ndarray, step: float, sigma: float) -> np.ndarray:
    """A unit-area Gaussian integrated over each voxel (exact for any sigma, even below a voxel)."""
    s = sigma * math.sqrt(2.0)
    return 0.5 * (scipy.special.erf((coords + step / 2) / s) - scipy.special.erf((coords - step / 2) / s))


def gaussian(shape: Sequence[int], spacing: Sequence[float], *, na: float, wavelength: float,
             ni: float) -> np.ndarray:
    """Gaussian approximation of the widefield PSF, with the widths of diffraction theory.

    Lateral and axial sigmas are the FWHMs of :func:`lateral_fwhm` and :func:`axial_fwhm` divided
    by 2√(2 ln 2); the Gaussian is integrated over each voxel and sums to 1 over the whole grid. It
    has no out-of-focus haze (it is a sectioning model): use :func:`widefield` for physics.
    """
    _check_optics(na, wavelength, ni)
    axes = _grid_axes(shape, spacing)
    sig_xy = lateral_fwhm(na, wavelength) / _FWHM_PER_SIGMA
    sigmas = [sig_xy, sig_xy]
    if len(shape) == 3:
        sigmas.insert(0, axial_fwhm(na, wavelength, ni) / _FWHM_PER_SIGMA)
    psf = np.ones((1,) * len(shape))
    for ax, (c, d, s) in enumerate(zip(axes, spacing, sigmas, strict=True)):
        prof = _box_gaussian_1d(c, d, s)
        psf = psf * prof.reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return (psf / psf.sum()).astype(np.float32)


def narrow_gaussian(shape: Sequence[int], spacing: Sequence[float], *, fwhm_xy: float,
                    fwhm_z: float) -> np.ndarray:
    """The band-limited PSF of deconvolution targets: a lateral Gaussian (FWHM ``fwhm_xy`` µm,
    each plane sums to 1) times an axial Gaussian of FWHM ``fwhm_z`` µm with peak 1 at focus.

    With this normalisation an in-focus point keeps its full brightness in its own plane, as in
    the widefield input, while out-of-focus light is removed rather than redistributed.
    """
    axes = _grid_axes(shape, spacing)
    sig = fwhm_xy / _FWHM_PER_SIGMA
    lat = np.outer(_box_gaussian_1d(axes[-2], spacing[-2], sig),
                   _box_gaussian_1d(axes[-1], spacing[-1], sig))
    lat /= lat.sum()
    if len(shape) == 2:
        return lat.astype(np.float32)
    prof = np.exp(-4 * math.log(2) * (axes[0] / fwhm_z) ** 2)
    return (prof[:, None, None] * lat[None]).astype(np.float32)


def _widefield_radial(r: np.ndarray, z: np.ndarray, na: float, wavelength: float,
                      ni: float) -> np.ndarray:
    """|∫₀¹ J₀(k NA ρ r) exp(i k z √(n² − NA² ρ²)) ρ dρ|² for every (r, z): array (len(z), len(r)).

    Gauss–Legendre quadrature with enough nodes for the oscillations of both factors.
    """
    k = 2 * np.pi / wavelength
    periods = (k * na * r.max() + k * np.abs(z).max() * (ni - math.sqrt(ni**2 - na**2))) / (2 * np.pi)
    n_nodes = int(64 + 8 * periods)
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    rho = 0.5 * (x + 1.0)
    w = 0.5 * w * rho
    bessel = scipy.special.j0(k * na * np.outer(r, rho))  # (nr, nodes)
    phase = np.exp(1j * k * np.outer(np.sqrt(ni**2 - (na * rho) ** 2), z))  # (nodes, nz)
    amplitude = bessel @ (w[:, None] * phase)  # (nr, nz)
    return (np.abs(amplitude) ** 2).T


@numba.njit(parallel=True, cache=True)
def _radial_to_grid(table, plane_row, index, frac, out):  # pragma: no cover - numba
    ny, nx = index.shape
    for p in numba.prange(out.shape[0]):
        row = table[plane_row[p]]
        for y in range(ny):
            for x in range(nx):
                i = index[y, x]
                out[p, y, x] = row[i] + frac[y, x] * (row[i + 1] - row[i])


def _rotational(shape: Sequence[int], spacing: Sequence[float], profile_fn) -> np.ndarray:
    """Evaluate a rotationally symmetric PSF given as ``profile_fn(r, z) -> (len(z), len(r))``."""
    shape3 = (1, *shape) if len(shape) == 2 else tuple(shape)
    spacing3 = (1.0, *spacing) if len(spacing) == 2 else tuple(spacing)
    z, y, x = _grid_axes(shape3, spacing3)
    radius = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    dr = min(spacing3[1:]) / 8.0
    r_table = np.arange(int(radius.max() / dr) + 3) * dr
    z_unique, plane_row = np.unique(np.round(np.abs(z), 9), return_inverse=True)
    table = profile_fn(r_table, z_unique).astype(np.float32)
    pos = radius / dr
    index = np.minimum(pos.astype(np.int64), len(r_table) - 2)
    frac = (pos - index).astype(np.float32)
    out = np.empty(shape3, np.float32)
    _radial_to_grid(table, plane_row.astype(np.int64), index, frac, out)
    return out.reshape(shape)


def _unit_planes(psf: np.ndarray) -> np.ndarray:
    sums = psf.sum(axis=(-2, -1), keepdims=True, dtype=np.float64)
    return (psf / np.where(sums > 0, sums, 1.0)).astype(np.float32)


def widefield(shape: Sequence[int], spacing: Sequence[float], *, na: float, wavelength: float,
              ni: float) -> np.ndarray:
    """Scalar, non-paraxial widefield PSF without apodisation; every plane sums to 1.

    h(r, z) ∝ |∫₀¹ J₀(k·NA·ρ·r) · exp(i·k·z·√(n² − NA²ρ²)) ρ dρ|², k = 2π/λ, evaluated by
    quadrature on a fine radial table and interpolated onto the grid. Unlike the paraxial textbook
    form (whose axial width is 1.3–1.5× too large at NA ≥ 0.8) it gives the right axial extent at
    high NA. Light leaving the grid at strong defocus is renormalised onto it.

    Parameters
    ----------
    shape : (nz, ny, nx) or (ny, nx); a 2D shape gives the in-focus plane.
    spacing : voxel size in µm, same length as ``shape``.
    na, wavelength, ni : numerical aperture, emission wavelength (µm), immersion index.
    """
    _check_optics(na, wavelength, ni)
    _grid_axes(shape, spacing)
    psf = _rotational(shape, spacing, lambda r, z: _widefield_radial(r, z, na, wavelength, ni))
    return _unit_planes(psf)


def lightsheet(shape: Sequence[int], spacing: Sequence[float], *, na: float, wavelength: float,
               ni: float, sheet_fwhm: float) -> np.ndarray:
    """Light-sheet PSF: widefield detection × the sheet's Gaussian intensity profile along z.

    ``sheet_fwhm`` is the intensity FWHM of the sheet (µm). The sheet moves with the focal plane,
    so the profile multiplies each plane by its defocus: the focal plane sums to 1.
    """
    if sheet_fwhm <= 0:
        raise SynthcareError(f"sheet_fwhm must be positive (µm), got {sheet_fwhm}")
    psf = widefield(shape, spacing, na=na, wavelength=wavelength, ni=ni)
    if len(shape) == 2:
        return psf
    z = _grid_axes(shape, spacing)[0]
    profile = np.exp(-4 * math.log(2) * (z / sheet_fwhm) ** 2)
    return (psf * profile[:, None, None]).astype(np.float32)


def _disk(radius: float, spacing: Sequence[float]) -> np.ndarray:
    """A unit-sum disk of ``radius`` µm, anti-aliased by 8×8 supersampling of each pixel."""
    dy, dx = spacing
    ny, nx = (2 * int(math.ceil(radius / d)) + 1 for d in (dy, dx))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    y = ((np.arange(ny) - ny // 2)[:, None] + sub[None, :]).ravel() * dy
    x = ((np.arange(nx) - nx // 2)[:, None] + sub[None, :]).ravel() * dx
    inside = (y[:, None] ** 2 + x[None, :] ** 2 <= radius**2).astype(np.float64)
    disk = inside.reshape(ny, 8, nx, 8).mean(axis=(1, 3))
    if disk.sum() == 0:
        disk[ny // 2, nx // 2] = 1.0
    return disk / disk.sum()


def confocal(shape: Sequence[int], spacing: Sequence[float], *, na: float, wavelength: float,
             ni: float, pinhole_au: float = 1.0,
             excitation_wavelength: float | None = None) -> np.ndarray:
    """Confocal PSF h_ex(λ_ex) · [h_em(λ_em) ⊛ pinhole]; the whole volume sums to 1.

    The pinhole is a disk of diameter ``pinhole_au`` Airy units (1 AU = 1.22 λ_em / NA) in the
    sample plane; 0 gives the ideal point pinhole h_ex · h_em. ``excitation_wavelength`` defaults
    to the emission wavelength.
    """
    if pinhole_au < 0:
        raise SynthcareError(f"pinhole_au must be >= 0, got {pinhole_au}")
    lam_ex = wavelength if excitation_wavelength is None else excitation_wavelength
    h_ex = widefield(shape, spacing, na=na, wavelength=lam_ex, ni=ni)
    h_em = widefield(shape, spacing, na=na, wavelength=wavelength, ni=ni)
    if pinhole_au > 0:
        disk = _disk(0.5 * pinhole_au * 1.22 * wavelength / na, spacing[-2:])
        disk = disk.reshape((1,) * (len(shape) - 2) + disk.shape)
        h_em = scipy.signal.fftconvolve(h_em, disk, mode="same", axes=(-2, -1))
    psf = np.clip(h_ex * h_em, 0, None)
    return (psf / psf.sum(dtype=np.float64)).astype(np.float32)


def _noise_free(data: np.ndarray, focus: np.ndarray) -> np.ndarray:
    """Background-subtracted, non-negative PSF data without a noise pedestal.

    The background (camera offset, stray light) is the median of the in-focus plane's border,
    where the bead's light is most concentrated (defocused planes spread real PSF light onto
    their borders); its noise σ is the border's MAD. Clipping noisy data at zero would keep
    the positive half of the noise (a 0.4 σ pedestal per voxel, which per-plane normalisation
    magnifies in faint defocused planes), so voxels where a lightly smoothed copy is below
    2.5 σ of its own noise are zeroed instead.
    """
    border = np.concatenate([focus[[0, -1]].ravel(), focus[:, [0, -1]].ravel()])
    background = float(np.median(border))
    sigma = 1.4826 * float(np.median(np.abs(border - background)))
    data = data - background
    if sigma > 0:
        smooth = ndimage.gaussian_filter(data, 1.0)
        noise = sigma / (4 * np.pi) ** (data.ndim / 4)  # σ of unit-σ Gaussian-smoothed noise
        data = np.where(smooth > 2.5 * noise, data, 0.0)
    return np.clip(data, 0, None)


def measured(path: str | Path, shape: Sequence[int], spacing: Sequence[float], *,
             file_spacing: Sequence[float] | None = None, thin_sample: bool = False) -> np.ndarray:
    """A measured PSF from a TIFF, background-subtracted, centred and resampled onto the grid.

    See :func:`_noise_free` for the background and noise handling; the centre is the intensity
    centroid of the voxels above half the maximum. Planes are normalised to sum 1, as for a
    widefield PSF; planes beyond the measured depth are zero (measure the PSF over the whole
    sample depth). ``file_spacing`` (µm) overrides the file's metadata (ImageJ ``spacing`` and
    ``unit``, or the TIFF resolution unit). A 2D file has no defocus information: it serves a
    ``thin_sample`` (2D simulations), whose light then all comes from the focal plane.
    """
    import tifffile

    from .tiff import tiff_spacing

    path = Path(path)
    if not path.is_file():
        raise SynthcareError(f"PSF file not found: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            data = np.squeeze(tif.asarray()).astype(np.float64)
            meta_spacing = tiff_spacing(tif)
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise SynthcareError(f"PSF file {path} is not a readable TIFF: {exc}") from None
    if data.ndim not in (2, 3) or min(data.shape) < 3:
        raise SynthcareError(f"PSF file {path} must hold one 2D or 3D image, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise SynthcareError(f"PSF file {path} contains {int(np.sum(~np.isfinite(data)))} NaN or "
                             "Inf values: fix or crop the measurement")
    if data.sum(dtype=np.float64) <= 0:
        raise SynthcareError(f"PSF file {path} holds no light: its total is "
                             f"{data.sum(dtype=np.float64):.3g} (a PSF is a non-negative intensity)")
    if data.ndim == 2 and len(shape) == 3 and not thin_sample:
        raise SynthcareError(f"PSF file {path} is 2D: a 3D simulation needs a measured z-stack")
    fsp = tuple(file_spacing) if file_spacing is not None else meta_spacing
    if fsp is None or len(fsp) != data.ndim:
        raise SynthcareError(f"voxel size of PSF file {path} unknown: set optics.psf_file_spacing "
                             f"to {data.ndim} values in µm")
    focus = data if data.ndim == 2 else data[np.unravel_index(np.argmax(data), data.shape)[0]]
    data = _noise_free(data, focus)
    if data.max() <= 0:
        raise SynthcareError(f"PSF file {path} holds no signal above its background")
    bright = np.where(data >= 0.5 * data.max(), data, 0.0)
    centre = np.array(ndimage.center_of_mass(bright))
    grid2d = tuple(shape[-2:]), tuple(spacing[-2:])
    if data.ndim == 3 and len(shape) == 2:  # a 2D grid takes the in-focus plane of a 3D file
        data, centre, fsp = data[int(round(centre[0]))], centre[1:], fsp[1:]
    if data.ndim == 2:
        plane = _resample(data, centre, fsp, *grid2d)
        plane /= plane.sum(dtype=np.float64)
        if len(shape) == 2:
            return plane.astype(np.float32)
        out = np.zeros(tuple(shape), np.float32)
        out[shape[0] // 2] = plane
        return out
    return _unit_planes(_resample(data, centre, fsp, shape, spacing))


def _resample(data: np.ndarray, centre: np.ndarray, file_spacing: Sequence[float],
              shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Linear resampling of ``data`` (centred at ``centre``) onto a centred grid."""
    axes = _grid_axes(shape, spacing)
    coords = np.meshgrid(*[c / d + c0 for c, d, c0 in zip(axes, file_spacing, centre, strict=True)],
                         indexing="ij")
    out = ndimage.map_coordinates(data, coords, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def from_config(optics, shape: Sequence[int], spacing: Sequence[float], *,
                thin_sample: bool = False) -> np.ndarray:
    """The PSF an :class:`~simulate.config.OpticsConfig` describes, on the given grid
    (``thin_sample``: the grid is the slab of a 2D simulation)."""
    kw = {"na": optics.na, "wavelength": optics.wavelength, "ni": optics.ni}
    if optics.psf == "gaussian":
        return gaussian(shape, spacing, **kw)
    if optics.psf == "widefield":
        return widefield(shape, spacing, **kw)
    if optics.psf == "confocal":
        return confocal(shape, spacing, pinhole_au=optics.pinhole_au,
                        excitation_wavelength=optics.excitation_wavelength, **kw)
    if optics.psf == "lightsheet":
        return lightsheet(shape, spacing, sheet_fwhm=optics.sheet_fwhm, **kw)
    if optics.psf == "measured":
        return measured(optics.psf_file, shape, spacing, file_spacing=optics.psf_file_spacing,
                        thin_sample=thin_sample)
    raise SynthcareError(f"unknown optics.psf '{optics.psf}'")


@functools.lru_cache(maxsize=16)
def model_fwhm(optics) -> tuple[float, float]:
    """(axial, lateral) FWHM in µm of the PSF an optics configuration describes, through its
    centre (on-axis and in-focus profiles). Widefield: from the diffraction integral itself
    (no grid); other models: measured on a fine grid."""
    fz = axial_fwhm(optics.na, optics.wavelength, optics.ni)
    fxy = lateral_fwhm(optics.na, optics.wavelength)
    if optics.psf == "gaussian":
        return fz, fxy
    if optics.psf == "widefield":
        dz, dr = fz / 200, fxy / 200
        z = np.arange(-600, 601) * dz
        r = np.arange(0, 601) * dr
        axial = _widefield_radial(np.zeros(1), z, optics.na, optics.wavelength, optics.ni)[:, 0]
        radial = _widefield_radial(r, np.zeros(1), optics.na, optics.wavelength, optics.ni)[0]
        return fwhm(axial, dz), fwhm(np.concatenate([radial[::-1], radial[1:]]), dr)
    dz, dxy = fz / 16, fxy / 16
    shape = (2 * int(4 * fz / dz) + 1, 2 * int(8 * fxy / dxy) + 1, 2 * int(8 * fxy / dxy) + 1)
    h = from_config(optics, shape, (dz, dxy, dxy))
    c = [n // 2 for n in shape]
    return fwhm(h[:, c[1], c[2]], dz), fwhm(h[c[0], c[1], :], dxy)
