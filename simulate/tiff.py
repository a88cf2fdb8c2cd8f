"""Files, the package's leaf: TIFF read/write with the voxel size (ImageJ metadata), other
image formats, atomic writes and figures, the library versions a run records. It imports
nothing of the package but its errors, so every physics module may use it without a circle.
"""

from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import tifffile

from .errors import SynthcareError


def versions() -> dict[str, str]:
    """Versions of synthcare and the libraries that shape its numbers."""
    out = {}
    for name in ("synthcare", "numpy", "scipy", "numba", "tifffile", "pydantic", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _umask() -> int:
    """The process's umask (read by setting it and back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig, path: str | Path, dpi: int = 90) -> Path:
    """Save a matplotlib figure as PNG atomically (a reader never sees half a file), then close
    it. The caller has checked ``path`` (see :mod:`simulate.paths`)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
    return path


IMAGEJ_ORDER = "TZCYX"


def write_tiff(path: str | Path, image: np.ndarray, spacing: tuple[float, ...], *,
               axes: str | None = None, dtype=None, info: str | None = None) -> str:
    """Write an ImageJ TIFF with the voxel size (µm) atomically. ``spacing`` is (dz, dy, dx) or
    (dy, dx); ``axes`` defaults to ZYX / YX. Axes out of ImageJ's order (e.g. the YXC of an RGB
    input's channels) are transposed into it; ``info``: text for ImageJ's Info property (what
    the file holds). Returns the axes written."""
    image = np.asarray(image, dtype=dtype or np.float32)
    axes = (axes or ("ZYX" if image.ndim == 3 else "YX")).upper()
    if set(axes) <= set(IMAGEJ_ORDER) and len(axes) == image.ndim:
        order = sorted(range(len(axes)), key=lambda i: IMAGEJ_ORDER.index(axes[i]))
        image, axes = np.transpose(image, order), "".join(axes[i] for i in order)
    meta = {"axes": axes, "unit": "um", **({"Info": info} if info else {})}
    if len(spacing) == 3:
        meta["spacing"] = float(spacing[0])
    dy, dx = spacing[-2:]
    atomic_write(Path(path), lambda tmp: tifffile.imwrite(
        tmp, image, imagej=True, resolution=(1.0 / dx, 1.0 / dy), metadata=meta))
    return axes


_UNITS_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
             "micrometer": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def ome_spacing(tif: tifffile.TiffFile) -> tuple[float, ...] | None:
    """Voxel size in µm from an OME-TIFF's ``Pixels`` element (``PhysicalSizeZ/Y/X`` and their
    units, µm by default); None if it has none or an unknown unit."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tif.ome_metadata)
    except (ET.ParseError, TypeError):
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            if axis == "Z":
                continue
            return None
        factor = _UNITS_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm").strip().lower())
        if factor is None:
            return None
        sizes.append(factor * float(value))
    return tuple(sizes)


def tiff_spacing(tif: tifffile.TiffFile) -> tuple[float, ...] | None:
    """Voxel size in µm, (dz, dy, dx) or (dy, dx): from an OME-TIFF's metadata
    (:func:`ome_spacing`), else the resolution tags and ImageJ's ``spacing`` and ``unit``; None
    if absent or in an unknown unit."""
    if tif.is_ome:
        found = ome_spacing(tif)
        if found is not None:
            return found
    page = tif.pages[0]
    if "XResolution" not in page.tags or "YResolution" not in page.tags:
        return None
    xr, yr = page.tags["XResolution"].value, page.tags["YResolution"].value
    if not (xr[0] and yr[0]):
        return None
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).strip().lower().replace("\\u00b5", "µ")  # ImageJ escapes µ
    if unit:
        factor = _UNITS_UM.get(unit)
    else:  # TIFF ResolutionUnit: 2 inch, 3 centimetre, 1 none (unknown)
        res_unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 1
        factor = {2: 25400.0, 3: 10000.0}.get(res_unit)
    if factor is None:
        return None
    spacing = (factor * yr[1] / yr[0], factor * xr[1] / xr[0])
    if "spacing" in ij:
        spacing = (factor * float(ij["spacing"]), *spacing)
    return spacing


def read_tiff(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a TIFF; returns the array and ``{'axes': str | None, 'spacing': tuple | None,
    'info': str | None}`` (spacing in µm, see :func:`tiff_spacing`; info: ImageJ's Info)."""
    path = Path(path)
    if not path.is_file():
        raise SynthcareError(f"file not found: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            axes = tif.series[0].axes if tif.series else None
            spacing = tiff_spacing(tif)
            info = (tif.imagej_metadata or {}).get("Info")
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise SynthcareError(f"cannot read TIFF {path}: {exc}") from None
    return data, {"axes": axes, "spacing": spacing, "info": info if isinstance(info, str) else None}


PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a TIFF (:func:`read_tiff`) or a PNG/JPEG/BMP (through Pillow, which matplotlib
    already brings); returns the array and ``{'axes', 'spacing', 'bits'}``, ``bits`` the
    integer bit depth of the file's samples (None for floats)."""
    path = Path(path)
    if path.suffix.lower() in PILLOW_SUFFIXES:
        if not path.is_file():
            raise SynthcareError(f"file not found: {path}")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                data = np.array(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise SynthcareError(f"cannot read image {path}: {exc}") from None
        meta = {"axes": None, "spacing": None}
    else:
        data, meta = read_tiff(path)
    bits = 8 * data.dtype.itemsize if np.issubdtype(data.dtype, np.integer) else None
    return data, {**meta, "bits": bits}


def ensure_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be written there (clear error if not)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise SynthcareError(f"output folder {folder} is not writable: {exc.strerror or exc}") from None
    return folder
