"""Evaluation on held-out simulated images, against classical baselines, with a figure.

Held-out pairs come from the seed ``run.seed + TEST_OFFSET`` (never seen in training or
validation). Every method is scored against the noise-free ``clean`` image with
:func:`restore.metrics.scores`: the input itself, a Gaussian filter whose σ is tuned on the
validation seed (the best a user would get by smoothing), and the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from simulate import SimConfig, atomic_write, simulate_pair

from .data import TEST_OFFSET, VALIDATION_OFFSET, model_images
from .metrics import fit_affine, mean_scores, normalise_gt, scores
from .predict import predict
from .train import load_model
from .unet import UNet

SIGMAS = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)


def _images(cfg: SimConfig, seed: int, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for i in range(n):
        out += model_images(cfg, simulate_pair(cfg, seed, i))
    return out


def tune_gaussian(images: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """The σ (pixels) of :data:`SIGMAS` with the best mean PSNR against the clean images."""
    best = max(SIGMAS, key=lambda s: np.mean([scores(gaussian_filter(x, s), c)["psnr"]
                                             for x, _, c in images]))
    return float(best)


def axes_of(model: UNet, image: np.ndarray) -> str:
    """'YX' or 'ZYX' for a model-space image."""
    return "YX" if image.ndim == 2 else "ZYX"


def evaluate(run_dir: str | Path, n: int = 8, *, json_path: str | Path | None = None,
             progress: bool = True, keep: bool = False) -> dict:
    """Scores {method: {psnr, ssim, nrmse}} on ``n`` held-out pairs; with ``keep`` also the
    first held-out (input, gaussian, network, clean) images under the key ``'images'``."""
    model, run, _ = load_model(run_dir)
    cfg = run.sim
    sigma = tune_gaussian(_images(cfg, run.seed + VALIDATION_OFFSET, 2))
    rows: dict[str, list[dict[str, float]]] = {"input": [], "gaussian": [], "network": []}
    kept = None
    for i in tqdm(range(n), desc="evaluate", disable=not progress):
        for x, _, clean in model_images(cfg, simulate_pair(cfg, run.seed + TEST_OFFSET, i)):
            smooth = gaussian_filter(x, sigma)
            restored = predict(model, x, axes_of(model, x))
            rows["input"].append(scores(x, clean))
            rows["gaussian"].append(scores(smooth, clean))
            rows["network"].append(scores(restored, clean))
            if kept is None:
                kept = {"input": x, "gaussian": smooth, "network": restored, "ground truth": clean}
    result = {k: mean_scores(v) for k, v in rows.items()}
    result["gaussian"]["sigma"] = sigma
    if json_path is not None:
        atomic_write(Path(json_path), lambda p: p.write_text(json.dumps(result, indent=2)))
    if keep:
        result["images"] = kept
    return result


def table(result: dict) -> str:
    """A markdown table of the scores."""
    lines = ["| method | PSNR (dB) | SSIM | NRMSE |", "|---|---:|---:|---:|"]
    for method in ("input", "gaussian", "network"):
        if method in result:
            r = result[method]
            name = f"gaussian (σ={r['sigma']:g} px)" if method == "gaussian" else method
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['nrmse']:.4f} |")
    return "\n".join(lines)


def figure(images: dict[str, np.ndarray], result: dict, path: str | Path, title: str = "") -> Path:
    """PNG panel: input | gaussian | network | ground truth, each with its scores
    (max projection along z for 3D)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 4.6))
    ref = images["ground truth"]
    ref2d = ref.max(axis=0) if ref.ndim == 3 else ref
    lo, hi = np.percentile(ref2d, [0.5, 99.8])
    g = normalise_gt(ref2d)
    for ax, (name, img) in zip(axes, images.items(), strict=True):
        view = img.max(axis=0) if img.ndim == 3 else img
        shown = fit_affine(view, g) * (hi - lo) + lo  # same grey levels for every panel
        ax.imshow(shown, cmap="magma", vmin=lo, vmax=hi, interpolation="nearest")
        r = result.get(name.split()[0] if name != "ground truth" else "", None)
        label = name if r is None else f"{name}\nPSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}"
        ax.set_title(label, fontsize=11)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.92) if title else None)
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)
    return path
