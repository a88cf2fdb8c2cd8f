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

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .config_io import Settings, apply_overrides, load_settings, validate
from .config_sample import SampleConfig
from .tasks import TASKS, spec

TaskName = Literal[tuple(TASKS)]  # the task table's names, one spelling


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


def load(preset: str | None = None, config: str | Path | None = None,
         overrides: list[str] | None = None) -> SimConfig:
    """The simulation a command line asks for (see :func:`load_settings`)."""
    return load_settings(SimConfig, preset, config, overrides)
