"""Quality of every workflow against its best tuned classical baseline, on held-out data.

    python benchmarks/quality.py [--minutes 10] [--n 6] [--seeds 3] [--only denoise2d,n2n]
                                 [--run-seeds 1,2] [--out DIR]

For each workflow preset and each of ``--seeds`` training seeds: train for ``--minutes`` on pairs
simulated on the fly (seed k: the config's ``seed`` and ``train.seed`` both k, so the pairs and
the initial weights differ; a run folder that already holds a finished model is reused, so an
interrupted benchmark resumes), evaluate on the same held-out cases for every seed (those of
seed 0, never seen in training or validation), and write ``DIR/<workflow>[-s<k>].json``, a PNG
panel (input | baseline | network | ground truth; XZ views for 3D), and at the end
``results.json`` and ``results.md`` (mean and min–max of the gain over the seeds, SSIM beside
PSNR; a goal is met only when every seed's run meets it). ``--run-seeds`` trains only those seeds
and reports the others' scored runs where the folder holds them (a run split across sessions).
Noise2Noise is also trained with clean targets (same network, loss and budget) to show how close
it gets. Goals: +1.5 dB PSNR over the best baseline for denoise2d, +1.0 dB for every other
workflow.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import emit

from restore.checkpoints import load_model
from restore.config import load_run
from restore.evaluate import evaluate_model, figure, table
from restore.train import ensure_trained, read_log

WORKFLOWS = {  # name: (preset, extra settings, goal in dB)
    "denoise2d": ("denoise2d", [], 1.5),
    "denoise3d": ("denoise3d", [], 1.0),
    "upsample3d": ("upsample3d", [], 1.0),
    "isotropic": ("isotropic", [], 1.0),
    "deconvolve": ("deconvolve", [], 1.0),
    "n2n": ("n2n", [], 1.0),
    "n2n-clean-targets": ("n2n", ["task=denoise"], None),
}


def run_workflow(name: str, minutes: float, n: int, out: Path, seed: int = 0) -> dict:
    """Train (or reuse) and evaluate one workflow with training seed ``seed``; returns its row."""
    preset, extra, goal = WORKFLOWS[name]
    base = load_run(preset, None, extra)
    run = load_run(preset, None, [*extra, f"train.minutes={minutes}", "train.steps=null",
                                  *([f"seed={base.seed + seed}", f"train.seed={seed}"] if seed else [])])
    tag = run_tag(name, seed)
    run_dir = out / "runs" / tag
    scored = scored_row(out, tag)  # a finished, scored workflow is never redone
    if scored is not None:
        print(f"{tag}: reusing its scored row")
        return scored
    if ensure_trained(run, run_dir) is None:
        print(f"{tag}: reusing the finished model in {run_dir}")
    log = read_log(run_dir)
    t0 = time.perf_counter()
    model, _, _ = load_model(run_dir)  # scored on seed 0's held-out cases, whatever the seed
    result = evaluate_model(model, base.sim, base.seed, n, keep=True, json_path=out / f"{tag}.json")
    images = result.pop("images")
    best = result["best_baseline"]
    gain = result["network"]["psnr"] - result[best]["psnr"]
    figure(images, result, out / f"{tag}.png",
           title=f"{tag}: held-out data, network {gain:+.2f} dB over {best} "
                 f"({int(log[-1]['step'])} steps, {log[-1]['seconds'] / 60:.1f} min)")
    print(f"\n{tag}\n{table(result)}\n")
    row = {"workflow": name, "seed": seed, "task": run.task, "shape": list(run.shape),
           "photons": run.camera.photons, "steps": int(log[-1]["step"]),
           "train_minutes": log[-1]["seconds"] / 60, "eval_seconds": time.perf_counter() - t0,
           "n_eval": n, "best_baseline": best, "scores": result, "gain_db": gain, "goal_db": goal,
           "goal_met": None if goal is None else gain >= goal}
    (out / "rows").mkdir(exist_ok=True)
    (out / "rows" / f"{tag}.json").write_text(json.dumps(row, indent=1))
    return row


def run_tag(name: str, seed: int) -> str:
    """The name of one run: the workflow, and ``-s<k>`` for training seeds other than 0."""
    return name if seed == 0 else f"{name}-s{seed}"


def scored_row(out: Path, tag: str) -> dict | None:
    """A finished run's row: ``DIR/rows/<tag>.json`` (small, kept in git, so a benchmark can
    resume in another session without the models), or the older ``DIR/runs/<tag>/row.json``."""
    for path in (out / "rows" / f"{tag}.json", out / "runs" / tag / "row.json"):
        if path.exists():
            return json.loads(path.read_text())
    return None


def summary_line(runs: list[dict]) -> str:
    """One table row for a workflow's runs (one per seed)."""
    r0, gains = runs[0], [r["gain_db"] for r in runs]
    s0, best = r0["scores"], r0["best_baseline"]
    first = "input" if "input" in s0 else "linear"
    net = [r["scores"]["network"] for r in runs]
    spread = f" [{min(gains):+.2f}, {max(gains):+.2f}]" if len(runs) > 1 else ""
    met = sum(bool(r["goal_met"]) for r in runs)
    goal = "—" if r0["goal_db"] is None else (
        f"+{r0['goal_db']:.1f} dB: {'met' if met == len(runs) else 'NOT met'} ({met}/{len(runs)})")
    return (f"| {r0['workflow']} | {r0['photons']:g} | {len(runs)} | "
            f"{np.mean([r['steps'] for r in runs]):.0f} ({r0['train_minutes']:.1f}) | "
            f"{s0[first]['psnr']:.2f} / {s0[first]['ssim']:.3f} | "
            f"{best} {s0[best]['psnr']:.2f} / {s0[best]['ssim']:.3f} | "
            f"{np.mean([x['psnr'] for x in net]):.2f} / {np.mean([x['ssim'] for x in net]):.3f} | "
            f"{np.mean(gains):+.2f}{spread} | {goal} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--n", type=int, default=6, help="held-out pairs per workflow")
    ap.add_argument("--seeds", type=int, default=1, help="training seeds per workflow (0 … S−1)")
    ap.add_argument("--only", help="comma-separated workflows")
    ap.add_argument("--run-seeds", help="comma-separated seeds to train (default: all of 0 … S−1)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality"))
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    run_seeds = set(range(args.seeds))
    if args.run_seeds:
        try:
            run_seeds = {int(k) for k in args.run_seeds.split(",")}
        except ValueError:
            ap.error(f"--run-seeds takes comma-separated integers, got {args.run_seeds!r}")
        if not run_seeds <= set(range(args.seeds)):
            ap.error(f"--run-seeds must lie in 0 … {args.seeds - 1} (--seeds {args.seeds}), "
                     f"got {sorted(run_seeds)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(WORKFLOWS)
    unknown = set(names) - set(WORKFLOWS)
    if unknown:
        ap.error(f"unknown workflow(s) {sorted(unknown)}; choose from {list(WORKFLOWS)}")
    rows, md = [], [
        "| workflow | photons | seeds | steps (min) | input | best baseline | network | gain: mean "
        "[min, max] | goal |", "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for name in WORKFLOWS:  # the report keeps the other workflows' scored rows (--only reruns some)
        runs = []
        for seed in range(args.seeds):
            if name in names and seed in run_seeds:
                runs.append(run_workflow(name, args.minutes, args.n, out, seed))
            elif (scored := scored_row(out, run_tag(name, seed))) is not None:
                runs.append(scored)
        if runs:
            rows += runs
            md.append(summary_line(runs))
    (out / "results.md").write_text(
        "PSNR (dB) / SSIM on the same held-out simulated data for every training seed (the "
        "network's: mean over the seeds); see the JSON files for NRMSE and the per-run numbers."
        "\n\n" + "\n".join(md) + "\n")
    emit(rows, md, str(out / "results.json"))


if __name__ == "__main__":
    main()
