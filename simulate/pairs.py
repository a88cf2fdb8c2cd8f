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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType

import numpy as np

from . import backend, convolve, images, library, phantoms, render, tasks
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

    def to_host(self) -> Pair:
        """The pair as numpy arrays (copied from the GPU if the arrays are cupy's)."""
        t = None if self.truth is None else backend.to_host(self.truth)
        return Pair(*(backend.to_host(a) for a in (self.input, self.target, self.clean)), t)


def streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """The independent random generators of pair (seed, index)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    names = ("geometry", "noise", "target", "background")
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}


class _Clock:
    def __init__(self, timings: dict[str, float] | None, xp=np):
        self.timings, self.t, self.xp = timings, time.perf_counter(), xp

    def lap(self, stage: str) -> None:
        if self.timings is not None:
            if self.xp is not np:
                self.xp.cuda.get_current_stream().synchronize()  # GPU work is asynchronous
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now


def residual_sigma(cfg: SimConfig) -> float:
    """Residual blur (detector pixels) that turns the lateral PSF profile into the axial one,
    σ² = σ_z² − σ_xy² with σ from the model PSF's FWHMs (0 if the PSF is not elongated)."""
    fz, fxy = model_fwhm(cfg.optics)
    return float(np.sqrt(max(fz**2 - fxy**2, 0.0)) / _FWHM_PER_SIGMA / cfg.sampling.pixel)


@dataclass
class _Imaging:
    """A batch of samples, rendered and transformed once, ready to be imaged at any planes.
    Arrays are on the config's device and carry a leading batch axis."""

    cfg: SimConfig
    grid: Grid
    rng: list[dict[str, np.random.Generator]]
    fields: list[phantoms.SmoothField | None]
    spectrum: np.ndarray
    plan: convolve.Plan
    truth: np.ndarray
    xp: ModuleType = np
    scale: np.ndarray | float = 1.0  # (B, 1, 1, 1) photons per unit of the blurred truth
    _smooth: dict = field(default_factory=dict, repr=False)  # planes → the fields there

    def signal(self, planes: tuple[int, ...], which: int = 0, crop: bool = True):
        """Blurred, pixel-integrated photons (no background) at truth planes, with PSF ``which``:
        (B, planes, y, x)."""
        out = convolve.detector_planes(self.spectrum, self.plan, which, self.grid, planes, crop=crop)
        return out * self.scale

    def background(self, planes: tuple[int, ...]):
        """Background photons on the given planes: uniform part plus each sample's smooth random
        field (B, planes, ny, nx), or the uniform level alone."""
        level = self.cfg.sample.background * self.cfg.camera.photons
        if all(f is None for f in self.fields):
            return level
        if planes not in self._smooth:  # input and target often share their planes
            coords = self.grid.plane_coords(planes)
            self._smooth[planes] = np.stack([f(*coords) for f in self.fields]).astype(np.float32)
        return self.xp.asarray(level + self.cfg.sample.background_smooth * self.cfg.camera.photons
                               * self._smooth[planes])

    def photons(self, signal, planes: tuple[int, ...]):
        """Signal plus background, never negative (FFT rounding leaves ~1e-7 negatives)."""
        return self.xp.maximum(signal + self.background(planes), 0)

    def calibrate(self, padded_input) -> None:
        """Set the photon scale: ``camera.photons`` at the brightest pixel of each input field."""
        peak = self.grid.crop(padded_input).max(axis=(1, 2, 3))  # (B, planes, y, x)
        safe = self.xp.where(peak > 0, peak, 1)
        scale = self.xp.where(peak > 0, self.cfg.camera.photons / safe, 0)
        self.scale = scale.astype(self.xp.float32).reshape(-1, 1, 1, 1)

    def noise(self, stream: str) -> list[np.random.Generator]:
        """The generators of one stream, one per pair of the batch."""
        return [r[stream] for r in self.rng]


@dataclass(frozen=True)
class Geometry:
    """The random sample of one pair, ready to render (:func:`draw_geometry`): a
    :class:`~simulate.phantoms.Sample` for the CPU, its prepared rendering inputs
    (:class:`~simulate.render_cuda.Prepared`, host arrays) for a GPU; and its smooth background."""

    sample: object
    field: phantoms.SmoothField | None


def draw_geometry(cfg: SimConfig, seed: int, index: int) -> Geometry:
    """The geometry of pair (seed, index): a pure function with its own random streams, so it
    can be drawn ahead of time in another process (the GPU trainer does, to keep the device fed)."""
    grid = Grid.from_config(cfg)
    rng = streams(seed, index)
    sample = library.sample(cfg.sample, grid.extent, rng["geometry"], slab=cfg.ndim == 2)
    field = (phantoms.SmoothField.draw(rng["background"], cfg.sample.background_scale)
             if cfg.sample.background_smooth > 0 else None)
    if cfg.device == "cuda":
        from .render_cuda import prepare

        sample = prepare(sample, grid.truth_shape, grid.truth_spacing)
    return Geometry(sample, field)


def _image(cfg: SimConfig, seed: int, indices: Sequence[int], extra_keys: tuple = (),
           clock: _Clock | None = None, geometry: Sequence[Geometry] | None = None) -> _Imaging:
    xp = backend.xp_for(cfg.device)
    clock = clock or _Clock(None, xp)
    grid = Grid.from_config(cfg)
    rng = [streams(seed, i) for i in indices]
    if geometry is None:
        geometry = [draw_geometry(cfg, seed, i) for i in indices]
    elif len(geometry) != len(indices):
        raise ValueError(f"{len(geometry)} geometries for {len(indices)} pairs")
    clock.lap("geometry")
    truth = render.render_batch([g.sample for g in geometry], grid.truth_shape,
                                grid.truth_spacing, xp)
    clock.lap("render")
    plan = convolve.plan((convolve.optics_key(cfg.optics, cfg.ndim), *extra_keys), grid)
    plan = convolve.on_device(plan, xp)
    spectrum = convolve.truth_spectrum(truth, plan, grid)
    clock.lap("fft")
    return _Imaging(cfg, grid, rng, [g.field for g in geometry], spectrum, plan, truth, xp)


def check(cfg: SimConfig) -> None:
    """Everything about a config that can be refused before simulating: the grid's size, the PSF
    (a measured PSF file is read and checked) and the folder of clean images. Raises
    :class:`~simulate.errors.SynthcareError` with one line; the PSF is cached for the run."""
    grid = Grid.from_config(cfg)
    convolve.plan((convolve.optics_key(cfg.optics, cfg.ndim),), grid)
    if cfg.sample.images.folder:
        images.load_folder(cfg.sample.images.folder, tuple(cfg.shape), cfg.sample.images.units)


def simulate_pairs(config: SimConfig, seed: int, indices: Sequence[int], *,
                   keep_truth: bool = False, timings: dict[str, float] | None = None,
                   geometry: Sequence[Geometry] | None = None) -> Pair:
    """Pairs ``indices`` of the dataset ``seed``, simulated together: a :class:`Pair` whose
    arrays have a leading batch axis (one entry per index), on the config's device (numpy, or
    cupy for ``device: cuda``). Entry ``b`` equals :func:`simulate_pair` (config, seed,
    indices[b]) to float rounding: every pair keeps its own random streams. On a GPU a batch
    costs one set of FFTs and camera launches for all its pairs. ``geometry``: the pairs'
    :func:`draw_geometry`, if already drawn (e.g. in worker processes).
    """
    cfg = config
    xp = backend.xp_for(cfg.device)
    clock = _Clock(timings, xp)
    if len(indices) == 0:
        raise ValueError("indices must not be empty")
    if cfg.sample.images.folder:
        use = [images.uses_image(cfg.sample.images.fraction, seed, i) for i in indices]
        if any(use):
            return _with_images(cfg, seed, list(indices), use, geometry)
    task = tasks.spec(cfg.task)
    extra = ()
    if task.narrow_target:
        extra = (convolve.narrow_key(cfg.target.fwhm_xy or 2 * cfg.sampling.pixel,
                                     cfg.target.fwhm_z or 2 * cfg.sampling.pixel
                                     * cfg.sampling.z_factor),)
    im = _image(cfg, seed, indices, extra, clock, geometry)
    grid = im.grid
    in_planes = grid.input_planes
    n_in = len(in_planes)
    tgt_planes = grid.iso_planes if task.target_on_fine_z else in_planes
    both = convolve.detector_planes(im.spectrum, im.plan, 0, grid, in_planes + tgt_planes, crop=False)
    im.calibrate(both[:, :n_in])
    both *= im.scale
    photons_in = im.photons(grid.crop(both[:, :n_in]), in_planes)
    signal_tgt = (im.signal(in_planes, which=1) if task.narrow_target
                  else grid.crop(both[:, n_in:]))
    photons_tgt = im.photons(signal_tgt, tgt_planes)
    clock.lap("optics")

    camera = Camera.from_config(cfg.camera)
    if task.lateral_slices:
        # the residual axial blur acts on the padded field, so crop borders hold real context
        blurred = backend.ndimage(xp).gaussian_filter1d(both[:, :n_in], residual_sigma(cfg), axis=-2)
        inp, photons_tgt = _isotropic_slices(cfg, camera, im.photons(grid.crop(blurred), in_planes),
                                             photons_in, im.noise("noise"))
    else:
        inp = camera.capture(photons_in, im.noise("noise"))
    clean = camera.expected(photons_tgt)
    if task.second_exposure:
        target = camera.capture(photons_tgt, im.noise("target"))
    elif cfg.target.noise == "high":
        target = _high_photon(camera, photons_tgt, cfg.target.photons / cfg.camera.photons,
                              im.noise("target"))
    else:
        target = clean
    clock.lap("camera")
    if cfg.ndim == 2:
        inp, target, clean = inp[:, 0], target[:, 0], clean[:, 0]
    inp, target, clean = (xp.ascontiguousarray(a, dtype=xp.float32) for a in (inp, target, clean))
    return Pair(inp, target, clean, im.truth if keep_truth else None)


def _with_images(cfg: SimConfig, seed: int, indices: list[int], use: list[bool],
                 geometry: Sequence[Geometry] | None) -> Pair:
    """A batch where the pairs marked in ``use`` are semi-synthetic (:mod:`simulate.images`):
    those from the user's clean images through the camera, the rest from the library (no truth
    volumes: a user's image has none)."""
    xp = backend.xp_for(cfg.device)
    folder = images.load_folder(cfg.sample.images.folder, tuple(cfg.shape), cfg.sample.images.units)
    camera = Camera.from_config(cfg.camera)
    rng = [streams(seed, i) for i, u in zip(indices, use, strict=True) if u]
    crops = np.stack([images.expected_crop(folder, tuple(cfg.shape), r["geometry"]) for r in rng])
    if cfg.sample.images.units == "adu":
        photons = np.maximum(camera.photons_from_expected(crops), 0.0)
    else:
        photons = cfg.camera.photons * (cfg.sample.background + crops)
    photons = xp.asarray(photons[:, None].astype(np.float32))
    inp = camera.capture(photons, [r["noise"] for r in rng])
    clean = camera.expected(photons)
    if tasks.spec(cfg.task).second_exposure:
        target = camera.capture(photons, [r["target"] for r in rng])
    elif cfg.target.noise == "high":
        target = _high_photon(camera, photons, cfg.target.photons / cfg.camera.photons,
                              [r["target"] for r in rng])
    else:
        target = clean
    made = [xp.ascontiguousarray(a[:, 0], dtype=xp.float32) for a in (inp, target, clean)]
    rest = [i for i, u in zip(indices, use, strict=True) if not u]
    if not rest:
        return Pair(*made)
    library_cfg = cfg.model_copy(update={"sample": cfg.sample.model_copy(
        update={"images": cfg.sample.images.model_copy(update={"folder": None})})})
    geo = None if geometry is None else [g for g, u in zip(geometry, use, strict=True) if not u]
    other = simulate_pairs(library_cfg, seed, rest, geometry=geo)
    order = np.argsort(np.concatenate([np.flatnonzero(use), np.flatnonzero(~np.asarray(use))]))
    merged = [xp.concatenate([a, b])[xp.asarray(order)] for a, b in
              zip(made, (other.input, other.target, other.clean), strict=True)]
    return Pair(*merged)


def simulate_pair(config: SimConfig, seed: int, index: int, *, keep_truth: bool = False,
                  timings: dict[str, float] | None = None) -> Pair:
    """Simulate pair ``index`` of the dataset ``seed`` (see the module docstring for the tasks).

    Shapes: 2D configs give (ny, nx) images; 3D give (nz, ny, nx), except the ``upsample``
    target ((nz − 1)·k + 1 planes) and ``isotropic`` (lateral slices, rows cropped to
    (⌈ny/k⌉ − 1)·k + 1). ``timings``, if given, accumulates seconds per stage. Arrays are on
    the config's device (numpy, or cupy for ``device: cuda``).
    """
    p = simulate_pairs(config, seed, [index], keep_truth=keep_truth, timings=timings)
    return Pair(p.input[0], p.target[0], p.clean[0], None if p.truth is None else p.truth[0])


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
    if tasks.spec(cfg.task).narrow_reference:
        fxy = model_fwhm(cfg.optics)[1]
        extra = (convolve.narrow_key(fxy, fxy),)
    im = _image(cfg, seed, [index], extra)
    grid, xp = im.grid, im.xp
    padded = convolve.detector_planes(im.spectrum, im.plan, 0, grid, grid.input_planes, crop=False)
    im.calibrate(padded)
    photons_in = im.photons(grid.crop(padded) * im.scale, grid.input_planes)
    reference = im.photons(im.signal(grid.iso_planes, which=len(extra)), grid.iso_planes)
    camera = Camera.from_config(cfg.camera)
    acquired = camera.capture(photons_in, im.noise("noise"))
    return Volume(xp.ascontiguousarray(acquired[0], xp.float32),
                  xp.ascontiguousarray(camera.expected(reference)[0], xp.float32))


CHUNK_BYTES = 2 * 2**30  # device memory one chunk of pairs may take while it is simulated
MAX_CHUNK = 64  # pairs per chunk: enough to amortise launches, small enough to start fast


def chunk_size(cfg: SimConfig) -> int:
    """Pairs worth simulating together (:func:`simulate_pairs`) on the config's device: 1 on the
    CPU (no launch overhead to amortise), else as many as fit :data:`CHUNK_BYTES` (about 24
    bytes per voxel of the z-padded truth grid: the volume and its spectra), at most
    :data:`MAX_CHUNK`."""
    if cfg.device == "cpu":
        return 1
    grid = Grid.from_config(cfg)
    per_pair = 24 * grid.z_fft * grid.truth_shape[1] * grid.truth_shape[2]
    return int(max(1, min(MAX_CHUNK, CHUNK_BYTES // per_pair)))


def make_pair(config: SimConfig, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of :func:`simulate_pair`: float32 arrays, target in input ADU."""
    p = simulate_pair(config, seed, index)
    return p.input, p.target


def make_pairs(config: SimConfig, seed: int, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of :func:`simulate_pairs`: a batch of pairs, each array with a leading
    batch axis, on the config's device."""
    p = simulate_pairs(config, seed, indices)
    return p.input, p.target


def _high_photon(camera: Camera, photons, ratio: float, rng) -> np.ndarray:
    """A second acquisition with ``ratio`` × the light (unclipped, so it never saturates),
    mapped back into the input's photometric scale."""
    adu = replace(camera, bits=None, hot_pixels=0.0).capture(photons * ratio, rng)
    return camera.expected(camera.photons_from_expected(adu) / ratio)


def _isotropic_slices(cfg: SimConfig, camera: Camera, blurred, photons, rng):
    """Training slices of the lateral-slice scheme: (input ADU, target photons), both
    (B, nz, (n_sub − 1)·k + 1, nx), the degraded axis being y. ``blurred`` holds the lateral
    planes with the residual axial blur along y, ``photons`` the planes themselves."""
    k = cfg.sampling.z_factor
    acquired = camera.capture(blurred[..., ::k, :], rng)
    upsampled = interpolate_axis(acquired, k, axis=-2, order=1)
    return upsampled, photons[..., :upsampled.shape[-2], :]
