"""synthcare's forward model: a physical simulator of a fluorescence microscope.

Data flow, one stage per module::

    phantoms  random filaments, granules, beads (µm coordinates)
    render    rasterise onto the fine truth grid (numba)
    psf       PSF models; convolve: FFT convolution with a cached OTF
    sampling  pixel integration, focal planes, anisotropic z-steps
    camera    photons -> electrons -> ADU
    pairs     task-specific (input, target) pairs: make_pair(config, seed, index)

Arrays are float32, axes ZYX or YX; lengths in µm; intensities in photons until the camera.
Never imports torch.
"""

from . import camera, convolve, pairs, phantoms, psf, render, sampling
from .camera import Camera
from .config import SimConfig, list_presets, load
from .errors import ConfigError, SynthcareError
from .pairs import Pair, make_pair, simulate_pair

__all__ = [
    "Camera",
    "ConfigError",
    "Pair",
    "SimConfig",
    "SynthcareError",
    "camera",
    "convolve",
    "list_presets",
    "load",
    "make_pair",
    "pairs",
    "phantoms",
    "psf",
    "render",
    "sampling",
    "simulate_pair",
]
