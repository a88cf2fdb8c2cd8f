"""How a trained model compares with the classical baselines on its own simulated domain.

    python benchmarks/fit_domain.py RUN [RUN ...] [--n 3] [--size 512] [--json FILE]

For each run folder (e.g. ``benchmarks/results/realdata/runs/<pair>``, trained by
``benchmarks/realdata.py`` on a ``synthcare fit`` config): ``--n`` held-out images simulated from
the run's own configuration at ``--size``², restored by the network (no test-time
augmentation), the best Gaussian filter and BM3D after the variance-stabilising transform with
a camera fitted to each image (both tuned on the truth, as in ``realdata.py``), scored against
the noise-free target. It separates the two reasons a simulation-trained network can fall short
on a real image: if it does not beat BM3D here, on the very images it was trained for, no
better sample prior will make it beat BM3D on the real one; the training (network, budget) is
the limit. Needs the ``bench`` extra for BM3D.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit
from realdata import bm3d_best, gaussian_best

from restore.checkpoints import load_model
from restore.data import TEST_OFFSET
from restore.metrics import scores
from restore.predict import predict
from simulate.fit_noise import fit_camera
from simulate.pairs import simulate_pair

METHODS = ("input", "gaussian", "vst+bm3d", "network")


def score_run(run_dir: Path, n: int, size: int) -> dict:
    """Mean PSNR/SSIM of every method over ``n`` held-out simulated images of a run."""
    model, run, _ = load_model(run_dir)
    cfg = run.sim.with_overrides({"shape": [size, size]})
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    for i in range(n):
        pair = simulate_pair(cfg, run.seed + TEST_OFFSET, i)
        x, ref = pair.input.astype(np.float32), pair.clean
        rows["input"].append(scores(x, ref))
        rows["gaussian"].append(gaussian_best(x, ref)[1])
        cam, _, line = fit_camera(x, bits=cfg.camera.bits)
        read = float(np.sqrt(max(line.variance(cam["offset"]), 0.0)) / line.slope)
        best = bm3d_best(x, ref, (line.slope, cam["offset"], read))
        if best is not None:
            rows["vst+bm3d"].append(best[1])
        rows["network"].append(scores(predict(model, x, "YX"), ref))
    means = {m: {k: float(np.mean([r[k] for r in v])) for k in ("psnr", "ssim")}
             for m, v in rows.items() if v}
    return {"run": str(run_dir), "n": n, "size": size, "scores": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders of 2D denoising models")
    parser.add_argument("--n", type=int, default=3, help="held-out images per run")
    parser.add_argument("--size", type=int, default=512, help="image side, pixels")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    results = [score_run(Path(r), args.n, args.size) for r in args.runs]
    table = ["| run | " + " | ".join(METHODS) + " | network − BM3D |",
             "|---|" + "---|" * (len(METHODS) + 1)]
    for r in results:
        s = r["scores"]
        cells = [f"{s[m]['psnr']:.2f} / {s[m]['ssim']:.3f}" if m in s else "—" for m in METHODS]
        gain = (f"{s['network']['psnr'] - s['vst+bm3d']['psnr']:+.2f} dB" if "vst+bm3d" in s else "—")
        table.append(f"| {Path(r['run']).name} | " + " | ".join(cells) + f" | {gain} |")
    emit(results, table, args.json)


if __name__ == "__main__":
    main()
