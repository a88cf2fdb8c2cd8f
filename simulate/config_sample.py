"""Sample settings: the structures of the library (:mod:`simulate.library`), each with its
physical sizes (µm), densities and their spreads, images used as the sample, and the mixture
that draws structure types per image. Part of the simulation settings (:mod:`simulate.config`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .config_io import Settings


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


# settings a mixture scales, per kind of factor
_DENSITY = ("density", "coverage", "fibres")
_BRIGHTNESS = ("brightness", "fibre_brightness")
_SIZE = ("radius", "length")


def draw_mixture(params: SampleConfig, rng: np.random.Generator) -> SampleConfig:
    """The settings of one image of a mixture: which listed types it shows (each with
    probability ``presence``, at least one) and, per shown type, log-uniform factors on its
    density, brightness and sizes. Unlisted types keep their settings."""
    mix = params.mixture
    types = list(mix.types)
    shown = rng.uniform(0, 1, len(types)) < mix.presence
    if not shown.any():
        shown[rng.integers(len(types))] = True
    update = {}
    for name, on in zip(types, shown, strict=True):
        s = getattr(params, name)
        f = np.exp(rng.uniform(*np.log([mix.density_range, mix.brightness_range, mix.size_range]).T))
        changes = {}
        for field in type(s).model_fields:
            v = getattr(s, field)
            if field in _DENSITY:
                changes[field] = 0.0 if not on else (min(1.0, v * f[0]) if field == "coverage"
                                                     else v * f[0])
            elif field in _BRIGHTNESS:
                changes[field] = v * f[1]
            elif field in _SIZE:
                changes[field] = v * f[2]
        update[name] = s.model_copy(update=changes)
    return params.model_copy(update=update)
