"""Training pairs: a pure function of (config, seed, index).

A pair is drawn from its own random streams, ``SeedSequence([seed, index])`` split into
geometry, noise, target and background generators, so the same inputs give a bit-identical pair
in any process and any order, and changing the camera never changes the sample.

Photometry: ``camera.photons`` is the expected number of photons at the brightest pixel of the
blurred, pixel-integrated input image (before QE). Targets are expressed in the input's
photometric scale — the expected ADU of the input camera — so one affine map normalises both and
its inverse returns predictions in the input's units. ``clean`` is always the noise-free
expected image of the target's geometry, so quality can be scored against truth even where
training never sees it (``n2n``).

Tasks
-----
denoise     input: low-photon acquisition; target: noise-free (or ``target.noise: high``).
upsample    input: nz planes at z = i·k·pixel; target: (nz − 1)·k + 1 planes at z = j·pixel.
isotropic   CSBDeep's lateral-slice scheme: each acquired lateral plane, blurred along y by the
            residual axial blur (σ² = σ_z² − σ_xy²), sampled every k rows, recorded by the camera
            and interpolated back (input), against the lateral plane itself (target). The camera
            acts after the subsampling, as it does on a real XZ slice.
deconvolve  target: the sample through a narrow Gaussian PSF (band-limited on the detector grid).
n2n         input and target: two independent noisy acquisitions of one sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from . import convolve, phantoms, render
from .camera import Camera
from .config import SimConfig
from .psf import model_fwhm
from .sampling import Grid, interpolate_axis

_FWHM_PER_SIGMA = 2.3548200450309493


@dataclass(frozen=True)
class Pair:
    """One simulated pair.

    input : camera ADU (integer-valued float32), the acquired geometry.
    target : float32 training target in the input's photometric scale (expected ADU).
    clean : float32 noise-free expected ADU of the target's geometry.
    truth : the fine truth volume (z, y, x) incl. margins, if requested.
    """

    input: np.ndarray
    target: np.ndarray
    clean: np.ndarray
    truth: np.ndarray | None = None


def streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """The independent random generators of pair (seed, index)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    names = ("geometry", "noise", "target", "background")
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}


class _Clock:
    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.t = timings, time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now


def _background(cfg: SimConfig, grid: Grid, planes: tuple[int, ...],
                field: phantoms.SmoothField | None) -> np.ndarray | float:
    """Background photons on the given planes: uniform part plus the smooth random field."""
    level = cfg.sample.background * cfg.camera.photons
    if field is None:
        return level
    smooth = field(*grid.plane_coords(planes)).astype(np.float32)
    return level + cfg.sample.background_smooth * cfg.camera.photons * smooth


def residual_sigma(cfg: SimConfig) -> float:
    """Residual blur (detector pixels) that turns the lateral PSF profile into the axial one,
    σ² = σ_z² − σ_xy² with σ from the model PSF's FWHMs (0 if the PSF is not elongated)."""
    fz, fxy = model_fwhm(cfg.optics)
    return float(np.sqrt(max(fz**2 - fxy**2, 0.0)) / _FWHM_PER_SIGMA / cfg.sampling.pixel)


@dataclass
class _Imaging:
    """One sample, rendered and transformed once, ready to be imaged at any planes."""

    cfg: SimConfig
    grid: Grid
    rng: dict[str, np.random.Generator]
    field: phantoms.SmoothField | None
    spectrum: np.ndarray
    plan: convolve.Plan
    truth: np.ndarray
    scale: float = 1.0

    def signal(self, planes: tuple[int, ...], which: int = 0, crop: bool = True) -> np.ndarray:
        """Blurred, pixel-integrated photons (no background) at truth planes, with PSF ``which``."""
        out = convolve.detector_planes(self.spectrum, self.plan, which, self.grid, planes, crop=crop)
        return out * np.float32(self.scale)

    def photons(self, signal: np.ndarray, planes: tuple[int, ...]) -> np.ndarray:
        """Signal plus background, never negative (FFT rounding leaves ~1e-7 negatives)."""
        return np.maximum(signal + _background(self.cfg, self.grid, planes, self.field), 0)


def _image(cfg: SimConfig, seed: int, index: int, extra_keys: tuple = (),
           clock: _Clock | None = None) -> _Imaging:
    clock = clock or _Clock(None)
    grid = Grid.from_config(cfg)
    rng = streams(seed, index)
    sample = phantoms.sample(cfg.sample, grid.extent, rng["geometry"], slab=cfg.ndim == 2)
    field = (phantoms.SmoothField.draw(rng["background"], cfg.sample.background_scale)
             if cfg.sample.background_smooth > 0 else None)
    clock.lap("geometry")
    truth = render.render(sample, grid.truth_shape, grid.truth_spacing)
    clock.lap("render")
    plan = convolve.plan((convolve.optics_key(cfg.optics, cfg.ndim), *extra_keys), grid)
    spectrum = convolve.truth_spectrum(truth, plan, grid)
    clock.lap("fft")
    return _Imaging(cfg, grid, rng, field, spectrum, plan, truth)


def _calibrate(im: _Imaging, padded_input: np.ndarray) -> None:
    """Set the photon scale: ``camera.photons`` at the brightest pixel of the input field."""
    peak = float(im.grid.crop(padded_input).max())
    im.scale = im.cfg.camera.photons / peak if peak > 0 else 0.0


def simulate_pair(config: SimConfig, seed: int, index: int, *, keep_truth: bool = False,
                  timings: dict[str, float] | None = None) -> Pair:
    """Simulate pair ``index`` of the dataset ``seed`` (see the module docstring for the tasks).

    Shapes: 2D configs give (ny, nx) images; 3D give (nz, ny, nx), except the ``upsample``
    target ((nz − 1)·k + 1 planes) and ``isotropic`` (lateral slices, rows cropped to
    (⌈ny/k⌉ − 1)·k + 1). ``timings``, if given, accumulates seconds per stage.
    """
    cfg, clock = config, _Clock(timings)
    extra = ()
    if cfg.task == "deconvolve":
        extra = (convolve.narrow_key(cfg.target.fwhm_xy or 2 * cfg.sampling.pixel,
                                     cfg.target.fwhm_z or 2 * cfg.sampling.pixel
                                     * cfg.sampling.z_factor),)
    im = _image(cfg, seed, index, extra, clock)
    grid = im.grid
    in_planes = grid.input_planes
    tgt_planes = grid.iso_planes if cfg.task == "upsample" else in_planes
    both = convolve.detector_planes(im.spectrum, im.plan, 0, grid, in_planes + tgt_planes, crop=False)
    _calibrate(im, both[:len(in_planes)])
    both *= np.float32(im.scale)
    photons_in = im.photons(grid.crop(both[:len(in_planes)]), in_planes)
    signal_tgt = (im.signal(in_planes, which=1) if cfg.task == "deconvolve"
                  else grid.crop(both[len(in_planes):]))
    photons_tgt = im.photons(signal_tgt, tgt_planes)
    clock.lap("optics")

    camera = Camera.from_config(cfg.camera)
    if cfg.task == "isotropic":
        # the residual axial blur acts on the padded field, so crop borders hold real context
        blurred = grid.crop(gaussian_filter1d(both[:len(in_planes)], residual_sigma(cfg), axis=1))
        inp, photons_tgt = _isotropic_slices(cfg, camera, im.photons(blurred, in_planes), photons_in,
                                             im.rng["noise"])
    else:
        inp = camera.capture(photons_in, im.rng["noise"])
    clean = camera.expected(photons_tgt)
    if cfg.task == "n2n":
        target = camera.capture(photons_tgt, im.rng["target"])
    elif cfg.target.noise == "high":
        target = _high_photon(camera, photons_tgt, cfg.target.photons / cfg.camera.photons,
                              im.rng["target"])
    else:
        target = clean
    clock.lap("camera")
    if cfg.ndim == 2:
        inp, target, clean = inp[0], target[0], clean[0]
    inp, target, clean = (np.ascontiguousarray(a, dtype=np.float32) for a in (inp, target, clean))
    return Pair(inp, target, clean, im.truth if keep_truth else None)


@dataclass(frozen=True)
class Volume:
    """An acquired anisotropic stack and its isotropically sampled reference.

    acquired : camera ADU, (nz, ny, nx), plane i at z = i·k·pixel (the input of every 3D task).
    reference : noise-free expected ADU, ((nz − 1)·k + 1, ny, nx), plane j at z = j·pixel: for
        ``isotropic`` configs the sample through an isotropic Gaussian PSF with the lateral
        FWHM (what the microscope would record if its axial resolution equalled its lateral
        one), otherwise through the microscope's own PSF.
    """

    acquired: np.ndarray
    reference: np.ndarray


def simulate_volume(config: SimConfig, seed: int, index: int) -> Volume:
    """The :class:`Volume` of pair (seed, index) of a 3D config: same sample and same noise as
    :func:`simulate_pair`'s input (for every task but ``isotropic``, whose pair is slices)."""
    cfg = config
    if cfg.ndim != 3:
        raise ValueError("simulate_volume needs a 3D config")
    extra = ()
    if cfg.task == "isotropic":
        fxy = model_fwhm(cfg.optics)[1]
        extra = (convolve.narrow_key(fxy, fxy),)
    im = _image(cfg, seed, index, extra)
    grid = im.grid
    padded = convolve.detector_planes(im.spectrum, im.plan, 0, grid, grid.input_planes, crop=False)
    _calibrate(im, padded)
    photons_in = im.photons(grid.crop(padded) * np.float32(im.scale), grid.input_planes)
    reference = im.photons(im.signal(grid.iso_planes, which=len(extra)), grid.iso_planes)
    camera = Camera.from_config(cfg.camera)
    acquired = camera.capture(photons_in, im.rng["noise"])
    return Volume(np.ascontiguousarray(acquired, np.float32),
                  np.ascontiguousarray(camera.expected(reference), np.float32))


def make_pair(config: SimConfig, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of :func:`simulate_pair`: float32 arrays, target in input ADU."""
    p = simulate_pair(config, seed, index)
    return p.input, p.target


def _high_photon(camera: Camera, photons: np.ndarray, ratio: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A second acquisition with ``ratio`` × the light (unclipped, so it never saturates),
    mapped back into the input's photometric scale."""
    adu = replace(camera, bits=None, hot_pixels=0.0).capture(photons * ratio, rng)
    return camera.expected(camera.photons_from_expected(adu) / ratio)


def _isotropic_slices(cfg: SimConfig, camera: Camera, blurred: np.ndarray, photons: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training slices of the lateral-slice scheme: (input ADU, target photons), both
    (nz, (n_sub − 1)·k + 1, nx), the degraded axis being y (axis 1). ``blurred`` holds the
    lateral planes with the residual axial blur along y, ``photons`` the planes themselves."""
    k = cfg.sampling.z_factor
    acquired = camera.capture(blurred[:, ::k, :], rng)
    upsampled = interpolate_axis(acquired, k, axis=1, order=1)
    return upsampled, photons[:, :upsampled.shape[1], :]
