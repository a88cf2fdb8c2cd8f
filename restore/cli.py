"""The ``synthcare`` command line: one console script with sub-commands.

Errors a user can cause print one line (``synthcare: error: ...``) and exit with status 2; an
interrupted command exits with 130 and can be re-run to resume. torch is only imported by the
sub-commands that train or predict, so ``synthcare simulate`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from simulate.config import SimConfig, field_names, list_presets, load, preset_text
from simulate.errors import SynthcareError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("configuration")
    src.add_argument("--preset", help="built-in preset (see `synthcare presets`)")
    src.add_argument("--config", help="YAML/JSON configuration file")
    src.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="override one setting by dotted name, value in YAML "
                          "(e.g. --set optics.na=1.0 --set shape=[16,64,64]); repeatable")


def cmd_simulate(args: argparse.Namespace) -> None:
    from simulate.io import preview, write_dataset

    cfg = load(args.preset, args.config, args.overrides)
    if args.preview:
        print(f"preview: {preview(cfg, args.preview, seed=args.seed)}")
    if args.out:
        out = write_dataset(cfg, args.out, args.n, seed=args.seed)
        print(f"dataset: {out}  ({args.n} pairs, task {cfg.task}, shape {list(cfg.shape)})")
    elif not args.preview:
        raise SynthcareError("give --out DIR (and --n N) to write a dataset, or --preview PNG")


def cmd_presets(args: argparse.Namespace) -> None:
    if args.fields:
        for name in field_names(SimConfig):
            print(name)
        return
    if args.name:
        print(preset_text(args.name), end="")
        return
    for name in list_presets():
        first = preset_text(name).splitlines()[0].lstrip("# ")
        print(f"{name:12s} {first}")


def cmd_demo(args: argparse.Namespace) -> None:
    from simulate.io import preview, write_dataset

    cfg = load("denoise2d")
    png = preview(cfg, f"{args.out}/preview.png")
    out = write_dataset(cfg, f"{args.out}/pairs", 4)
    print(f"demo: simulated 2D denoising pairs in {out}, preview {png}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="synthcare", description="Simulate fluorescence microscopy and train CARE networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write simulated (low, GT, clean) TIFF pairs",
                       description="Simulate pairs into DIR/low, DIR/GT, DIR/clean (resumable).")
    _add_config_args(p)
    p.add_argument("--n", type=int, default=10, help="number of pairs (default 10)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: the config's)")
    p.add_argument("--preview", metavar="PNG", help="write a montage of pair 0")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="run the built-in demo (simulate 2D denoising pairs)")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.set_defaults(func=cmd_demo)

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
    except KeyboardInterrupt:
        print("synthcare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
