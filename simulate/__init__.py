"""synthcare's forward model: a physical simulator of a fluorescence microscope.

Data flow, one stage per module::

    phantoms  geometry primitives: filaments, ellipsoids, points (µm coordinates)
    library   the sample library built from them: microtubules, granules, beads, nuclei,
              cells, membranes, mitochondria, actin, and mixtures
    render    rasterise onto the fine truth grid (numba; render_cuda: numba CUDA)
    psf       PSF models; convolve: FFT convolution with a cached OTF
    sampling  pixel integration, focal planes, anisotropic z-steps
    camera    photons -> electrons -> ADU (camera_cuda: the same per-pixel kernel on a GPU)
    pairs     task-specific (input, target) pairs: make_pair(config, seed, index), and
              simulate_pairs(config, seed, indices) for a batch

Arrays are float32, axes ZYX or YX; lengths in µm; intensities in photons until the camera.
``device: cuda`` runs every stage on a GPU with cupy as the array module (:mod:`.backend`).
Never imports torch.
"""

import numba

from . import backend, camera, convolve, library, pairs, phantoms, psf, render, sampling
from .camera import Camera
from .config import Settings, SimConfig, load
from .config_io import (
    apply_overrides,
    field_names,
    list_presets,
    load_preset,
    preset_text,
    read_yaml,
    validate,
)
from .errors import ConfigError, SynthcareError
from .pairs import (
    Geometry,
    Pair,
    Volume,
    chunk_size,
    draw_geometry,
    make_pair,
    make_pairs,
    simulate_pair,
    simulate_pairs,
    simulate_volume,
)
from .sampling import interpolate_axis
from .tiff import atomic_write, ensure_writable, read_tiff, save_figure, versions, write_tiff


def set_threads(n: int) -> None:
    """Threads for the simulator's numba kernels and FFTs (e.g. 1 inside DataLoader workers)."""
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    backend.FFT_WORKERS = max(1, n)


__all__ = [
    "Camera",
    "ConfigError",
    "Geometry",
    "Pair",
    "Settings",
    "SimConfig",
    "SynthcareError",
    "Volume",
    "apply_overrides",
    "atomic_write",
    "backend",
    "camera",
    "chunk_size",
    "convolve",
    "draw_geometry",
    "ensure_writable",
    "field_names",
    "interpolate_axis",
    "library",
    "list_presets",
    "load",
    "load_preset",
    "make_pair",
    "make_pairs",
    "pairs",
    "phantoms",
    "preset_text",
    "psf",
    "read_tiff",
    "read_yaml",
    "render",
    "sampling",
    "save_figure",
    "set_threads",
    "simulate_pair",
    "simulate_pairs",
    "simulate_volume",
    "validate",
    "versions",
    "write_tiff",
]
