"""The ``synthcare`` command line: one console script with sub-commands.

Errors a user can cause print one line (``synthcare: error: ...``) and exit with status 2; an
interrupted command exits with 130 and can be re-run to resume. torch is only imported by the
sub-commands that train or predict, so ``synthcare simulate`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from simulate import field_names, list_presets, load, preset_text
from simulate.config_io import camera_overrides
from simulate.errors import Interrupted, SynthcareError

from .cli_predict import cmd_predict


def _add_config_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("configuration")
    src.add_argument("--preset", help="built-in preset (see `synthcare presets`)")
    src.add_argument("--config", help="YAML/JSON configuration file")
    src.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="override one setting by dotted name, value in YAML "
                          "(e.g. --set optics.na=1.0 --set shape=[16,64,64]); repeatable")
    src.add_argument("--camera", help="YAML with a camera section (e.g. from `synthcare calibrate`); "
                     "applied before the --set overrides")
    src.add_argument("--device", choices=["cpu", "cuda"], help="simulate (and train) on the CPU or "
                     "on a CUDA GPU (needs `pip install 'synthcare[gpu]'`); same as --set device=...")


def _overrides(args: argparse.Namespace, *, train: bool = False) -> list[str]:
    extra = []
    if args.device:
        extra.append(f"device={args.device}")
        if train:  # the network trains where the pairs are made
            extra.append(f"train.device={args.device}")
    return (camera_overrides(args.camera) if args.camera else []) + extra + args.overrides


def cmd_simulate(args: argparse.Namespace) -> None:
    from simulate.dataset import check_count_and_seed, preview, write_dataset
    from simulate.paths import check_output_file

    if not (args.out or args.preview):
        raise SynthcareError("give --out DIR (and --n N) to write a dataset, or --preview PNG")
    if args.volumes and not args.out:
        raise SynthcareError("--volumes writes evaluation cases into OUT/eval: give --out DIR")
    check_count_and_seed(args.n, args.seed, args.volumes)
    if args.preview:  # written after the dataset, so checked before it
        check_output_file(args.preview, "--preview")
    cfg = load(args.preset, args.config, _overrides(args))
    if args.out:  # write_dataset checks the folder, grid and PSF before it writes anything
        out = write_dataset(cfg, args.out, args.n, seed=args.seed, overwrite=args.overwrite,
                            fmt=args.format, scheduler=args.scheduler, volumes=args.volumes)
        print(f"dataset: {out}  ({args.n} pairs, task {cfg.task}, shape {list(cfg.shape)}, "
              f"{args.format})" + (f"; {args.volumes} evaluation cases in {out / 'eval'}"
                                   if args.volumes else ""))
    if args.preview:
        print(f"preview: {preview(cfg, args.preview, seed=args.seed)}")


def cmd_presets(args: argparse.Namespace) -> None:
    if args.fields:
        from .config import RunConfig

        for name in field_names(RunConfig):
            print(name)
        return
    if args.name:
        print(preset_text(args.name), end="")
        return
    for name in list_presets():
        first = preset_text(name).splitlines()[0].lstrip("# ")
        print(f"{name:12s} {first}")


def cmd_study(args: argparse.Namespace) -> None:
    from .study import run_study

    rows = run_study(args.study, args.out)
    print(f"study: {len(rows)} points; report {Path(args.out) / 'report.md'}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    import yaml

    from simulate.calibrate import calibrate_flats, calibrate_image, plot
    from simulate.paths import check_output_file, make_parent
    from simulate.tiff import atomic_write, read_image

    check_output_file(args.out, "--out")
    if args.plot:
        check_output_file(args.plot, "--plot")
    dark = read_image(args.dark)[0] if args.dark else None
    if args.flat:
        if dark is None:
            raise SynthcareError("--flat needs --dark: flat fields give the gain, dark frames the "
                                 "offset and read noise")
        cal = calibrate_flats([read_image(f)[0] for f in args.flat], dark, em_gain=args.em_gain)
    else:
        if not args.image:
            raise SynthcareError("give an IMAGE (a raw camera image or stack), or --flat and --dark")
        cal = calibrate_image(read_image(args.image)[0], em_gain=args.em_gain, offset=args.offset,
                              dark=dark)
    lines = [f"# synthcare calibrate {args.image or ''} ({'flats' if args.flat else 'image'})",
             f"# gain {cal.gain:.4g} ± {cal.gain_se:.2g} ADU/e-, offset {cal.offset:.5g} ± "
             f"{cal.offset_se:.2g} ADU, read noise {cal.read_noise:.3g} ± {cal.read_noise_se:.2g} e-"]
    lines += [f"# note: {n}" for n in cal.notes]
    text = "\n".join(lines) + "\n" + yaml.safe_dump({"camera": cal.camera_section()}, sort_keys=False)
    atomic_write(make_parent(args.out), lambda p: p.write_text(text))
    print("\n".join(line.lstrip("# ") for line in lines[1:]))
    print(f"camera section: {args.out}  (use with --camera {args.out})")
    if args.plot:
        print(f"plot: {plot(cal, make_parent(args.plot))}")


def cmd_fit(args: argparse.Namespace) -> None:
    import yaml

    from simulate.fit import fit_image, plot_fit
    from simulate.paths import check_output_file, make_parent
    from simulate.tiff import atomic_write, read_image

    out = check_output_file(args.out, "--out")  # refuse before the work, not after
    plot = check_output_file(args.plot or out.with_suffix(".png"), "--plot")
    image, meta = read_image(args.image)
    dark = read_image(args.dark)[0] if args.dark else None
    spacing = meta.get("spacing")
    pixel = args.pixel or (float(spacing[-1]) if spacing else None)
    bits = meta.get("bits") or 32
    print(f"fitting {args.image} {tuple(image.shape)} (pixel "
          f"{f'{pixel:.4g} µm' if pixel else 'unknown'}); this simulates ~40 candidates (1-2 min)")
    fit = fit_image(image, pixel=pixel, na=args.na, ni=args.ni, wavelength=args.wavelength,
                    psf=args.psf, offset=args.offset, dark=dark, sample=args.sample,
                    bits=min(int(bits), 32))
    if not args.no_refine:  # stage 2 trains on restorations of this image (restore.refine)
        fit.run["train"]["refine"] = {"images": [str(Path(args.image).resolve())]}
        fit.report.append("refine: training ends on restorations of this image through the "
                          "camera (train.refine; --no-refine for the library alone)")
    header = [f"# synthcare fit {args.image}"] + [f"# {line}" for line in fit.report]
    text = "\n".join(header) + "\n" + yaml.safe_dump(fit.run, sort_keys=False)
    atomic_write(make_parent(out), lambda p: p.write_text(text))
    print("\n".join(fit.report))
    print(f"config: {out}  (train with: synthcare train --config {out} --out RUN)")
    print(f"figure: {plot_fit(image, fit.run, make_parent(plot))}")


def _steps_minutes(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.steps is not None:
        extra.append(f"train.steps={args.steps}")
    if args.minutes is not None:
        extra.append(f"train.minutes={args.minutes}")
        if args.steps is None:
            extra.append("train.steps=null")
    return extra


def cmd_train(args: argparse.Namespace) -> None:
    from .config import load_run
    from .train import train

    clean = [f"sample.images.folder={args.clean}"] if args.clean else []
    run = load_run(args.preset, args.config, _overrides(args, train=True) + _steps_minutes(args) + clean)
    if run.sample.images.folder:  # refuse a bad folder before any work
        from simulate.images import load_folder

        load_folder(run.sample.images.folder, tuple(run.shape), run.sample.images.units)
    summary = train(run, args.out, pairs=args.pairs, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return  # one report for a torchrun job: rank 0's
    print(f"{summary['status']}: {summary['steps']} steps in {summary['seconds'] / 60:.1f} min, "
          f"best validation loss {summary['best_val_loss']:.4f}, model in {summary['out']}")
    if summary["status"] == "interrupted":
        raise Interrupted("interrupted after checkpointing; resume with the same command and "
                          "--resume")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate, table

    result = evaluate(args.model, args.n, json_path=args.json)
    print(table(result))


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_model

    out = export_model(args.model, args.out, args.format, author=args.author)
    print(f"exported: {out}  ({args.format})")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import demo

    demo(args.out, minutes=args.minutes)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("synthcare")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="synthcare", description="Simulate fluorescence microscopy and train CARE networks.")
    parser.add_argument("--version", action="version", version=f"synthcare {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write simulated (low, GT, clean) TIFF pairs",
                       description="Simulate pairs into DIR/low, DIR/GT, DIR/clean (resumable).")
    _add_config_args(p)
    p.add_argument("--n", type=int, default=10, help="number of pairs (default 10)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: the config's)")
    p.add_argument("--preview", metavar="PNG", help="write a montage of pair 0")
    p.add_argument("--format", choices=["tiff", "zarr"], default="tiff", help="tiff: low/, GT/, "
                   "clean/ TIFFs; zarr: one OME-Zarr group (NGFF 0.5) with low, GT and clean images "
                   "(axes s, z, y, x; one pair per chunk)")
    p.add_argument("--overwrite", action="store_true", help="write into --out even if it holds "
                   "files synthcare did not write (they may be replaced)")
    p.add_argument("--scheduler", help="make the pairs on a Dask cluster: local:W (W worker "
                   "processes here) or a scheduler address like tcp://host:8786 (with --format zarr)")
    p.add_argument("--volumes", type=int, default=0, metavar="M", help="also write M held-out "
                   "evaluation cases into OUT/eval: input/ exactly as the microscope records it (the "
                   "acquired stack for upsample and isotropic), reference/ on the grid predict "
                   "returns — the cases synthcare evaluate scores (default 0)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("train", help="train a CARE network on simulated (or real) pairs",
                       description="Train on pairs simulated on the fly (or --pairs DIR).")
    _add_config_args(p)
    p.add_argument("--pairs", help="pairs on disk: a folder with low/ and GT/ TIFFs of matching "
                   "names, a CSBDeep training-data .npz (X, Y, axes from create_patches), or an "
                   "OME-Zarr dataset (simulate --format zarr; read lazily)")
    p.add_argument("--clean", help="folder of clean images of your own: semi-synthetic pairs through "
                   "the camera model (sample.images.folder; mix with the library by "
                   "--set sample.images.fraction=F)")
    p.add_argument("--steps", type=int, help="optimiser steps (overrides train.steps)")
    p.add_argument("--minutes", type=float, help="wall-clock budget (overrides train.minutes)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, run.yaml)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="restore an image with a trained model",
                       description="Restore a TIFF, OME-TIFF or OME-Zarr image of any size (tiled "
                       "automatically; OME-Zarr read and written block by block).")
    p.add_argument("--model", required=True, help="run folder of a trained model")
    p.add_argument("input", help="input TIFF, OME-Zarr image (e.g. data.zarr/low) or Zarr array")
    p.add_argument("-o", "--output", required=True, help="output TIFF (float32), or a new "
                   "OME-Zarr image for a path ending in .zarr")
    p.add_argument("--axes", help="axes of the input, e.g. YX, ZYX, CYX (default: from the file)")
    p.add_argument("--memory", type=float, metavar="MiB", help="memory for one block of an "
                   "OME-Zarr prediction and the network's tiles (default: min(2 GiB, 1/4 of "
                   "RAM); CUDA: half the free memory)")
    p.add_argument("--tiles", default="auto", help="auto, none, or counts per axis like 1,4,4")
    p.add_argument("--scale", metavar="FILE", help="also write the per-pixel Laplace scale "
                   "(uncertainty, input units) of a probabilistic model")
    p.add_argument("--voxel-size", metavar="Z,Y,X", help="the input's voxel size in µm (default: "
                   "from the file); a difference of over 10%% from training is flagged")
    p.add_argument("--factor", type=int, help="z-step / pixel of the input (upsample and isotropic "
                   "models; default: the model's)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average the "
                   "predictions of the 8 rotations and flips of each YX plane (8x the time, "
                   "a little more quality)")
    p.add_argument("--report", metavar="JSON", help="check the input against the model's training "
                   "data and the output against the input (denoising models; see restore.guard)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a model on held-out simulated images",
                       description="PSNR/SSIM/NRMSE of input, tuned Gaussian filter and network.")
    p.add_argument("--model", required=True, help="run folder of a trained model")
    p.add_argument("--n", type=int, default=8, help="held-out pairs (default 8)")
    p.add_argument("--json", help="also write the scores as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="simulate, train briefly, restore and report (≤ 5 min on 2 cores)")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--minutes", type=float, default=3.0, help="training minutes (default 3)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("study", help="sweep imaging settings; train, evaluate and report per point",
                       description="Run a study file (preset, sweep of one or two settings, budget); "
                       "resumable: an interrupted study continues at its first unfinished point.")
    p.add_argument("study", help="study YAML")
    p.add_argument("--out", required=True, help="study folder (results, plots, report.md)")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("calibrate", help="estimate camera gain, offset and read noise from images",
                       description="Photon-transfer calibration from one raw image or stack (or "
                       "from flat fields and dark frames); writes a camera section for --camera.")
    p.add_argument("image", nargs="?", help="raw camera image or stack (TIFF, ADU)")
    p.add_argument("--out", default="camera.yaml", help="camera YAML to write (default camera.yaml)")
    p.add_argument("--plot", help="PNG of the variance-mean fit")
    p.add_argument("--offset", type=float, help="known offset, ADU (e.g. from the data sheet)")
    p.add_argument("--dark", help="TIFF stack of dark frames (fixes offset and read noise)")
    p.add_argument("--flat", nargs="+", help="TIFF stacks of flat fields, one per light level")
    p.add_argument("--em-gain", type=float, help="EM gain of an EMCCD (slope = gain·G·F², F² = 2)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("fit", help="match the simulation to a raw image: camera, optics, photons, "
                       "sample", description="Write a run configuration whose simulated images look "
                       "like IMAGE (2D denoising), and a figure comparing the two.")
    p.add_argument("image", help="raw camera image (TIFF, PNG), one 2D plane in ADU")
    p.add_argument("--out", default="fit.yaml", help="configuration to write (default fit.yaml)")
    p.add_argument("--plot", help="figure to write (default: --out with .png)")
    p.add_argument("--task", default="denoise", choices=["denoise"], help="the task (denoise)")
    p.add_argument("--pixel", type=float, help="pixel size in the sample, µm (default: the file's "
                   "metadata, else estimated from the resolution)")
    p.add_argument("--na", type=float, help="numerical aperture (default: estimated)")
    p.add_argument("--ni", type=float, help="immersion refractive index")
    p.add_argument("--wavelength", type=float, help="emission wavelength, µm (default 0.52)")
    p.add_argument("--psf", choices=["gaussian", "widefield", "confocal"], help="PSF model "
                   "(default widefield)")
    p.add_argument("--offset", type=float, help="known camera offset, ADU")
    p.add_argument("--dark", help="dark frames (TIFF), fixing offset and read noise")
    p.add_argument("--sample", help="use this library sample instead of the best ranked "
                   "(microtubules, granules, nuclei, cells, membranes, mitochondria, actin)")
    p.add_argument("--no-refine", action="store_true", help="train on the sample library alone "
                   "(default: the last part of training refines on restorations of IMAGE)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("export", help="a trained model as a bioimage.io package, TorchScript or ONNX",
                       description="Export a trained model for Fiji/deepImageJ, napari, ilastik, "
                       "QuPath and bioimageio.core (bioimage.io model package, format 0.5, with "
                       "PyTorch, TorchScript and ONNX weights), or the network alone.")
    p.add_argument("--model", required=True, help="run folder of a trained model")
    p.add_argument("--out", required=True, help="bioimageio: a .zip, or a new folder; torchscript, "
                   "onnx: the file")
    p.add_argument("--format", choices=["bioimageio", "torchscript", "onnx"], default="bioimageio")
    p.add_argument("--author", default="synthcare user", help="author named in the package")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("presets", help="list the built-in presets, or print one",
                       description="List presets; `synthcare presets NAME` prints its YAML.")
    p.add_argument("name", nargs="?", help="preset to print")
    p.add_argument("--fields", action="store_true", help="list every setting's dotted name")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synthcare`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except SynthcareError as exc:
        print(f"synthcare: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"synthcare: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("synthcare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
