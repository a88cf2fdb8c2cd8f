"""Training pairs read from disk: a CSBDeep-style folder of TIFF pairs (``low/``, ``GT/``), a
CSBDeep training-data file (``.npz``), or a synthcare OME-Zarr dataset read lazily; and
:class:`FolderPairs`, which draws normalised random patches from any of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from simulate import SynthcareError, read_tiff

from .data import check_patch, crop_patches
from .normalize import percentile_affine


def pair_files(folder: str | Path) -> list[tuple[Path, Path]]:
    """Matching (low, GT) TIFF paths of a CSBDeep-style folder; clear errors when unmatched."""
    folder = Path(folder)
    low_dir, gt_dir = folder / "low", folder / "GT"
    for d in (low_dir, gt_dir):
        if not d.is_dir():
            raise SynthcareError(f"pairs folder {folder} needs subfolders low/ and GT/ ({d} missing)")
    names = sorted(p.name for p in low_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not names:
        raise SynthcareError(f"no TIFF files in {low_dir}")
    missing = [n for n in names if not (gt_dir / n).is_file()]
    if missing:
        raise SynthcareError(f"{len(missing)} input file(s) have no target of the same name in "
                             f"{gt_dir}, e.g. {missing[0]}")
    return [(low_dir / n, gt_dir / n) for n in names]


def read_pair_files(files: list[tuple[Path, Path]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (low, GT) TIFF pairs, each image normalised by its own percentiles (real targets are
    not in the input's photometric scale)."""
    images = []
    for low, gt in files:
        x, _ = read_tiff(low)
        y, _ = read_tiff(gt)
        x, y = np.squeeze(x).astype(np.float32), np.squeeze(y).astype(np.float32)
        if x.shape != y.shape:
            raise SynthcareError(f"{low.name}: input {x.shape} and target {y.shape} differ in shape")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise SynthcareError(f"{low.name}: NaN or Inf in the pair")
        images.append((percentile_affine(x)(x), percentile_affine(y)(y)))
    return images


def npz_pairs(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training pairs of a CSBDeep training-data file (``X``, ``Y`` and ``axes`` as
    ``csbdeep.data.create_patches`` saves them, e.g. axes 'SCYX' or 'SZYXC'): one (x, y) per
    sample, single channel, already normalised by CSBDeep (used as they are)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise SynthcareError(f"{path} is not a readable .npz file ({exc})") from None
    missing = [k for k in ("X", "Y", "axes") if k not in data]
    if missing:
        raise SynthcareError(f"{path} lacks {', '.join(missing)}: CSBDeep training data has X, Y "
                             "and axes")
    x, y, axes = data["X"], data["Y"], str(data["axes"]).upper()
    if x.shape != y.shape:
        raise SynthcareError(f"{path}: X {x.shape} and Y {y.shape} differ in shape")
    if len(axes) != x.ndim or not set(axes) <= set("SCZYX") or "S" not in axes or len(set(axes)) != len(axes):
        raise SynthcareError(f"{path}: axes '{axes}' do not describe X {x.shape} (letters S, C, Z, "
                             "Y, X, with S the sample axis)")
    if "C" in axes:
        if x.shape[axes.index("C")] != 1:
            raise SynthcareError(f"{path}: {x.shape[axes.index('C')]} channels; synthcare trains "
                                 "single-channel models")
        x, y = (np.take(a, 0, axis=axes.index("C")) for a in (x, y))
        axes = axes.replace("C", "")
    order = [axes.index(a) for a in "S" + "".join(a for a in "ZYX" if a in axes)]
    x, y = (np.transpose(a, order).astype(np.float32) for a in (x, y))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise SynthcareError(f"{path}: NaN or Inf in X or Y")
    if len(x) == 0:
        raise SynthcareError(f"{path} holds no samples")
    return list(zip(x, y, strict=True))


class ZarrPairs(Sequence):
    """The (low, GT) pairs of an OME-Zarr dataset (``simulate --format zarr``), read lazily: pair
    ``k`` is read (one chunk of each array) and normalised like :func:`read_pair_files` when it is
    asked for, and the last few are kept; a dataset larger than memory trains. Only pairs whose
    ``done`` flag is set are used."""

    CACHE = 4

    def __init__(self, path: str | Path, indices: np.ndarray | None = None):
        from simulate.omezarr import _modules

        zarr = _modules()[0]
        self.path = str(path)
        try:
            root = zarr.open_group(self.path, mode="r")
            self.low, self.gt = root["low"]["0"], root["GT"]["0"]
            done = np.flatnonzero(root["done"][:]) if indices is None else indices
        except Exception as exc:  # zarr raises several types for a store it cannot open
            raise SynthcareError(f"{path} is not a synthcare OME-Zarr dataset (low, GT and done; "
                                 f"{type(exc).__name__}: {exc})") from None
        if self.low.shape != self.gt.shape:
            raise SynthcareError(f"{path}: low {self.low.shape} and GT {self.gt.shape} differ "
                                 "(a task whose target has another grid cannot train from --pairs)")
        if not len(done) and indices is None:
            raise SynthcareError(f"{path} holds no finished pair")
        self.indices = np.asarray(done, np.int64)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return ZarrPairs(self.path, self.indices[k])
        if not -len(self) <= int(k) < len(self):
            raise IndexError(k)
        k = int(k) % len(self)
        if k not in self._cache:
            i = int(self.indices[k])
            x, y = (np.asarray(a[i], np.float32) for a in (self.low, self.gt))
            if len(self._cache) >= self.CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = (percentile_affine(x)(x), percentile_affine(y)(y))
        return self._cache[k]


class FolderPairs(torch.utils.data.Dataset):
    """Real (low, GT) pairs, normalised: item ``i`` is one random foreground patch, a pure
    function of (seed, i); image ``i mod n``. ``images`` are the pairs themselves
    (:func:`npz_pairs`) or a lazy sequence of them (:class:`ZarrPairs`), else the TIFF pairs of
    ``folder`` are read (:func:`read_pair_files`)."""

    def __init__(self, folder: str | Path | None = None, *, patch: tuple[int, ...], seed: int = 0,
                 patches_per_image: int = 32, threshold: float = 0.4, augment: bool = True,
                 rotate: bool = True, images: Sequence[tuple[np.ndarray, np.ndarray]] | None = None):
        if images is None:
            images = read_pair_files(pair_files(folder))
        self.images = images
        self.patch, self.seed = tuple(patch), seed
        self.per_image, self.threshold = patches_per_image, threshold
        self.augment, self.rotate = augment, rotate
        self._positions: dict[int, dict] = {}  # per image: crop_patches' foreground cache
        check_patch(self.images[0][0].shape, self.patch)

    @property
    def ndim(self) -> int:
        """Spatial dimensions of the images."""
        return self.images[0][0].ndim

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(i), 0xF01D])
        k = i % len(self.images)
        limit = getattr(self.images, "CACHE", None)  # lazy pairs: keep few positions, too
        if limit is not None and k not in self._positions and len(self._positions) >= limit:
            self._positions.pop(next(iter(self._positions)))
        x, y = crop_patches([self.images[k]], 1, self.patch, rng, threshold=self.threshold,
                            flips=self.augment, rotate=self.rotate,
                            cache=self._positions.setdefault(k, {}))
        return x[0], y[0]

    def batch(self, b: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``b``: items b·batch_size … (b+1)·batch_size − 1, stacked."""
        items = [self[b * batch_size + j] for j in range(batch_size)]
        return np.stack([x for x, _ in items]), np.stack([y for _, y in items])
