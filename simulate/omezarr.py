"""Datasets as OME-Zarr (NGFF 0.5, Zarr v3): ``low``, ``GT`` and ``clean`` images of one group.

Each is an OME-Zarr image with axes (s, [z,] y, x): ``s`` the pair (a custom axis, as NGFF
allows one), the others space axes in micrometres with the voxel size of the TIFF layout
(:func:`simulate.dataset.dataset_spacing`) as their ``scale``; one pair per chunk. A ``done``
array (one byte per pair, set after the pair's three images are written) makes the writer
resumable: a pair counts as finished only when its flag is set. Readers: ``ome-zarr-py``
(``ome_zarr.reader.Reader``), napari's ome-zarr plugin, Fiji's OME-Zarr readers, or zarr
itself (``zarr.open_group(path)["low/0"][i]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SynthcareError

LEVEL = "0"  # the one resolution level of every image


def _modules():
    try:
        import zarr
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import write_multiscales_metadata
    except ImportError:
        raise SynthcareError("OME-Zarr datasets need zarr and ome-zarr: pip install "
                             "'synthcare[zarr]'") from None
    return zarr, FormatV05(), write_multiscales_metadata


def axes_of(ndim: int) -> list[dict]:
    """NGFF axes of a dataset image: the pair axis, then 2 or 3 space axes in micrometres."""
    space = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"[3 - ndim:]]
    return [{"name": "s"}, *space]


class ZarrSink:
    """Where :func:`simulate.dataset.write_dataset` puts pairs with ``--format zarr``.

    ``dtypes``/``spacing``: per image name (low, GT, clean), its dtype and voxel size (µm).
    An image's array is made when its first pair is written (its shape is that pair's); on a
    resumed run the existing arrays and the ``done`` flags are resized to ``n`` pairs.
    """

    def __init__(self, out: Path, n: int, dtypes: dict[str, np.dtype],
                 spacing: dict[str, tuple[float, ...]]):
        zarr, self.fmt, self.write_metadata = _modules()
        self.root = zarr.open_group(str(out), mode="a", zarr_format=self.fmt.zarr_format)
        self.n, self.dtypes, self.spacing = n, dtypes, spacing
        self.arrays = {name: _sized(self.root[name], LEVEL, (n, *self.root[name][LEVEL].shape[1:]))
                       for name in dtypes if name in self.root and LEVEL in self.root[name]}
        self.done = _sized(self.root, "done", (n,), chunks=(max(n, 1),), dtype="u1")

    def finished(self) -> np.ndarray:
        """Boolean per pair: all three images written."""
        return np.asarray(self.done[:], bool)

    def _array(self, name: str, shape: tuple[int, ...]):
        """Image ``name``'s array, made with its OME-Zarr metadata on first use."""
        if name not in self.arrays:
            axes = axes_of(len(shape))
            group = self.root.require_group(name)
            self.arrays[name] = _sized(group, LEVEL, (self.n, *shape), chunks=(1, *shape),
                                       dtype=self.dtypes[name],
                                       dimension_names=[a["name"] for a in axes])
            self.write_metadata(group, [{"path": LEVEL, "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, *map(float, self.spacing[name])]}]}],
                fmt=self.fmt, axes=axes, name=name)
        return self.arrays[name]

    def write(self, i: int, images: dict[str, np.ndarray]) -> None:
        """Pair ``i``'s images, then its flag (a pair interrupted half-way is redone)."""
        for name, image in images.items():
            arr = self._array(name, image.shape)
            arr[i] = np.asarray(image, arr.dtype)
        self.done[i] = 1


def _sized(group, name: str, shape: tuple[int, ...], **kw):
    """Array ``name`` of ``group`` with ``shape``: created (zeros), or an existing one resized
    (a resumed dataset may ask for more pairs; written pairs stay)."""
    if name in group:
        arr = group[name]
        if arr.shape != shape:
            arr.resize(shape)
        return arr
    return group.create_array(name, shape=shape, fill_value=0, **kw)


def read_scale(path: str | Path, name: str) -> tuple[list[str], list[float]]:
    """Axis names and scale of one image of a dataset, read by ome-zarr-py's own reader (what
    other tools see)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(str(Path(path) / name))
    if location is None:
        raise SynthcareError(f"{Path(path) / name} is not an OME-Zarr image")
    node = next(iter(Reader(location)()))
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in node.metadata["axes"]]
    return axes, list(node.metadata["coordinateTransformations"][0][0]["scale"])
