"""Semi-synthetic pairs: clean images of the user's own, passed through the camera model.

The CARE lecture names three sources of training data: acquired pairs, semi-synthetic pairs
(high-quality images degraded synthetically) and fully synthetic ones. With ``sample.images``
(a folder of clean 2D images: high-SNR acquisitions, averages of many frames, a public clean
set), a fraction ``sample.images.fraction`` of the pairs takes a random crop of one of them
(random file, position, flips and quarter turns), maps its 0.1th–99.9th percentiles to
0 … ``camera.photons`` above the configured background, and records it with the camera: the
crop is the expected image (it already went through the user's optics), the target is its
expected ADU. Which pairs do so is a pure function of (seed, index), like everything else.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .errors import SynthcareError
from .tiff import read_image

SUFFIXES = (".tif", ".tiff", ".png")


@functools.lru_cache(maxsize=4)
def load_folder(folder: str, shape: tuple[int, int], units: str = "range") -> tuple[np.ndarray, ...]:
    """The clean images of a folder as float32 arrays, scaled to [0, 1] (0.1th and 99.9th
    percentiles) for ``units`` "range", as they are for "adu" (``sample.images.units``); each at
    least ``shape``. One clear error for an
    empty folder, a file that is not a 2D image, or an image smaller than the training shape."""
    path = Path(folder)
    if not path.is_dir():
        raise SynthcareError(f"sample.images.folder {folder} is not a folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in SUFFIXES]
    if not images:
        others = f" (it holds {len(files)} other files, e.g. {files[0].name})" if files else ""
        raise SynthcareError(f"sample.images.folder {folder} holds no TIFF or PNG images{others}")
    out = []
    for p in images:
        try:
            a = np.squeeze(read_image(p)[0])
        except SynthcareError as exc:
            raise SynthcareError(f"sample.images: {exc}") from None
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
            raise SynthcareError(f"sample.images: {p.name} is not one 2D grey image (shape "
                                 f"{a.shape}, dtype {a.dtype})")
        if a.shape[0] < shape[0] or a.shape[1] < shape[1]:
            raise SynthcareError(f"sample.images: {p.name} is {a.shape[0]}×{a.shape[1]} pixels, "
                                 f"smaller than the training shape {shape[0]}×{shape[1]}: use "
                                 "larger images or a smaller shape")
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise SynthcareError(f"sample.images: {p.name} contains NaN or Inf")
        lo, hi = np.percentile(a, [0.1, 99.9])
        if hi <= lo:
            raise SynthcareError(f"sample.images: {p.name} is constant")
        out.append(np.clip((a - lo) / (hi - lo), 0, None).astype(np.float32) if units == "range"
                   else a.astype(np.float32))
    return tuple(out)


def uses_image(fraction: float, seed: int, index: int) -> bool:
    """Whether pair (seed, index) is made from a user image (its own random draw)."""
    if fraction >= 1:
        return True
    if fraction <= 0:
        return False
    return bool(np.random.default_rng([int(seed), int(index), 0x1A6E]).random() < fraction)


def expected_crop(images: tuple[np.ndarray, ...], shape: tuple[int, int],
                  rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``shape`` from a random image, randomly flipped and turned (square
    crops), float64 in [0, ~1]."""
    a = images[int(rng.integers(len(images)))]
    y = int(rng.integers(a.shape[0] - shape[0] + 1))
    x = int(rng.integers(a.shape[1] - shape[1] + 1))
    c = a[y:y + shape[0], x:x + shape[1]].astype(np.float64)
    flips = rng.random(2) < 0.5
    c = c[::-1] if flips[0] else c
    c = c[:, ::-1] if flips[1] else c
    if shape[0] == shape[1]:
        c = np.rot90(c, int(rng.integers(4)))
    return np.ascontiguousarray(c)
