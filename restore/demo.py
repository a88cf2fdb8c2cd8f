"""The built-in demo: simulate, train briefly, restore, report — in about 5 minutes on 2 cores.

2D denoising of microtubules and granules at a few photons per pixel (preset ``denoise2d`` at 20
photons at the brightest pixel, ~0.4 in the background):
a CARE network trains on pairs simulated on the fly for ``minutes``, is scored on held-out
images against the input and a tuned Gaussian filter, and the folder gets the model, the
scores (``scores.json``, printed as a table), TIFFs of one held-out image and a PNG figure.
"""

from __future__ import annotations

import time
from pathlib import Path

from simulate import ensure_writable, write_tiff
from simulate.errors import Interrupted
from simulate.paths import check_output_folder

from .config import load_run
from .evaluate import evaluate, figure, table
from .train import ensure_trained

# Chosen by measurement (3 min on 2 cores, 4 held-out images, PSNR vs the tuned Gaussian):
# filters 32, batch 16, residual          -0.6 dB (181 steps: too few)
# filters 16, batch 8, lr 1e-3, residual  -0.3 dB at 10 photons, +1.0 dB at 20
# filters 16, batch 8, lr 1e-3, no residual +0.3 dB at 10 photons, +1.6 dB at 20
# the same with the MSE loss (the preset's since)  +2.3 dB at 20 (fresh clone, 962 steps);
# +2.05 dB with the batch-wise patch draws of restore.data.draw_patches (fresh clone)
# At a few photons the residual connection makes the network cancel the input's noise exactly,
# which a short training does not learn; more small steps beat fewer large ones.
DEMO_SETTINGS = [
    "camera.photons=20",
    "train.steps=null",
    "train.val_every=50",
    "train.batch_size=8",
    "train.patch=[64,64]",
    "train.filters=16",
    "train.residual=false",
    "train.lr=1e-3",
    "train.val_patches=16",
]


def demo(out: str | Path = "demo-out", *, minutes: float = 3.0, n_eval: int = 4,
         progress: bool = True) -> dict:
    """Run the demo into ``out``; returns the scores."""
    out = ensure_writable(check_output_folder(out, "--out"))
    t0 = time.perf_counter()
    run = load_run("denoise2d", None, [*DEMO_SETTINGS, f"train.minutes={minutes}"])
    print(f"synthcare demo: 2D denoising at {run.camera.photons:g} photons peak, widefield NA "
          f"{run.optics.na}, training for {minutes:g} min on pairs simulated on the fly")
    model_dir = out / "model"
    # a demo interrupted while training continues where it stopped
    summary = ensure_trained(run, model_dir, progress=progress)
    if summary is None:
        print(f"(re-using the model in {model_dir}; delete it to train again)")
    elif summary["status"] == "interrupted":
        raise Interrupted("demo interrupted while training (checkpointed); run it again to "
                          "continue")
    result = evaluate(model_dir, n_eval, json_path=out / "scores.json", progress=progress, keep=True)
    images = result.pop("images")
    spacing = (run.sampling.pixel, run.sampling.pixel)
    for name, img in images.items():
        write_tiff(out / f"{name.replace(' ', '_')}.tif", img, spacing)
    png = figure(images, result, out / "demo.png",
                 title=f"held-out image, {run.camera.photons:g} photons at the peak")
    print(table(result))
    best = result["best_baseline"]
    gain = result["network"]["psnr"] - result[best]["psnr"]
    print(f"network vs the tuned {best} filter: {gain:+.2f} dB PSNR; figure {png}; "
          f"{(time.perf_counter() - t0) / 60:.1f} min in all")
    return result
