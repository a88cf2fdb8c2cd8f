"""Typed, validated simulation settings.

Every physical setting of the forward model is a field of a pydantic model with its unit in the
description and its allowed range in the type, so a bad value fails before any work starts with a
message that names it. Settings load from YAML or JSON, are addressed by dotted names
(``optics.na``, ``camera.photons``) on the command line and in study sweeps, and are written next to
every dataset and checkpoint so any result can be regenerated.

Units: lengths (wavelengths included) in micrometres; intensities in photons until the camera;
``shape`` is the detector grid, ``(z, y, x)`` for 3D or ``(y, x)`` for 2D.
"""

from __future__ import annotations

import difflib
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .tasks import TASKS, spec

TaskName = Literal[tuple(TASKS)]  # the task table's names, one spelling


class Settings(BaseModel):
    """Base of every settings model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Microtubules(Settings):
    """Smooth random filaments (worm-like chains) crossing the volume."""

    density: float = Field(0.4, ge=0, description="filament length per volume, µm/µm³ (3D) or "
                           "per image area, µm/µm² (2D); 0 disables")
    persistence: float = Field(15.0, gt=0, description="persistence length, µm")
    brightness: float = Field(1.0, ge=0, description="mean brightness per µm of filament (relative)")
    brightness_spread: float = Field(0.3, ge=0, le=3, description="coefficient of variation of "
                                     "the brightness between filaments")


class Granules(Settings):
    """Spheres or ellipsoids (granules, vesicles), optionally hollow and clustered."""

    density: float = Field(0.02, ge=0, description="granules per µm³ (3D) or per µm² (2D); 0 disables")
    radius: float = Field(0.2, gt=0, description="mean radius, µm")
    radius_spread: float = Field(0.3, ge=0, le=2, description="coefficient of variation of the radius")
    aspect: float = Field(1.0, ge=1, le=10, description="largest axis ratio of the ellipsoids (1: spheres)")
    hollow: float = Field(0.0, ge=0, le=1, description="fraction of granules that are hollow shells")
    shell: float = Field(0.05, gt=0, description="shell thickness of hollow granules, µm")
    brightness: float = Field(3.0, ge=0, description="mean total brightness of one granule (relative "
                              "to a filament's brightness per µm)")
    brightness_spread: float = Field(0.3, ge=0, le=3, description="coefficient of variation")
    cluster_size: float = Field(1.0, ge=1, description="mean granules per cluster (1: no clustering)")
    cluster_radius: float = Field(1.0, gt=0, description="rms distance of a granule to its cluster "
                                  "centre, µm")


class Beads(Settings):
    """Sub-resolution point sources."""

    density: float = Field(0.0, ge=0, description="beads per µm³ (3D) or per µm² (2D); 0 disables")
    brightness: float = Field(3.0, ge=0, description="mean total brightness of one bead (relative)")
    brightness_spread: float = Field(0.0, ge=0, le=3, description="coefficient of variation")


class Nuclei(Settings):
    """Cell nuclei: flattened ellipsoids with chromatin texture and nucleoli, lying flat (random
    in-plane orientation); neighbours touch and overlap where they cluster."""

    density: float = Field(0.0, ge=0, description="nuclei per µm³ (3D) or per µm² (2D); 0 disables")
    radius: float = Field(5.0, gt=0, description="mean lateral semi-axis, µm (nuclei 5–20 µm across)")
    radius_spread: float = Field(0.2, ge=0, le=2, description="coefficient of variation of the radius")
    aspect: float = Field(1.3, ge=1, le=5, description="largest ratio of the two lateral axes")
    height: float = Field(0.6, gt=0, le=2, description="axial semi-axis / lateral radius (< 1: flat)")
    brightness: float = Field(1.0, ge=0, description="mean brightness per µm³ (relative)")
    brightness_spread: float = Field(0.3, ge=0, le=3, description="coefficient of variation")
    texture: float = Field(0.3, ge=0, le=1, description="fraction of a nucleus's brightness in "
                           "chromatin spots (sub-resolution points)")
    texture_density: float = Field(3.0, gt=0, le=100, description="chromatin spots per µm³")
    nucleoli: float = Field(1.5, ge=0, le=10, description="mean number of nucleoli per nucleus")
    nucleolus_radius: float = Field(0.2, gt=0, le=0.5, description="nucleolus radius / nucleus radius")
    nucleolus_contrast: float = Field(-0.6, ge=-1, le=5, description="brightness per µm³ a nucleolus "
                                      "adds, relative to its nucleus's (−1: a dark hole)")
    cluster_size: float = Field(1.0, ge=1, description="mean nuclei per cluster (1: no clustering)")


class Cells(Settings):
    """Whole cells (cytoplasm): large soft blobs made of a few overlapping lobes with fuzzy edges."""

    density: float = Field(0.0, ge=0, description="cells per µm³ (3D) or per µm² (2D); 0 disables")
    radius: float = Field(10.0, gt=0, description="mean lateral radius of a cell, µm")
    radius_spread: float = Field(0.3, ge=0, le=2, description="coefficient of variation of the radius")
    height: float = Field(0.3, gt=0, le=2, description="axial semi-axis / lateral radius (< 1: flat)")
    lobes: float = Field(2.5, ge=1, le=12, description="mean number of overlapping lobes per cell")
    softness: float = Field(0.4, ge=0, lt=1, description="width of the fuzzy edge / radius")
    brightness: float = Field(1.0, ge=0, description="mean brightness per µm³ (relative)")
    brightness_spread: float = Field(0.5, ge=0, le=3, description="coefficient of variation")
    texture: float = Field(0.15, ge=0, le=1, description="fraction of the brightness in "
                           "sub-resolution puncta")
    texture_density: float = Field(4.0, gt=0, le=100, description="puncta per µm³")


class Membranes(Settings):
    """Membranes of packed cells (a tissue): the faces (3D) or edges (2D) of a Voronoi
    tessellation of jittered lattice seeds, thin and closed around every cell."""

    coverage: float = Field(0.0, ge=0, le=1, description="fraction of the field covered by tissue "
                            "(1: everywhere); 0 disables")
    radius: float = Field(4.0, gt=0, description="mean cell radius, µm")
    irregularity: float = Field(0.5, ge=0, le=1, description="jitter of the cell centres (0: a "
                                "regular lattice, 1: irregular)")
    brightness: float = Field(1.0, ge=0, description="mean brightness per µm (2D) or per µm² (3D) "
                              "of membrane")
    brightness_spread: float = Field(0.4, ge=0, le=3, description="coefficient of variation between "
                                     "membranes")
    patch_scale: float = Field(5.0, gt=0, description="size of the tissue patches, in cell radii "
                               "(where coverage < 1)")
    fill: float = Field(0.0, ge=0, description="brightness per µm³ of the cells' interiors (the "
                        "cytoplasm), relative to the membranes' brightness; 0: dark interiors")


class Mitochondria(Settings):
    """Short thick curved tubes (mitochondria; also rod-shaped bacteria): worm-like chains
    rendered as overlapping spheres, lying near the focal plane in 2D."""

    density: float = Field(0.0, ge=0, description="tubes per µm³ (3D) or per µm² (2D); 0 disables")
    length: float = Field(2.0, gt=0, description="mean tube length, µm")
    length_spread: float = Field(0.5, ge=0, le=3, description="coefficient of variation of the length")
    radius: float = Field(0.15, gt=0, description="mean tube radius, µm")
    radius_spread: float = Field(0.2, ge=0, le=2, description="coefficient of variation of the radius")
    persistence: float = Field(3.0, gt=0, description="persistence length (stiffness), µm")
    brightness: float = Field(3.0, ge=0, description="mean brightness per µm of tube (relative)")
    brightness_spread: float = Field(0.3, ge=0, le=3, description="coefficient of variation")
    texture: float = Field(0.0, ge=0, le=1, description="fraction of the brightness in puncta inside "
                           "the tubes (nucleoids, foci)")


class Actin(Settings):
    """Actin: a dense mesh of fine flexible filaments and straight, aligned, brighter stress
    fibres."""

    density: float = Field(0.0, ge=0, description="mesh filament length per µm³ (3D) or per µm² "
                           "(2D), µm; 0 disables the mesh")
    persistence: float = Field(3.0, gt=0, description="persistence length of mesh filaments, µm")
    brightness: float = Field(1.0, ge=0, description="mean brightness per µm of mesh filament")
    brightness_spread: float = Field(0.3, ge=0, le=3, description="coefficient of variation")
    fibres: float = Field(0.0, ge=0, description="stress-fibre length per µm³ (3D) or per µm² (2D), "
                          "µm; 0 disables")
    fibre_brightness: float = Field(4.0, ge=0, description="mean brightness per µm of stress fibre")
    fibre_persistence: float = Field(1000.0, gt=0, description="persistence length of fibres, µm "
                                     "(straight over a field)")
    alignment: float = Field(0.8, ge=0, le=1, description="how parallel the fibres of one image are "
                             "(0: random directions, 1: all along one direction)")


class Images(Settings):
    """Semi-synthetic samples: clean images of your own (high-SNR acquisitions, averages, a
    public clean set) used as the expected image of a pair and passed through the camera model
    (2D denoise and n2n tasks)."""

    folder: str | None = Field(None, description="folder of clean 2D TIFF/PNG images, each at least "
                               "as large as shape; None: library samples only")
    fraction: float = Field(1.0, ge=0, le=1, description="fraction of the pairs made from these "
                            "images (the rest from the library structures set here)")
    units: Literal["range", "adu"] = Field(
        "range", description="range: each image's 0.1th-99.9th percentiles become 0 ... "
        "camera.photons above sample.background; adu: the images are expected camera values "
        "(ADU) of this config's camera, e.g. a denoised frame of the same camera, used as they are")


LIBRARY = ("microtubules", "granules", "beads", "nuclei", "cells", "membranes", "mitochondria",
           "actin")


class Mixture(Settings):
    """Generalist samples: each image draws which structure types it shows and how dense,
    bright and large they are, around the settings of each type."""

    types: tuple[Literal["microtubules", "granules", "beads", "nuclei", "cells", "membranes",
                         "mitochondria", "actin"], ...] = Field(
        (), description="structure types to draw from per image (each needs its density or "
        "coverage > 0); empty: no mixture, every type as set")
    presence: float = Field(0.5, gt=0, le=1, description="probability that a listed type appears "
                            "in an image (at least one always does)")
    density_range: tuple[float, float] = Field((0.3, 3.0), description="range of the factor on a "
                                               "type's density (log-uniform)")
    brightness_range: tuple[float, float] = Field((0.3, 3.0), description="range of the factor on "
                                                  "a type's brightness (log-uniform)")
    size_range: tuple[float, float] = Field((0.7, 1.4), description="range of the factor on a "
                                            "type's sizes (radii, lengths; log-uniform)")

    @field_validator("density_range", "brightness_range", "size_range")
    @classmethod
    def _range_ok(cls, r: tuple[float, float]) -> tuple[float, float]:
        if not 0 < r[0] <= r[1]:
            raise ValueError(f"must be (low, high) with 0 < low <= high, got {list(r)}")
        return r


class SampleConfig(Settings):
    """The ground-truth sample: structures of the library (:mod:`simulate.library`) plus
    background. Every type is off (density 0) unless set; ``mixture`` draws types per image."""

    microtubules: Microtubules = Microtubules()
    granules: Granules = Granules()
    beads: Beads = Beads()
    nuclei: Nuclei = Nuclei()
    cells: Cells = Cells()
    membranes: Membranes = Membranes()
    mitochondria: Mitochondria = Mitochondria()
    actin: Actin = Actin()
    mixture: Mixture = Mixture()
    images: Images = Images()
    background: float = Field(0.02, ge=0, description="uniform background, as a fraction of "
                              "camera.photons per pixel")
    background_smooth: float = Field(0.0, ge=0, description="amplitude of a smooth random background, "
                                     "fraction of camera.photons per pixel")
    background_scale: float = Field(5.0, gt=0, description="length scale of the smooth background, µm")
    thickness: float | None = Field(None, gt=0, description="sample thickness along z, µm. 2D: the slab "
                                    "around the focal plane (default 1.0). 3D: default the stack "
                                    "depth; a larger value extends the sample above and below")

    @model_validator(mode="after")
    def _mixture_types_on(self) -> SampleConfig:
        off = [t for t in self.mixture.types if not structure_on(self, t)]
        if off:
            raise ValueError(f"mixture.types lists {', '.join(off)}, but its density (coverage for "
                             "membranes) is 0: set it, it is the centre of the mixture's range")
        return self


def structure_on(sample: SampleConfig, name: str) -> bool:
    """Whether structure type ``name`` of the library is switched on in ``sample``."""
    s = getattr(sample, name)
    if name == "membranes":
        return s.coverage > 0
    if name == "actin":
        return s.density > 0 or s.fibres > 0
    return s.density > 0


class OpticsConfig(Settings):
    """The objective and the PSF model."""

    psf: Literal["gaussian", "widefield", "confocal", "lightsheet", "measured"] = "widefield"
    ni: float = Field(1.33, ge=1.0, le=2.0, description="immersion refractive index")
    na: float = Field(1.2, gt=0, description="numerical aperture; must be below ni")
    wavelength: float = Field(0.52, gt=0.2, lt=2.0, description="emission wavelength, µm")
    excitation_wavelength: float = Field(0.488, gt=0.2, lt=2.0, description="excitation wavelength, "
                                         "µm (confocal)")
    pinhole_au: float = Field(1.0, ge=0, le=20, description="confocal pinhole diameter, Airy units")
    sheet_fwhm: float = Field(1.5, gt=0, description="light-sheet intensity FWHM along z, µm")
    psf_file: str | None = Field(None, description="TIFF with a measured PSF (psf: measured)")
    psf_file_spacing: tuple[float, ...] | None = Field(
        None, description="voxel size of psf_file, µm, (dz, dy, dx) or (dy, dx); default: its "
        "ImageJ metadata")

    @field_validator("na")
    @classmethod
    def _na_below_ni(cls, na: float, info: ValidationInfo) -> float:
        ni = info.data.get("ni")
        if ni is not None and na >= ni:
            raise ValueError(f"na must be smaller than the immersion index ni = {ni}, got {na}")
        return na

    @model_validator(mode="after")
    def _file_for_measured(self) -> OpticsConfig:
        if self.psf == "measured" and not self.psf_file:
            raise ValueError("psf = 'measured' needs optics.psf_file (a 2D or 3D TIFF)")
        return self


class SamplingConfig(Settings):
    """Detector sampling and the fine truth grid."""

    pixel: float = Field(0.1, gt=0, le=10, description="lateral detector pixel size in the sample, µm")
    z_factor: int = Field(2, ge=1, le=20, description="z-step as a multiple of the pixel (anisotropy k)")
    oversample: int | None = Field(None, ge=1, le=8, description="truth voxels per detector pixel, "
                                   "laterally (default: the smallest >= 2 that resolves the OTF)")
    oversample_z: int | None = Field(None, ge=1, le=8, description="truth planes per pixel length "
                                     "along z: the truth z spacing is pixel / oversample_z (default: "
                                     "the smallest that resolves the axial OTF)")
    margin: float | None = Field(None, ge=0, description="sample rendered beyond each lateral edge, µm "
                                 "(default: 4 λ/NA, at least 1 µm)")


MAX_CORRELATION = 0.4  # neighbour correlation of the camera's noise, either sign


class CameraConfig(Settings):
    """Photon budget and camera (see :class:`simulate.camera.Camera`)."""

    photons: float = Field(20.0, gt=0, description="expected photons at the brightest pixel of the "
                           "blurred, pixel-integrated image, before QE")
    qe: float = Field(0.8, gt=0, le=1, description="quantum efficiency")
    gain: float = Field(1.0, gt=0, description="ADU per electron (at the output amplifier)")
    offset: float = Field(100.0, ge=0, description="offset, ADU")
    read_noise: float = Field(1.5, ge=0, description="read noise, e⁻ rms")
    dark: float = Field(0.0, ge=0, description="dark current plus clock-induced charge, e⁻/pixel/frame")
    em_gain: float | None = Field(None, ge=1, description="EM gain (EMCCD); None: no EM register")
    em_spread: float = Field(1.0, gt=0, le=1, description="relative variance of one electron's "
                             "multiplied output: 1 an EMCCD's register (excess noise F² = 2), "
                             "~0.1 a PMT or HyD (F² = 1 + em_spread)")
    bits: int = Field(16, ge=1, le=32, description="bit depth; ADU are clipped to [0, 2^bits - 1]")
    hot_pixels: float = Field(0.0, ge=0, lt=1, description="fraction of hot pixels")
    hot_level: float = Field(500.0, ge=0, description="mean extra dark signal of a hot pixel, e⁻/frame")
    photon_counting: bool = Field(False, description="point-detector mode: ADU = detected electrons, "
                                  "no read noise, gain or offset")
    pattern_seed: int = Field(0, ge=0, description="seed of the camera's fixed pattern (hot pixels)")
    maps: str | None = Field(None, description="sCMOS per-pixel maps: an .npz with any of 'gain', "
                             "'offset', 'read_noise', each (ny, nx) like the detector")
    correlation: tuple[float, float] = Field(
        (0.0, 0.0), description="correlation of the noise between neighbouring pixels along (y, x), "
        "each in [-0.4, 0.4]: read-out electronics make it (a scanning detector's bandwidth along "
        "its line, an amplifier's undershoot); synthcare fit measures it")

    @field_validator("correlation")
    @classmethod
    def _correlation_ok(cls, rho: tuple[float, float]) -> tuple[float, float]:
        if not all(abs(r) <= MAX_CORRELATION for r in rho):
            raise ValueError(f"each must be in [-{MAX_CORRELATION}, {MAX_CORRELATION}], got {rho}")
        return rho

    @property
    def excess(self) -> float:
        """Excess noise factor F² of the electron multiplication: 1 + em_spread with an EM gain,
        1 without (variance = F² × mean, in detected electrons)."""
        return 1.0 + self.em_spread if self.em_gain else 1.0


class TargetConfig(Settings):
    """How training targets are made (and, for deconvolution, the network's input)."""

    noise: Literal["none", "high"] = Field("none", description="'none': the noise-free expected image; "
                                           "'high': a second acquisition at target.photons")
    photons: float = Field(1000.0, gt=0, description="photons at the brightest pixel for noise: high")
    fwhm_xy: float | None = Field(None, gt=0, description="lateral FWHM of the narrow deconvolution "
                                  "target PSF, µm (default 2 pixels)")
    fwhm_z: float | None = Field(None, gt=0, description="axial FWHM of the deconvolution target PSF, "
                                 "µm (default 2 z-steps)")
    wiener: float | None = Field(None, gt=0, lt=1, description="deconvolve: the network's input is "
                                 "the stack Wiener-filtered with the microscope's PSF, this being "
                                 "the regularisation λ (OTF peak 1); None: the raw stack")


class SimConfig(Settings):
    """Everything that defines a simulated pair, except the (seed, index) that draws it."""

    task: TaskName = "denoise"
    shape: tuple[int, ...] = Field((128, 128), description="detector grid, (z, y, x) or (y, x), pixels")
    seed: int = Field(0, ge=0, description="default seed of a dataset (pair = f(config, seed, index))")
    sample: SampleConfig = SampleConfig()
    optics: OpticsConfig = OpticsConfig()
    sampling: SamplingConfig = SamplingConfig()
    camera: CameraConfig = CameraConfig()
    target: TargetConfig = TargetConfig()
    device: Literal["cpu", "cuda"] = Field("cpu", description="where pairs are simulated: cpu "
                                           "(numpy, numba) or cuda (cupy, numba CUDA kernels; "
                                           "needs the gpu extra); the same pairs either way, to "
                                           "float rounding")

    @field_validator("shape")
    @classmethod
    def _shape_ok(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) not in (2, 3):
            raise ValueError(f"shape must have 2 (y, x) or 3 (z, y, x) entries, got {len(shape)}")
        if any(n < 1 for n in shape):
            raise ValueError(f"every entry of shape must be at least 1, got {list(shape)}")
        if min(shape[-2:]) < 8:
            raise ValueError(f"shape's y and x must be at least 8 pixels, got {list(shape)}")
        return shape

    @model_validator(mode="after")
    def _task_fits(self) -> SimConfig:
        task = spec(self.task)
        if task.anisotropic:
            if len(self.shape) != 3 or self.shape[0] < 2:
                raise ValueError(f"task '{self.task}' needs a 3D shape (z, y, x) with z >= 2, "
                                 f"got {list(self.shape)}")
            if self.sampling.z_factor < 2:
                raise ValueError(f"task '{self.task}' needs sampling.z_factor >= 2 "
                                 f"(got {self.sampling.z_factor})")
        if self.sample.images.folder and (not task.user_images or self.ndim != 2):
            able = " and ".join(t.name for t in TASKS.values() if t.user_images)
            raise ValueError(f"sample.images (semi-synthetic pairs) works with 2D {able} tasks, "
                             f"not task '{self.task}' with a {self.ndim}D shape")
        if self.target.wiener is not None and not task.narrow_target:
            raise ValueError(f"target.wiener (a Wiener-filtered input) is for task 'deconvolve', "
                             f"not '{self.task}'")
        return self

    @model_validator(mode="after")
    def _truth_resolves_optics(self) -> SimConfig:
        self.oversampling()
        return self

    def oversampling(self) -> tuple[int, int]:
        """(lateral, axial) truth oversampling: the configured values, or the smallest that
        resolve the OTF. The PSF is sampled point-wise on the truth grid, which is exact only if
        the grid's Nyquist frequency exceeds the OTF cutoff (by a margin, :data:`RESOLVE`)."""
        kz, kxy = otf_cutoffs(self.optics)
        pixel = self.sampling.pixel
        need = (math.ceil(pixel * 2 * RESOLVE * kxy - 1e-9), math.ceil(pixel * 2 * RESOLVE * kz - 1e-9))
        given = (self.sampling.oversample, self.sampling.oversample_z)
        for name, g, n in zip(("oversample", "oversample_z"), given, need, strict=True):
            if g is not None and g < n:
                raise ValueError(f"sampling.{name} = {g} is too coarse for these optics: the truth "
                                 f"grid must resolve the OTF, so use at least {n} (or leave it unset)")
        return (given[0] if given[0] is not None else max(2, need[0]),
                given[1] if given[1] is not None else max(1, need[1]))

    @property
    def ndim(self) -> int:
        """2 or 3: the dimensionality of the detector images."""
        return len(self.shape)

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """Validate a (nested) dict, raising :class:`ConfigError` with readable messages."""
        return validate(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimConfig:
        """Load a YAML or JSON file (a ``train:`` section, if present, is ignored here)."""
        return load_settings(cls, config=path)

    @classmethod
    def from_preset(cls, name: str) -> SimConfig:
        """One of the built-in presets (see :func:`list_presets`)."""
        return load_settings(cls, preset=name)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-compatible dict."""
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Write (if ``path``) and return the YAML text of this configuration."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> SimConfig:
        """A copy with dotted-name settings applied, e.g. ``["optics.na=1.0", "shape=[16,64,64]"]``."""
        return self.from_dict(apply_overrides(self.to_dict(), overrides, type(self)))


# ---------------------------------------------------------------------------------------------
RESOLVE = 1.25  # the truth grid's Nyquist frequency must exceed the OTF cutoff by this factor


def otf_cutoffs(optics: OpticsConfig) -> tuple[float, float]:
    """(axial, lateral) cutoff frequencies of the OTF, cycles/µm: 2·NA/λ laterally and
    (n − √(n² − NA²))/λ axially for widefield detection; a confocal adds its excitation's, a
    light sheet its sheet's (2/FWHM)."""
    def det(lam: float) -> tuple[float, float]:
        return ((optics.ni - math.sqrt(optics.ni**2 - optics.na**2)) / lam, 2 * optics.na / lam)

    kz, kxy = det(optics.wavelength)
    if optics.psf == "confocal":
        ez, exy = det(optics.excitation_wavelength)
        kz, kxy = kz + ez, kxy + exy
    elif optics.psf == "lightsheet":
        kz += 2.0 / optics.sheet_fwhm
    return kz, kxy


def validate(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate ``data`` against ``model``; turn pydantic's errors into one :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a mapping of settings, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted name of the setting."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        got = err.get("input")
        quiet = isinstance(got, dict) or err["type"] == "extra_forbidden" or "got " in msg
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"{loc}: {msg}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """All dotted setting names of a model, leaves only (``optics.na``, ``camera.photons``, ...)."""
    names = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            names += field_names(sub, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``"a.b=value"``; the value is parsed as YAML (``1.0``, ``[16,64,64]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"--set expects name=value (e.g. optics.na=1.0), got {item!r}")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r}: {exc}") from None
    return key.strip(), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any],
                    model: type[BaseModel] = SimConfig) -> dict[str, Any]:
    """Apply dotted-name overrides to a nested dict; an unknown name raises :class:`ConfigError`."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    known = field_names(model)
    groups = {n.rsplit(".", 1)[0] for n in known if "." in n}
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for key, value in items:
        if key not in known and key not in groups:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown setting '{key}'{hint} (see `synthcare presets --fields`)")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def camera_overrides(path: str | Path) -> list[str]:
    """``--set`` overrides for the camera settings in a YAML file (its ``camera:`` mapping, as
    ``synthcare calibrate`` writes, or a bare mapping of camera settings)."""
    data = read_yaml(path)
    cam = data.get("camera", data)
    if not isinstance(cam, dict) or not cam:
        raise ConfigError(f"{path} holds no camera settings (expected a 'camera:' mapping)")
    return [f"camera.{k}={json.dumps(v)}" for k, v in cam.items()]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML/JSON mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    files = resources.files("simulate").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a built-in preset."""
    if name not in list_presets():
        close = difflib.get_close_matches(name, list_presets(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint}; known: {', '.join(list_presets())}")
    return resources.files("simulate").joinpath("presets", f"{name}.yaml").read_text()


def load_preset(name: str) -> dict[str, Any]:
    """The raw settings of a built-in preset (a dict; may include a ``train`` section)."""
    return yaml.safe_load(preset_text(name))


def load_settings(model: type[BaseModel], preset: str | None = None,
                  config: str | Path | None = None, overrides: list[str] | None = None) -> Any:
    """The settings a command line asks for, as ``model``: ``--preset`` or ``--config``, then
    ``--set`` overrides, applied to the raw settings before one validation (so a setting derived
    from others, left unset, is derived from the overridden values). A ``train:`` section is
    dropped for a model without one."""
    if preset and config:
        raise ConfigError("give either --preset or --config, not both")
    if config:
        data = read_yaml(config)
    elif preset:
        data = load_preset(preset)
    else:
        raise ConfigError(f"give --preset NAME (one of {', '.join(list_presets())}) or --config FILE")
    if "train" not in model.model_fields:
        data.pop("train", None)
    return validate(model, apply_overrides(data, overrides or [], model))


def load(preset: str | None = None, config: str | Path | None = None,
         overrides: list[str] | None = None) -> SimConfig:
    """The simulation a command line asks for (see :func:`load_settings`)."""
    return load_settings(SimConfig, preset, config, overrides)
