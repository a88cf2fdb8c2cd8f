"""Simulated datasets on disk and preview figures (the files themselves: :mod:`simulate.tiff`).

A dataset folder holds ``low/NNNN.tif`` (inputs), ``GT/NNNN.tif`` (targets) and
``clean/NNNN.tif`` (noise-free targets, never used for training) — CSBDeep's layout — plus
``config.yaml`` and ``manifest.json`` (the full config, seed, count and library versions). Every
file is written atomically (temporary file + rename), so an interrupted run leaves no half
files, and a re-run resumes, skipping finished pairs.

``isotropic`` pairs are lateral slices degraded like z (CARE's scheme), not stacks: their TIFFs
are a series of 2D images (ImageJ frames, axes TYX, lateral pixel size) whose Info says so, and
``predict`` refuses them. Evaluation data (``volumes`` > 0) go to ``eval/input/NNNN.tif`` (the
input exactly as the microscope records it) and ``eval/reference/NNNN.tif`` (the reference on
the grid ``predict`` returns): held-out cases of seed ``seed + EVAL_OFFSET``, the very cases
``synthcare evaluate`` scores a model trained with config seed ``seed`` on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import tasks
from .config import SimConfig
from .errors import SynthcareError
from .pairs import check, chunk_size, simulate_pair, simulate_pairs, simulate_volume
from .paths import check_output_file, check_output_folder, folder_lock, make_parent
from .sampling import Grid
from .tiff import atomic_write, ensure_writable, save_figure, versions, write_tiff

SUBFOLDERS = ("low", "GT", "clean")
EVAL_OFFSET = 2_000_000  # seed offset of held-out evaluation cases (restore.data.TEST_OFFSET)
SLICES_INFO = ("synthcare isotropic training pair: each frame is a lateral (YX) slice whose rows "
               "were blurred and subsampled like the z axis; a series of 2D images, not a z-stack")


def eval_case(cfg: SimConfig, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation case ``index`` of dataset ``seed`` on the CPU: (input as the microscope
    records it, reference on the grid ``predict`` returns). Tasks that restore z: the acquired
    stack (nz, ny, nx) and the isotropically sampled reference ((nz − 1)·k + 1, ny, nx)
    (:func:`simulate.pairs.simulate_volume`); others: the pair's input and clean target."""
    cfg = cfg.model_copy(update={"device": "cpu"})
    if tasks.spec(cfg.task).anisotropic:
        v = simulate_volume(cfg, seed, index)
        return v.acquired, v.reference
    p = simulate_pair(cfg, seed, index)
    return p.input, p.clean


def eval_spacing(cfg: SimConfig) -> dict[str, tuple[float, ...]]:
    """Voxel size (µm) of the evaluation input and reference files."""
    lateral = (cfg.sampling.pixel, cfg.sampling.pixel)
    if cfg.ndim == 2:
        return {"input": lateral, "reference": lateral}
    acquired = (cfg.sampling.pixel * cfg.sampling.z_factor, *lateral)
    fine = (cfg.sampling.pixel, *lateral) if tasks.spec(cfg.task).anisotropic else acquired
    return {"input": acquired, "reference": fine}


def dataset_spacing(cfg: SimConfig) -> dict[str, tuple[float, ...]]:
    """Voxel size (µm) of the files of each subfolder."""
    lateral = (cfg.sampling.pixel, cfg.sampling.pixel)
    if cfg.ndim == 2 or tasks.spec(cfg.task).lateral_slices:
        return dict.fromkeys(SUBFOLDERS, lateral)
    z_step = cfg.sampling.pixel * cfg.sampling.z_factor
    low = (z_step, *lateral)
    if tasks.spec(cfg.task).target_on_fine_z:
        return {"low": low, "GT": (cfg.sampling.pixel, *lateral), "clean": (cfg.sampling.pixel,
                                                                            *lateral)}
    return dict.fromkeys(SUBFOLDERS, low)


def check_count_and_seed(n: int | None, seed: int | None, volumes: int = 0) -> None:
    """Refuse a pair count below 1, a negative evaluation count or a negative dataset seed
    (None: not given)."""
    if n is not None and n < 1:
        raise SynthcareError(f"--n must be at least 1, got {n}")
    if volumes < 0:
        raise SynthcareError(f"--volumes must be 0 or more evaluation cases, got {volumes}")
    if seed is not None and seed < 0:
        raise SynthcareError(f"--seed must be a non-negative integer, got {seed}")


def _foreign_files(out: Path) -> list[Path]:
    """Files in ``out`` that a dataset without a manifest would overwrite or mix with: its
    ``config.yaml`` and anything in ``low/``, ``GT/``, ``clean/`` (a folder of real pairs in
    CSBDeep's layout must not gain simulated pairs either)."""
    found = [out / "config.yaml"] if (out / "config.yaml").exists() else []
    for sub in SUBFOLDERS:
        if (out / sub).is_dir():
            found += sorted(p for p in (out / sub).iterdir() if not p.name.startswith("."))
    return found


def _read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SynthcareError(f"{path} is not a synthcare manifest ({exc}): choose another --out"
                             ) from None
    if not isinstance(manifest, dict) or "config" not in manifest:
        raise SynthcareError(f"{path} is not a synthcare manifest: choose another --out")
    return manifest


FORMATS = ("tiff", "zarr")


def write_dataset(cfg: SimConfig, out: str | Path, n: int, *, seed: int | None = None,
                  progress: bool = True, overwrite: bool = False, fmt: str = "tiff",
                  scheduler: str | None = None, volumes: int = 0) -> Path:
    """Simulate pairs 0 … n − 1 of dataset ``seed`` (default ``cfg.seed``) into ``out``: TIFFs
    in ``low/``, ``GT/``, ``clean/`` (``fmt='tiff'``), or one OME-Zarr group with those three
    images (``fmt='zarr'``, :mod:`simulate.omezarr`).

    Everything is checked before the first file is written (count, seed, folder, grid, PSF), so
    a refused run leaves ``out`` as it was. Resumes an interrupted run: finished pairs are
    skipped; a folder holding a different config or seed is refused, and so is a folder holding
    files this library did not write (no manifest: e.g. real pairs in the same layout) unless
    ``overwrite``. The folder is locked while it is written (:func:`simulate.paths.folder_lock`).
    ``scheduler``: make the pairs on a Dask cluster (``local:W`` or a scheduler address; OME-Zarr
    only, :mod:`simulate.distributed`). ``volumes``: also write that many held-out evaluation
    cases as TIFFs into ``out/eval`` (:func:`write_eval`; TIFF datasets only).
    """
    check_count_and_seed(n, seed, volumes)
    if fmt not in FORMATS:
        raise SynthcareError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if volumes and fmt != "tiff":
        raise SynthcareError("--volumes writes TIFF evaluation data beside TIFF pairs: use "
                             "--format tiff (or another --out for them)")
    if scheduler is not None:
        from .distributed import check_scheduler

        if fmt != "zarr":
            raise SynthcareError("--scheduler writes OME-Zarr datasets: add --format zarr")
        check_scheduler(scheduler)
    seed = cfg.seed if seed is None else seed
    out = check_output_folder(out, "--out")
    check(cfg)
    manifest_path = out / "manifest.json"
    # the device that simulates does not change the dataset: a run begun on a GPU may resume on a CPU
    manifest = {"config": {k: v for k, v in cfg.to_dict().items() if k != "device"}, "seed": seed,
                "format": fmt}

    def existing() -> dict:
        """The manifest already in ``out`` (empty if none), refused if it is another dataset."""
        old = _read_manifest(manifest_path)
        if old is None:
            foreign = _foreign_files(out) if out.is_dir() else []
            if foreign and not overwrite:
                raise SynthcareError(
                    f"{out} holds {len(foreign)} files synthcare did not write (e.g. "
                    f"{foreign[0].relative_to(out)}) and no manifest.json: choose another --out, "
                    "or pass --overwrite to write the dataset there anyway")
            return {}
        if (old.get("config") != manifest["config"] or old.get("seed") != seed
                or old.get("format", "tiff") != fmt):
            raise SynthcareError(f"{out} holds a dataset with another config, seed or format; "
                                 "choose another --out or delete it")
        return old

    existing()  # refuse before creating anything
    with folder_lock(out, "simulation"):
        old = existing()  # again under the lock: another writer may have finished
        n = max(n, int(old.get("n", 0)))
        ensure_writable(out)
        if fmt == "tiff":
            for sub in SUBFOLDERS:
                (out / sub).mkdir(exist_ok=True)
        slices = tasks.spec(cfg.task).lateral_slices
        manifest.update(n=n, task=cfg.task,
                        axes="TYX" if slices else "YX" if cfg.ndim == 2 else "ZYX",
                        spacing=dataset_spacing(cfg), versions=versions(),
                        written=datetime.now(UTC).isoformat(timespec="seconds"),
                        **({"pairs": SLICES_INFO} if slices else {}))
        n_eval = max(volumes, (old.get("eval") or {}).get("n", 0))
        if n_eval:  # a resumed run finishes the evaluation cases an earlier one asked for
            manifest["eval"] = {"n": n_eval, "seed": seed + EVAL_OFFSET,
                                "spacing": eval_spacing(cfg)}
        atomic_write(manifest_path, lambda p: p.write_text(json.dumps(manifest, indent=2)))
        atomic_write(out / "config.yaml", lambda p: cfg.to_yaml(p))
        sink = _sink(cfg, out, n, fmt)
        if scheduler is None:
            _write_pairs(cfg, seed, progress, sink)
        else:
            from .distributed import write_pairs_dask

            write_pairs_dask(cfg, seed, progress, sink, scheduler)
        if "eval" in manifest:
            write_eval(cfg, out / "eval", manifest["eval"]["n"], seed + EVAL_OFFSET, progress)
    return out


def write_eval(cfg: SimConfig, folder: Path, n: int, seed: int, progress: bool) -> None:
    """Evaluation cases 0 … n − 1 of dataset ``seed`` (:func:`eval_case`) into
    ``folder/input`` and ``folder/reference``, skipping finished ones (reference written first,
    input last: a case is finished when its input exists)."""
    spacing = eval_spacing(cfg)
    for sub in spacing:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(n - 1)))
    todo = [i for i in range(n) if not (folder / "input" / f"{i:0{width}d}.tif").exists()]
    for i in tqdm(todo, desc=f"evaluation {cfg.task}", unit="case", disable=not progress):
        x, ref = eval_case(cfg, seed, i)
        write_tiff(folder / "reference" / f"{i:0{width}d}.tif", ref, spacing["reference"])
        write_tiff(folder / "input" / f"{i:0{width}d}.tif", x, spacing["input"],
                   dtype=_camera_dtype(cfg))


def _camera_dtype(cfg: SimConfig):
    """Camera frames as integers where the camera makes integers (≤ 16 bits), else float32."""
    return np.uint16 if cfg.camera.bits <= 16 else np.float32


def _low_dtype(cfg: SimConfig):
    """The inputs' dtype: the camera's, but float32 for lateral slices (blurred and subsampled
    after the camera)."""
    return np.float32 if tasks.spec(cfg.task).lateral_slices else _camera_dtype(cfg)


class TiffSink:
    """Where :func:`write_dataset` puts pairs by default: ``low/``, ``GT/``, ``clean/`` TIFFs
    named by the pair's index. A pair is finished when all three files exist (``low`` is
    written last)."""

    def __init__(self, out: Path, n: int, dtypes: dict, spacing: dict[str, tuple[float, ...]],
                 slices: bool = False):
        self.out, self.n, self.dtypes, self.spacing = out, n, dtypes, spacing
        self.width = max(4, len(str(n - 1)))
        self.label = {"axes": "TYX", "info": SLICES_INFO} if slices else {}

    def finished(self) -> np.ndarray:
        """Boolean per pair: all three images written."""
        return np.array([all((self.out / s / f"{i:0{self.width}d}.tif").exists() for s in SUBFOLDERS)
                         for i in range(self.n)], bool)

    def write(self, i: int, images: dict[str, np.ndarray]) -> None:
        """Pair ``i``'s images in the order given (the caller puts ``low`` last)."""
        for sub, image in images.items():
            write_tiff(self.out / sub / f"{i:0{self.width}d}.tif", image, self.spacing[sub],
                       dtype=self.dtypes[sub], **self.label)


def _sink(cfg: SimConfig, out: Path, n: int, fmt: str):
    """The writer of a dataset's pairs in format ``fmt`` (see :data:`FORMATS`)."""
    dtypes = {"low": np.dtype(_low_dtype(cfg)), "GT": np.dtype(np.float32),
              "clean": np.dtype(np.float32)}
    if fmt == "zarr":
        from .omezarr import ZarrSink

        return ZarrSink(out, n, dtypes, dataset_spacing(cfg))
    return TiffSink(out, n, dtypes, dataset_spacing(cfg), tasks.spec(cfg.task).lateral_slices)


def _write_pairs(cfg: SimConfig, seed: int, progress: bool, sink) -> None:
    """Simulate and write (into ``sink``) the pairs that are not finished there."""
    todo = [int(i) for i in np.flatnonzero(~sink.finished())]
    step = chunk_size(cfg)  # 1 on the CPU; on a GPU, pairs are simulated a chunk at a time
    with tqdm(total=len(todo), desc=f"simulate {cfg.task}", unit="pair", disable=not progress) as bar:
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            pairs = simulate_pairs(cfg, seed, chunk).to_host()
            for j, i in enumerate(chunk):
                # GT and clean first, low last: a pair counts as done only when all three exist
                sink.write(i, {"GT": pairs.target[j], "clean": pairs.clean[j], "low": pairs.input[j]})
                bar.update(1)


def _display(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img, [0.5, 99.9])
    return float(lo), float(max(hi, lo + 1e-6))


def preview(cfg: SimConfig, path: str | Path, *, seed: int | None = None, index: int = 0) -> Path:
    """A PNG montage of one pair: ground truth, clean target, target, input (max projections
    along z for 3D, with XZ projections beneath)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_count_and_seed(None, seed)
    seed = cfg.seed if seed is None else seed
    pair = simulate_pair(cfg, seed, index, keep_truth=True).to_host()
    grid = Grid.from_config(cfg)
    s = grid.oversample
    (my, mx), (_, ny, nx) = grid.margin, grid.detector
    truth = pair.truth[:, my * s:(my + ny) * s, mx * s:(mx + nx) * s]
    panels = {"ground truth": truth, "clean target": pair.clean, "target": pair.target,
              "input": pair.input}
    rows = 2 if cfg.ndim == 3 else 1
    fig, axes = plt.subplots(rows, 4, figsize=(16, 4.4 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.2] if rows == 2 else [1]})
    for col, (title, img) in enumerate(panels.items()):
        top = img.max(axis=0) if img.ndim == 3 else img
        ax = axes[0, col]
        ax.imshow(top, cmap="magma", vmin=_display(top)[0], vmax=_display(top)[1],
                  interpolation="nearest")
        ax.set_title(f"{title}  {tuple(img.shape)}")
        ax.axis("off")
        if rows == 2:
            side = img.max(axis=1)  # XZ
            ax = axes[1, col]
            ax.imshow(side, cmap="magma", vmin=_display(side)[0], vmax=_display(side)[1],
                      aspect="auto", interpolation="nearest")
            ax.set_title("XZ max projection", fontsize=9)
            ax.axis("off")
    o = cfg.optics
    fig.suptitle(f"{cfg.task}: {o.psf} NA {o.na}, λ {o.wavelength} µm, pixel {cfg.sampling.pixel} µm"
                 f", z-step ×{cfg.sampling.z_factor}, {cfg.camera.photons:g} photons peak — "
                 f"seed {seed}, pair {index}")
    fig.tight_layout()
    path = make_parent(check_output_file(path, "--preview"))
    return save_figure(fig, path, dpi=80)
