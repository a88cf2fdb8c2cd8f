"""Imaging-model studies: sweep microscope settings and measure what restoration recovers.

A study file (YAML) names a base ``preset``, a ``sweep`` of one or two settings by dotted name
with their values, and a training budget::

    preset: denoise2d
    sweep:
      camera.photons: [2, 5, 10, 20, 50, 100]
    mode: shared        # one network trained across the whole range (default), or per_point
    minutes: 8          # training budget: the whole shared run, or each point's
    n: 6                # held-out cases per point
    set: {}             # extra settings applied to every point

Every point is built and validated before any work starts, so a wrong name or value fails at
once with the point it belongs to. For each point the network, the best tuned classical baseline
and the input are scored on held-out simulated cases. Output in ``--out``: ``results.csv`` and
``results.json`` (one row per point), ``<metric>.png`` (metric against the swept setting, one
line per method), ``examples.png`` (a panel per point) and ``report.md``. A study resumes where
it stopped: finished points are never redone, and a second run changes nothing.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from simulate import ConfigError, Settings, atomic_write, ensure_writable, read_yaml, save_figure
from simulate.config_io import apply_overrides, load_preset, validate
from simulate.paths import check_output_folder, folder_lock

from .checkpoints import load_model
from .config import RunConfig
from .data import model_ndim
from .evaluate import evaluate_model
from .metrics import fit_affine, normalise_gt
from .train import ensure_trained, read_log

METRICS = ("psnr", "ssim", "nrmse")


class StudyConfig(Settings):
    """A study file."""

    preset: str = Field(description="base preset (see `synthcare presets`)")
    sweep: dict[str, list[Any]] = Field(description="one or two dotted settings with their values")
    mode: str = Field("shared", pattern="^(shared|per_point)$",
                      description="shared: one network across the range; per_point: one per point")
    minutes: float | None = Field(None, gt=0, description="training minutes (shared: total)")
    steps: int | None = Field(None, gt=0, description="training steps (shared: total)")
    n: int = Field(6, ge=1, le=100, description="held-out cases per point")
    set: dict[str, Any] = Field(default_factory=dict, description="settings for every point")


def load_study(path: str | Path) -> tuple[StudyConfig, list[dict[str, Any]], list[RunConfig]]:
    """Read and check a study: its config, its points (``{name: value}``) and their runs."""
    study = validate(StudyConfig, read_yaml(path))
    if not 1 <= len(study.sweep) <= 2:
        raise ConfigError(f"sweep must name one or two settings, got {len(study.sweep)}")
    if study.minutes is None and study.steps is None:
        raise ConfigError("give the training budget: minutes or steps")
    for name, values in study.sweep.items():
        if not values:
            raise ConfigError(f"sweep.{name} has no values")
    try:
        base = load_preset(study.preset)
    except Exception:
        raise ConfigError(f"unknown preset '{study.preset}' (see `synthcare presets`)") from None
    budget = {"train.steps": study.steps, "train.minutes": study.minutes}
    names = list(study.sweep)
    points = [dict(zip(names, combo, strict=True))
              for combo in itertools.product(*study.sweep.values())]
    runs = []
    for point in points:
        try:
            data = apply_overrides(base, {**study.set, **budget, **point}, RunConfig)
            runs.append(validate(RunConfig, data))
        except ConfigError as exc:
            raise ConfigError(f"study point {_label(point)}: {exc}") from None
    if study.mode == "shared":
        first = runs[0]
        for name in names:
            if name.startswith("train.") or name in ("task", "seed"):
                raise ConfigError(f"sweeping {name} changes the training itself: use mode: per_point")
        for point, run in zip(points, runs, strict=True):
            if (run.task, model_ndim(run), run.train) != (first.task, model_ndim(first), first.train):
                raise ConfigError(f"study point {_label(point)} needs another network (task or "
                                  "dimensions differ): use mode: per_point")
    return study, points, runs


def _label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _slug(point: dict[str, Any]) -> str:
    return "_".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in point.items()).replace("/", "-")


def run_study(path: str | Path, out: str | Path, *, progress: bool = True) -> list[dict]:
    """Run (or resume) the study in ``path`` into the folder ``out``; returns its rows."""
    study, points, runs = load_study(path)
    out = check_output_folder(out, "--out")
    with folder_lock(out, "study"):
        return _run_points(study, points, runs, ensure_writable(out), progress)


def _run_points(study, points: list[dict], runs: list, out: Path, progress: bool) -> list[dict]:
    """The study's points not yet on disk: train, evaluate and record each; then the report."""
    spec = study.model_dump(mode="json")
    spec_file = out / "study.json"
    if spec_file.exists():
        if json.loads(spec_file.read_text()) != spec:
            raise ConfigError(f"{out} holds a different study; use another --out")
    else:
        atomic_write(spec_file, lambda p: p.write_text(json.dumps(spec, indent=1)))
    rows, images, new = [], [], False
    for i, (point, run) in enumerate(zip(points, runs, strict=True)):
        row_file = out / "points" / f"{i:02d}_{_slug(point)}.json"
        if row_file.exists():
            rows.append(json.loads(row_file.read_text()))
            continue
        run_dir = out / "model" if study.mode == "shared" else out / "models" / f"{i:02d}_{_slug(point)}"
        shared = study.mode == "shared"
        ensure_trained(runs[0] if shared else run, run_dir, progress=progress,
                       mixture=runs if shared else None)
        model, trained, _ = load_model(run_dir)
        result = evaluate_model(model, run.sim, trained.seed, study.n, progress=progress, keep=True)
        shown = result.pop("images")
        row_file.parent.mkdir(exist_ok=True)
        np.savez_compressed(row_file.with_suffix(".npz"), **{k: _view(v) for k, v in shown.items()})
        log = read_log(run_dir)
        best = result["best_baseline"]
        rows.append({**point, "point": i, "best_baseline": best,
                     "train_steps": int(log[-1]["step"]), "train_minutes": log[-1]["seconds"] / 60,
                     **{f"{m}_{k}": result[m][k] for m in ("input", best, "network")
                        if m in result for k in METRICS},
                     "scores": result})
        atomic_write(row_file, lambda p, r=rows[-1]: p.write_text(json.dumps(r, indent=1)))
        new = True
    if new or not (out / "report.md").exists():
        for i, point in enumerate(points):
            with np.load(out / "points" / f"{i:02d}_{_slug(point)}.npz") as z:
                images.append(dict(z))
        _write_outputs(study, points, rows, images, out)
    return rows


def _view(a: np.ndarray) -> np.ndarray:
    """The panel shown for an image: itself (2D) or its XY maximum projection (3D)."""
    return np.asarray(a if a.ndim == 2 else a.max(axis=0), dtype=np.float32)


def _methods(rows: list[dict]) -> list[str]:
    names = ["input", "linear"] if "linear" in rows[0]["scores"] else ["input"]
    base = {r["best_baseline"] for r in rows} - set(names)
    return [n for n in names if n in rows[0]["scores"]] + sorted(base) + ["network"]


def _write_outputs(study: StudyConfig, points: list[dict], rows: list[dict],
                   images: list[dict[str, np.ndarray]], out: Path) -> None:
    names = list(study.sweep)
    methods = _methods(rows)
    plain = [*names, "best_baseline", "train_steps", "train_minutes"]
    scored = [(m, k) for m in methods for k in METRICS]

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([*plain, *(f"{m}_{k}" for m, k in scored)])
            for r in rows:
                w.writerow([r.get(c, "") for c in plain]
                           + [r["scores"].get(m, {}).get(k, "") for m, k in scored])
    atomic_write(out / "results.csv", write_csv)
    atomic_write(out / "results.json", lambda p: p.write_text(json.dumps(rows, indent=1)))
    _plots(study, rows, methods, out)
    _examples(points, images, out)
    md = [f"# Study: {', '.join(names)} ({study.preset}, {study.mode} training, "
          f"{study.minutes or study.steps} {'min' if study.minutes else 'steps'})", "",
          "PSNR (dB) on held-out simulated cases; the best classical baseline is tuned per point.",
          "", "| " + " | ".join(names) + " | " + " | ".join(methods) + " | network gain |",
          "|" + "---:|" * (len(names) + len(methods) + 1)]
    for r in rows:
        s = r["scores"]
        cells = [f"{s[m]['psnr']:.2f}" if m in s else "—" for m in methods]
        gain = s["network"]["psnr"] - s[r["best_baseline"]]["psnr"]
        md.append("| " + " | ".join(str(r[n]) for n in names) + " | " + " | ".join(cells)
                  + f" | {gain:+.2f} |")
    md += ["", "![PSNR](psnr.png) ![SSIM](ssim.png)", "", "![examples](examples.png)", ""]
    atomic_write(out / "report.md", lambda p: p.write_text("\n".join(md)))


def _plots(study: StudyConfig, rows: list[dict], methods: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(study.sweep)
    x_name = names[0]
    groups = sorted({r[names[1]] for r in rows}) if len(names) == 2 else [None]
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for ci, method in enumerate(methods):
            for gi, g in enumerate(groups):
                sel = [r for r in rows if g is None or r[names[1]] == g]
                xs = [r[x_name] for r in sel]
                ys = [r["scores"].get(method, {}).get(metric, np.nan) for r in sel]
                label = method if g is None else f"{method}, {names[1]}={g}"
                ax.plot(xs, ys, marker="o", color=f"C{ci}", ls=["-", "--", ":", "-."][gi % 4],
                        label=label)
        numeric = all(isinstance(r[x_name], int | float) for r in rows)
        if numeric and min(r[x_name] for r in rows) > 0 and \
                max(r[x_name] for r in rows) / min(r[x_name] for r in rows) >= 10:
            ax.set_xscale("log")
        ax.set(xlabel=x_name, ylabel=metric.upper(), title=f"{metric.upper()} vs {x_name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_figure(fig, out / f"{metric}.png", dpi=100)


def _examples(points: list[dict], images: list[dict[str, np.ndarray]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(im) for im in images)
    fig, axes = plt.subplots(len(images), cols, figsize=(2.6 * cols, 2.6 * len(images)),
                             squeeze=False, constrained_layout=True)
    for row, (point, shown) in enumerate(zip(points, images, strict=True)):
        ref = normalise_gt(shown["ground truth"])
        for col, (name, img) in enumerate(shown.items()):
            ax = axes[row, col]
            # the input at its own contrast (its best affine fit to the truth is nearly flat at
            # a few photons); the restorations at the truth's grey levels, as scored
            shown_img = normalise_gt(img) if col == 0 else fit_affine(img, ref)
            ax.imshow(shown_img, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{name} (own contrast)" if col == 0 and row == 0 else
                         name if row == 0 else "", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(_label(point), fontsize=8)
        for col in range(len(shown), cols):
            axes[row, col].axis("off")
    save_figure(fig, out / "examples.png", dpi=80)
