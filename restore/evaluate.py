"""Evaluation on held-out simulated images, against tuned classical baselines, with a figure.

Held-out pairs come from the seed ``run.seed + TEST_OFFSET`` (never seen in training or
validation); baselines are tuned on the validation seed. Every method is scored against the
noise-free reference with :func:`restore.metrics.scores`:

* denoise, n2n: the input, a tuned Gaussian filter, the network, against the clean image;
* deconvolve: the input, Richardson–Lucy with the true PSF (iterations tuned), the network,
  against the sample through the narrow target PSF;
* upsample, isotropic: linear and cubic interpolation of the acquired stack along z, and the
  network, against the isotropically sampled reference volume (:func:`simulate.simulate_volume`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from simulate import (
    Camera,
    SimConfig,
    SynthcareError,
    atomic_write,
    save_figure,
)
from simulate.dataset import eval_case
from simulate.paths import check_output_file, make_parent

from . import baselines
from .checkpoints import load_model
from .data import TEST_OFFSET, VALIDATION_OFFSET
from .metrics import fit_affine, mean_scores, normalise_gt, scores
from .predict import predict_task
from .workflows import workflow

Method = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Case:
    """A held-out input as acquired and the reference a restoration should reach."""

    input: np.ndarray
    reference: np.ndarray


def cases(cfg: SimConfig, seed: int, n: int) -> list[Case]:
    """``n`` evaluation cases of dataset ``seed``, always simulated on the CPU (scores do not
    depend on where a network was trained)."""
    return [Case(*eval_case(cfg, seed, i)) for i in range(n)]


def tuned_baselines(cfg: SimConfig, validation: list[Case]) -> tuple[dict[str, Method], dict]:
    """The task's classical methods with their knobs tuned on ``validation``; and the knobs."""
    pairs = [(c.input, c.reference) for c in validation]
    kind = workflow(cfg.task).baselines
    if kind == "interpolation":
        k = cfg.sampling.z_factor
        return ({"linear": lambda x: baselines.interpolate_z(x, k, 1),
                 "cubic": lambda x: baselines.interpolate_z(x, k, 3)}, {})
    if kind == "richardson-lucy":
        camera = Camera.from_config(cfg.camera)
        kernel = baselines.detector_psf(cfg, validation[0].input.shape)
        runs = [baselines.richardson_lucy(x, kernel, baselines.RL_ITERATIONS, camera) for x, _ in pairs]
        best = max(baselines.RL_ITERATIONS, key=lambda n: np.mean(
            [scores(r[n], ref)["psnr"] for r, (_, ref) in zip(runs, pairs, strict=True)]))
        return ({"input": lambda x: x,
                 "richardson-lucy": lambda x: baselines.richardson_lucy(x, kernel, [best], camera)[best]},
                {"richardson-lucy": {"iterations": best}})
    sigma = float(baselines.tune(baselines.SIGMAS, baselines.gaussian, pairs))
    return ({"input": lambda x: x, "gaussian": lambda x: baselines.gaussian(x, sigma)},
            {"gaussian": {"sigma": sigma}})


def evaluate(run_dir: str | Path, n: int = 8, *, json_path: str | Path | None = None,
             progress: bool = True, keep: bool = False) -> dict:
    """Scores ``{method: {psnr, ssim, nrmse}}`` on ``n`` held-out cases of the run's own
    configuration; ``best_baseline`` names the baseline with the highest PSNR. With ``keep`` the
    first case's images are returned under ``'images'`` (input | best baseline | network | ground
    truth)."""
    if n < 1:
        raise SynthcareError(f"--n must be at least 1 held-out case, got {n}")
    if json_path is not None:
        check_output_file(json_path, "--json")
    model, run, _ = load_model(run_dir)
    return evaluate_model(model, run.sim, run.seed, n, json_path=json_path, progress=progress,
                          keep=keep)


def evaluate_model(model, cfg: SimConfig, seed: int, n: int = 8, *,
                   json_path: str | Path | None = None, progress: bool = True,
                   keep: bool = False) -> dict:
    """:func:`evaluate` for a loaded model on held-out cases of any configuration ``cfg``
    (dataset ``seed``: baselines tuned on its validation seed, scored on its test seed)."""
    methods, knobs = tuned_baselines(cfg, cases(cfg, seed + VALIDATION_OFFSET, 2))
    axes = "YX" if cfg.ndim == 2 else "ZYX"
    methods["network"] = lambda x: predict_task(model, cfg.task, x, axes,
                                                z_factor=cfg.sampling.z_factor, sim=cfg)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    kept = None
    for i, case in enumerate(tqdm(cases(cfg, seed + TEST_OFFSET, n), desc="evaluate",
                                  disable=not progress)):
        outputs = {m: f(case.input) for m, f in methods.items()}
        for m, out in outputs.items():
            rows[m].append(scores(out, case.reference))
        if i == 0 and keep:
            kept = (outputs, case.reference)
    result: dict = {m: {**mean_scores(r), **knobs.get(m, {})} for m, r in rows.items()}
    result["best_baseline"] = max((m for m in methods if m != "network"),
                                  key=lambda m: result[m]["psnr"])
    result["task"], result["n"] = cfg.task, n
    if json_path is not None:
        atomic_write(make_parent(json_path), lambda p: p.write_text(json.dumps(result, indent=2)))
    if keep:
        outputs, ref = kept
        first = next(iter(outputs))  # the input, or its linear interpolation
        shown = {first: outputs[first]}
        if result["best_baseline"] != first:
            shown[result["best_baseline"]] = outputs[result["best_baseline"]]
        shown["network"] = outputs["network"]
        shown["ground truth"] = ref
        result["images"] = shown
    return result


def table(result: dict) -> str:
    """A markdown table of the scores."""
    lines = ["| method | PSNR (dB) | SSIM | NRMSE |", "|---|---:|---:|---:|"]
    for method, r in result.items():
        if not isinstance(r, dict) or "psnr" not in r:
            continue
        knob = ", ".join(f"{k}={v:g}" for k, v in r.items() if k not in ("psnr", "ssim", "nrmse"))
        name = f"{method} ({knob})" if knob else method
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['nrmse']:.4f} |")
    return "\n".join(lines)


def figure(images: dict[str, np.ndarray], result: dict, path: str | Path, title: str = "") -> Path:
    """PNG panel of the methods and the ground truth, each with its scores: the image in 2D;
    for 3D, the XY maximum projection above the XZ one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = images["ground truth"]
    views = [(lambda a: a)] if ref.ndim == 2 else [(lambda a: a.max(axis=0)), (lambda a: a.max(axis=1))]
    rows = len(views)
    heights = [1.0] if rows == 1 else [1.0, max(0.25, ref.shape[0] / ref.shape[1])]
    fig, axes = plt.subplots(rows, len(images), figsize=(4.2 * len(images), 4.6 * sum(heights)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for row, view in enumerate(views):
        g = normalise_gt(view(ref))
        for col, (name, img) in enumerate(images.items()):
            shown = fit_affine(view(img), g)  # same grey levels for every panel
            ax = axes[row, col]
            ax.imshow(shown, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest",
                      aspect="auto" if row else "equal")
            r = result.get(name)
            if row == 0:
                label = name if not isinstance(r, dict) else (
                    f"{name}\nPSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}")
                ax.set_title(label, fontsize=11)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.92) if title else None)
    return save_figure(fig, path, dpi=90)
