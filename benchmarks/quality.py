"""Quality of every workflow against its best tuned classical baseline, on held-out data.

    python benchmarks/quality.py [--minutes 10] [--n 6] [--only denoise2d,n2n] [--out DIR]

For each workflow preset: train for ``--minutes`` on pairs simulated on the fly (a run folder
that already holds a finished model is reused, so an interrupted benchmark resumes), evaluate on
held-out seeds (never seen in training or validation), and write ``DIR/<workflow>.json``, a PNG
panel (input | baseline | network | ground truth; XZ views for 3D), and at the end
``results.json`` and ``results.md``. Noise2Noise is also trained with clean targets (same
network, loss and budget) to show how close it gets. Goals: +1.5 dB PSNR over the best
baseline for denoise2d, +1.0 dB for every other workflow.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import emit

from restore.config import load_run
from restore.evaluate import evaluate, figure, table
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


def run_workflow(name: str, minutes: float, n: int, out: Path) -> dict:
    """Train (or reuse) and evaluate one workflow; returns its result row."""
    preset, extra, goal = WORKFLOWS[name]
    run = load_run(preset, None, [*extra, f"train.minutes={minutes}", "train.steps=null"])
    run_dir = out / "runs" / name
    row_file = run_dir / "row.json"  # a finished, scored workflow is never redone
    if row_file.exists():
        print(f"{name}: reusing the scored run in {run_dir}")
        return json.loads(row_file.read_text())
    if ensure_trained(run, run_dir) is None:
        print(f"{name}: reusing the finished model in {run_dir}")
    log = read_log(run_dir)
    t0 = time.perf_counter()
    result = evaluate(run_dir, n, keep=True, json_path=out / f"{name}.json")
    images = result.pop("images")
    best = result["best_baseline"]
    gain = result["network"]["psnr"] - result[best]["psnr"]
    figure(images, result, out / f"{name}.png",
           title=f"{name}: held-out data, network {gain:+.2f} dB over {best} "
                 f"({int(log[-1]['step'])} steps, {log[-1]['seconds'] / 60:.1f} min)")
    print(f"\n{name}\n{table(result)}\n")
    row = {"workflow": name, "task": run.task, "shape": list(run.shape),
            "photons": run.camera.photons, "steps": int(log[-1]["step"]),
            "train_minutes": log[-1]["seconds"] / 60, "eval_seconds": time.perf_counter() - t0,
            "n_eval": n, "best_baseline": best, "scores": result, "gain_db": gain, "goal_db": goal,
            "goal_met": None if goal is None else gain >= goal}
    row_file.write_text(json.dumps(row, indent=1))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--n", type=int, default=6, help="held-out pairs per workflow")
    ap.add_argument("--only", help="comma-separated workflows")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(WORKFLOWS)
    unknown = set(names) - set(WORKFLOWS)
    if unknown:
        ap.error(f"unknown workflow(s) {sorted(unknown)}; choose from {list(WORKFLOWS)}")
    rows = []
    for name in WORKFLOWS:  # the report keeps the other workflows' scored rows (--only reruns some)
        scored = out / "runs" / name / "row.json"
        if name in names:
            rows.append(run_workflow(name, args.minutes, args.n, out))
        elif scored.exists():
            rows.append(json.loads(scored.read_text()))
    md = ["| workflow | photons | steps (min) | input | best baseline | network | gain | goal |",
          "|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        s = r["scores"]
        first = "input" if "input" in s else "linear"
        verdict = "met" if r["goal_met"] else "NOT met"
        goal = "—" if r["goal_db"] is None else f"+{r['goal_db']:.1f} dB {verdict}"
        md.append(f"| {r['workflow']} | {r['photons']:g} | {r['steps']} ({r['train_minutes']:.1f}) | "
                  f"{s[first]['psnr']:.2f} | {r['best_baseline']} {s[r['best_baseline']]['psnr']:.2f} | "
                  f"{s['network']['psnr']:.2f} | {r['gain_db']:+.2f} | {goal} |")
    (out / "results.md").write_text("PSNR (dB) on held-out simulated data; see the JSON files for "
                                    "SSIM and NRMSE.\n\n" + "\n".join(md) + "\n")
    emit(rows, md, str(out / "results.json"))


if __name__ == "__main__":
    main()
