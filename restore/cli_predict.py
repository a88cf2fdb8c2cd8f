"""``synthcare predict``: restore an image (TIFF or OME-Zarr) with a trained model, optionally
with the Laplace scale of a probabilistic model and the guard's report (:mod:`restore.guard`).
Part of the command line (:mod:`restore.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulate.errors import SynthcareError


def cmd_predict(args: argparse.Namespace) -> None:
    import numpy as np

    from simulate.omezarr import is_zarr
    from simulate.paths import check_new_folder, check_output_file, same_file

    from .blocks import open_input, predict_files, write_image
    from .checkpoints import load_model
    from .predict import predict_task
    from .workflows import WORKFLOWS, workflow

    outputs = [("-o", args.output)] + ([("--scale", args.scale)] if args.scale else [])
    for flag, path in outputs:
        (check_new_folder if is_zarr(path) else check_output_file)(path, flag)
    if args.scale and Path(args.scale).resolve() == Path(args.output).resolve():
        raise SynthcareError(f"--scale {args.scale} is the -o output: give another file")
    if same_file(args.output, args.input):
        raise SynthcareError(f"-o {args.output} is the input image: give another output file")
    zarr_io = is_zarr(args.input) or any(is_zarr(path) for _, path in outputs)
    if args.report:
        check_output_file(args.report, "--report")
        if zarr_io:
            raise SynthcareError("--report checks images held in memory: give TIFF input and "
                                 "output (or check a crop)")
    model, run, _ = load_model(args.model)
    if args.scale and not model.cfg.probabilistic:
        raise SynthcareError("--scale needs a probabilistic model (trained with "
                             "--set train.loss=laplace)")
    source, axes, file_voxel = open_input(args.input, args.axes)
    voxel = _floats(args.voxel_size, "--voxel-size") if args.voxel_size else file_voxel
    if voxel:  # with --factor the z-step is the user's: compare the lateral pixel only
        _check_voxel_size(tuple(voxel[-2:] if args.factor else voxel), run)
    tiles = None if args.tiles == "none" else "auto" if args.tiles == "auto" else _ints(args.tiles)
    wf = workflow(run.task)
    if args.factor is not None and not wf.z_factor:
        able = " and ".join(w.name for w in WORKFLOWS.values() if w.z_factor)
        raise SynthcareError(f"--factor applies to {able} models, not '{run.task}'")
    spacing = list(voxel or (1.0,) * min(3, len(source.shape)))
    if args.memory is not None and not args.memory > 0:
        raise SynthcareError(f"--memory {args.memory:g}: give the MiB one block may use (> 0)")
    budget = int(args.memory * 2**20) if args.memory else None
    if zarr_io and run.target.wiener is not None:
        raise SynthcareError("this model Wiener-filters the whole stack with its PSF before the "
                             "network, which block-wise (OME-Zarr) prediction cannot: give a TIFF "
                             "(or a crop that fits in memory)")
    if zarr_io and not (wf.interpolate_z or wf.slices):  # same shape out: block by block
        written = predict_files(model, source, axes, args.output, args.scale, spacing, tiles=tiles,
                                augment=args.tta, memory_budget=budget, progress=True)
        print(f"restored {args.input} ({tuple(source.shape)}, axes {axes}) block by block -> "
              f"{args.output}" + (f" (axes {written})" if written != axes else ""))
        return
    image = np.asarray(source)
    restored = predict_task(model, run.task, image, axes, factor=args.factor,
                            z_factor=run.sampling.z_factor, tiles=tiles, progress=True,
                            augment=args.tta, return_scale=bool(args.scale), memory_budget=budget,
                            sim=run)
    restored, scale = restored if args.scale else (restored, None)
    if wf.z_factor and len(spacing) == 3:
        spacing[0] /= args.factor or run.sampling.z_factor  # planes now at the finer z-step
    written = write_image(args.output, restored, axes, spacing)
    if scale is not None:
        write_image(args.scale, scale, axes, spacing)
        print(f"Laplace scale (per-pixel uncertainty, input units) -> {args.scale}")
    print(f"restored {args.input} ({image.shape}, axes {axes}) -> {args.output} {restored.shape}"
          + (f" (axes {written})" if written != axes else ""))
    if args.report:
        _guard_report(image, restored, axes, run, args.report)


def _guard_report(image, restored, axes: str, run, path: str) -> None:
    """Write the guard's verdict (restore.guard) per YX plane and warn in one line if any fails."""
    import json

    import numpy as np

    from simulate import atomic_write
    from simulate.paths import make_parent

    from .guard import report

    if set(axes) - set("ZYX"):
        raise SynthcareError(f"--report checks YX images or ZYX stacks, got axes '{axes}'")
    planes = [(image, restored)] if axes == "YX" else list(zip(np.moveaxis(image, axes.index("Z"), 0),
                                                                 np.moveaxis(restored, axes.index("Z"), 0),
                                                                 strict=True))
    rows = [report(x, y, run.sim) for x, y in planes]
    verdict = {key: (None if any(r[key] is None for r in rows) else all(r[key] for r in rows))
               for key in ("in_distribution", "output_consistent")}
    reasons = sorted({why for r in rows for why in r["reasons"]})
    out = {**verdict, "reasons": reasons, "planes": rows}
    atomic_write(make_parent(path), lambda p: p.write_text(json.dumps(out, indent=2)))
    failed = [k.replace("_", " ") for k, v in verdict.items() if v is False]
    if failed:
        print(f"warning: the guard says this input is not {' / '.join(failed)}: "
              f"{reasons[0]} (all reasons in {path})")
    else:
        print(f"guard: {path}")


VOXEL_TOLERANCE = 0.10  # relative difference of the voxel size from training that predict flags


def _check_voxel_size(voxel: tuple[float, ...], run) -> None:
    """Warn once when the input's voxel size (µm, ZYX or YX) differs from the one the model was
    trained on by more than :data:`VOXEL_TOLERANCE`, and say how to proceed."""
    from simulate.dataset import dataset_spacing

    trained = dataset_spacing(run.sim)["low"]
    pairs = list(zip(voxel[::-1], trained[::-1], strict=False))[: min(len(voxel), len(trained))]
    off = [(got, want) for got, want in pairs if abs(got / want - 1) > VOXEL_TOLERANCE]
    if not off or voxel == (1.0,) * len(voxel):  # no voxel size in the file (ImageJ's default)
        return
    got, want = off[0]
    print(f"warning: the input's voxel size {'×'.join(f'{v:g}' for v in voxel)} µm differs from "
          f"the training one {'×'.join(f'{v:g}' for v in trained)} µm by more than "
          f"{VOXEL_TOLERANCE:.0%} ({got:g} vs {want:g}); resample the input to the training "
          "voxel size, give --factor for another z-step (upsample, isotropic), or retrain with "
          f"--set sampling.pixel={voxel[-1]:g}", file=sys.stderr)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise SynthcareError(f"{flag} must be positive sizes in µm like 0.3,0.1,0.1; got {text!r}")
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SynthcareError(f"--tiles must be 'auto', 'none' or counts like 2,4,4; got {text!r}") from None
