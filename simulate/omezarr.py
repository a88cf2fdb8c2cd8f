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


def ngff_axes(letters: str) -> list[dict]:
    """NGFF axes for axis letters (T, S, C, Z, Y, X): time, channel and space types, space in
    micrometres; S (a dataset's pairs) has no NGFF type."""
    kinds = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
    return [{"name": a.lower(), **({"type": kinds[a]} if a in kinds else {}),
             **({"unit": "micrometer"} if a in "ZYX" else {})} for a in letters]


def axes_of(ndim: int) -> list[dict]:
    """NGFF axes of a dataset image: the pair axis, then 2 or 3 space axes in micrometres."""
    return ngff_axes("S" + "ZYX"[3 - ndim:])


class ZarrSink:
    """Where :func:`simulate.dataset.write_dataset` puts pairs with ``--format zarr``.

    ``dtypes``/``spacing``: per image name (low, GT, clean), its dtype and voxel size (µm).
    An image's array is made when its first pair is written (its shape is that pair's); on a
    resumed run the existing arrays and the ``done`` flags are resized to ``n`` pairs.
    """

    def __init__(self, out: Path, n: int, dtypes: dict[str, np.dtype],
                 spacing: dict[str, tuple[float, ...]], existing: bool = False):
        zarr, self.fmt, self.write_metadata = _modules()
        try:  # a Dask worker (existing) must find the client's dataset, never make its own
            self.root = zarr.open_group(str(out), mode="r+" if existing else "a",
                                        zarr_format=self.fmt.zarr_format)
        except FileNotFoundError:
            raise SynthcareError(f"{out}: this machine does not see the dataset the client made "
                                 "(Dask workers need --out on a shared file system)") from None
        self.out, self.n, self.dtypes, self.spacing = Path(out), n, dtypes, spacing
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
        self.write_images(i, images)
        self.done[i] = 1

    def write_images(self, i: int, images: dict[str, np.ndarray]) -> None:
        """Pair ``i``'s images without its flag (a distributed worker's part: the client sets
        the flags of a chunk once its worker reports it written, :mod:`simulate.distributed`)."""
        for name, image in images.items():
            arr = self._array(name, image.shape)
            arr[i] = np.asarray(image, arr.dtype)

    def mark_done(self, indices: list[int]) -> None:
        """Set the flags of pairs whose images are written."""
        self.done.oindex[np.asarray(indices, np.int64)] = 1


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


# --- single images (predict's input and output) ----------------------------------------------
AXIS_LETTERS = {"t": "T", "s": "S", "c": "C", "z": "Z", "y": "Y", "x": "X"}


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` names a Zarr store (a folder ending in .zarr, or holding Zarr metadata)."""
    p = Path(path)
    return p.suffix.lower() == ".zarr" or any((p / f).exists() for f in
                                              ("zarr.json", ".zattrs", ".zgroup", ".zarray"))


def open_image(path: str | Path) -> tuple[object, str, tuple[float, ...] | None]:
    """An OME-Zarr image's full-resolution array (read lazily, block by block), its axes as
    letters (T, S, C, Z, Y, X) and the scale of its space axes in µm (None when not in µm); a
    bare Zarr array gives (array, '', None), its axes to be named by the caller.

    One clear error for a path that is no Zarr image and for axes other than t, s (a dataset's
    pairs), c, z, y, x, or without y and x."""
    zarr = _modules()[0]
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a path it cannot open
        raise SynthcareError(f"{path} is not a Zarr array or OME-Zarr image "
                             f"({type(exc).__name__})") from None
    if isinstance(node, zarr.Array):
        return node, "", None
    meta = dict(node.attrs).get("ome", dict(node.attrs))
    multiscales = meta.get("multiscales")
    if not multiscales:
        names = sorted(node.group_keys())
        hint = f" (its images: {', '.join(names)}; give e.g. {Path(path) / names[0]})" if names else ""
        raise SynthcareError(f"{path} is a Zarr group but not an OME-Zarr image{hint}")
    ms = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms["axes"]]
    letters = "".join(AXIS_LETTERS.get(a.lower(), "?") for a in axes)
    if "?" in letters or len(set(letters)) != len(letters) or not {"Y", "X"} <= set(letters):
        raise SynthcareError(f"the Zarr array {path} has axes {axes}: synthcare restores arrays "
                             "whose axes are among t, s, c, z, y, x, with y and x")
    level = ms["datasets"][0]
    scale = None
    for t in level.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            units = [a.get("unit") if isinstance(a, dict) else None for a in ms["axes"]]
            space = [(s, u) for s, u, a in zip(t["scale"], units, letters, strict=True) if a in "ZYX"]
            if all(u in ("micrometer", None) for _, u in space):
                scale = tuple(float(s) for s, _ in space)
    return node[level["path"]], letters, scale


def create_image(path: str | Path, shape: tuple[int, ...], axes: str,
                 scale: tuple[float, ...] | None, chunks: tuple[int, ...], dtype=np.float32):
    """A new OME-Zarr image (NGFF 0.5) of ``shape`` with ``axes`` (letters) and the space axes'
    ``scale`` (µm); returns its writable full-resolution array."""
    zarr, fmt, write_metadata = _modules()
    group = zarr.open_group(str(path), mode="w-", zarr_format=fmt.zarr_format)
    names = [a.lower() for a in axes]
    meta_axes = ngff_axes(axes)
    space = iter(scale or (1.0,) * sum(a in "ZYX" for a in axes))
    full = [float(next(space)) if a in "ZYX" else 1.0 for a in axes]
    arr = group.create_array(LEVEL, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                             dimension_names=names)
    write_metadata(group, [{"path": LEVEL, "coordinateTransformations": [
        {"type": "scale", "scale": full}]}], fmt=fmt, axes=meta_axes, name=Path(path).stem)
    return arr
