"""Self-refinement: train in stages that move the sample prior towards the user's own images.

A network trained on the sample library alone restores what the library holds, not what a
user's sample holds. With ``train.refine.images`` (raw 2D images of the run's camera, in ADU, as
``synthcare fit`` writes by default), :func:`restore.train.train` trains in stages
(``_train_refined`` there; the stages, restorations and images are made here):

0. the library alone, for ``refine.start`` of the budget, in ``OUT/stages/0``;
1. the stage's network restores each image (test-time augmented, :func:`restore_images`) into
   ``OUT/stages/restored-1``; the next stage trains on semi-synthetic pairs made from these
   restorations through the camera model (``sample.images`` in ADU, ``refine.fraction`` of the
   pairs; the rest from the library), starting from the previous stage's weights;
2. … for ``refine.rounds`` rounds; the last stage trains into ``OUT`` itself, so ``OUT`` is an
   ordinary run folder for ``predict``, ``evaluate`` and ``export``.

The restorations are never the training input: each pair's input is new camera noise drawn on a
restoration, so the network learns the user's structures at the fitted noise level, while the
library share keeps it from copying the first stage's errors. On the two real pairs of
``benchmarks/realdata.py`` (10 minutes, 40 % library then 60 % refining) it added 0.34 and
0.19 dB over the library alone at the same budget. Every stage is an ordinary resumable run:
an interrupted refinement resumes at the stage it stopped in (``--resume``), finished stages
are kept.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from simulate import SynthcareError, write_tiff
from simulate.tiff import read_image

from .checkpoints import load_model
from .config import RefineConfig, RunConfig
from .runlog import read_log

STAGES = "stages"


def read_refine_images(run: RunConfig) -> list[tuple[str, np.ndarray]]:
    """The raw images of ``train.refine.images`` as (name, float32 YX array) pairs; one clear
    error for a missing file, an image that is not one 2D plane or one smaller than the
    training shape."""
    if len(run.shape) != 2:
        raise SynthcareError(f"train.refine refines 2D runs (raw 2D images); this run's shape is "
                             f"{list(run.shape)}")
    out = []
    for i, name in enumerate(run.train.refine.images):
        path = Path(name)
        if not path.is_file():
            raise SynthcareError(f"train.refine.images: {name} is not a file")
        a = np.squeeze(read_image(path)[0])
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
            raise SynthcareError(f"train.refine.images: {name} must be one numeric 2D plane, got "
                                 f"shape {a.shape} ({a.dtype})")
        if any(s < t for s, t in zip(a.shape, run.shape, strict=True)):
            raise SynthcareError(f"train.refine.images: {name} is {a.shape[0]}×{a.shape[1]}, "
                                 f"smaller than the training shape {tuple(run.shape)}")
        if not np.all(np.isfinite(a)):
            raise SynthcareError(f"train.refine.images: {name} contains NaN or Inf")
        out.append((f"{i:03d}_{path.stem}.tif", a.astype(np.float32)))
    return out


def stage_runs(run: RunConfig, out: Path) -> list[tuple[Path, RunConfig]]:
    """(folder, config) of every stage: the budget split by ``refine.start`` and
    ``refine.rounds``, refinement stages reading ``OUT/stages/restored-<k>``; the last in ``out``."""
    r, t = run.train.refine, run.train
    shares = [r.start] + [(1.0 - r.start) / r.rounds] * r.rounds
    stages = []
    for k, share in enumerate(shares):
        d = run.model_dump(mode="json")
        d["train"] |= {"refine": RefineConfig().model_dump(mode="json"),
                       "steps": None if t.steps is None else max(1, math.ceil(share * t.steps)),
                       "minutes": None if t.minutes is None else share * t.minutes}
        if k:
            d["sample"]["images"] = {"folder": str(restored_folder(out, k)),
                                     "fraction": r.fraction, "units": "adu"}
        try:
            cfg = RunConfig.model_validate(d)
        except ValueError as exc:
            raise SynthcareError(f"train.refine cannot refine this run: {exc}") from None
        stages.append((out if k == len(shares) - 1 else out / STAGES / str(k), cfg))
    return stages


def restored_folder(out: Path, k: int) -> Path:
    """Where the images restored for refinement stage ``k`` go."""
    return out / STAGES / f"restored-{k}"


def restore_images(model_dir: Path, images: list[tuple[str, np.ndarray]], folder: Path,
                   spacing: tuple[float, float], device: str | None = None) -> None:
    """Restore each raw image with the model in ``model_dir`` (8-fold test-time augmentation)
    and write it (ADU, pixel ``spacing`` µm) atomically into ``folder``; images already there are
    kept."""
    from .predict import predict

    folder.mkdir(parents=True, exist_ok=True)
    todo = [(n, a) for n, a in images if not (folder / n).exists()]
    if not todo:
        return
    model = load_model(model_dir)[0]
    for name, a in todo:
        write_tiff(folder / name, predict(model, a, "YX", augment=True, device=device), spacing)


def stage_totals(out: str | Path) -> tuple[int, float]:
    """(steps, seconds) of a run folder summed over its refinement stages (the last row of
    each stage's log; a run without stages: its own log's last row, or (0, 0))."""
    out = Path(out)
    folders = [*sorted((out / STAGES).glob("[0-9]*")), out]
    rows = [log[-1] for f in folders if (f / "log.csv").exists() and (log := read_log(f))]
    return int(sum(r["step"] for r in rows)), float(sum(r["seconds"] for r in rows))
