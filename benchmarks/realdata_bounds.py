"""What each real pair allows: networks trained on one half of the pair, scored on the other.

    python benchmarks/realdata_bounds.py --data ../shared/realdata --runs DIR [--minutes 10]
        [--only NAME] [--out DIR]

``--runs`` is the ``--out`` folder of ``benchmarks/realdata.py`` (its fitted configurations and
simulation-trained networks are reused; run that first). For every pair the left half of the
image trains and the right half scores (PSNR / SSIM after the CARE paper's affine fit, on the
right half only), each network with the fitted run's architecture, patches and minutes:

- **semi-synthetic**: the left half of the high image, mapped affinely onto the low image's
  ADU, is the expected image and the fitted camera records it on the fly (``sample.images``,
  units ``adu``). The sample is the specimen itself (half an image of it) and only the camera
  is modelled: the best-informed training available, the bar for "beat the best classical
  baseline by ≥ 1 dB where the pair allows it"; its distance to the simulation network is the
  sample prior's share of the gap.
- **real pairs**: trained on the left half's real low/high pair (``train --pairs``; seven
  128×128 tiles train, the eighth validates). One noise realisation of half an image is little
  data: this network learns that realisation, so it shows what one acquired pair gives, not a
  bound.
- **simulation**: the network ``realdata.py`` trained (library, then refinement on the whole low
  image; the high image is never used).
- input, the tuned Gaussian and tuned VST + BM3D, tuned on the right half.

The same rows are scored a second time on the high image recorded by the fitted camera
(``realdata.camera_frame``): the camera model's noise in place of the real one. Where the
semi-synthetic network beats BM3D by more there than on the real frame, either the camera
model or the pair costs the difference; ``residual`` tells which (real noise with the model's
statistics but extra power at low frequencies: the frame and the reference differ in
structure, e.g. moving cells).

Writes ``DIR/<pair>_bounds.json`` (reused when it exists: delete it to score again) and
``DIR/bounds.md``; run folders in ``DIR/bounds/<pair>/`` are reused when finished. The data
are read from their path, never copied (the halves are written as TIFFs into the run folders,
which git ignores). Each row also compares the real frame's noise with the camera model's
(``residual``: :func:`residual_stats`).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import yaml
from common import emit
from realdata import bm3d_best, camera_frame, find_pairs, gaussian_best, onto, vst_camera
from tifffile import imwrite

from restore.checkpoints import load_model
from restore.config import RunConfig
from restore.metrics import scores
from restore.predict import predict
from restore.train import finished, train
from simulate.fit import check_image
from simulate.tiff import read_image

TILE = 128


def halves(shape: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(left, right) halves of an image of ``shape``, split between columns."""
    mid = shape[1] // 2
    return (slice(None), slice(0, mid)), (slice(None), slice(mid, None))


def write_pair_tiles(x: np.ndarray, y: np.ndarray, folder: Path) -> None:
    """The pair as ``TILE``² tiles in a CSBDeep-style folder (``low/``, ``GT/``); the tiles are
    named in raster order, so the last one validates (``restore.sources.folder_data``)."""
    for sub in ("low", "GT"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    k = 0
    for i in range(0, x.shape[0] - TILE + 1, TILE):
        for j in range(0, x.shape[1] - TILE + 1, TILE):
            imwrite(folder / "low" / f"t{k:03d}.tif", x[i:i + TILE, j:j + TILE].astype(np.float32))
            imwrite(folder / "GT" / f"t{k:03d}.tif", y[i:i + TILE, j:j + TILE].astype(np.float32))
            k += 1


def fitted_run(run_dir: Path, minutes: float, sample_images: str | None = None) -> RunConfig:
    """The pair's fitted configuration, ``minutes`` of training without refinement; with
    ``sample_images``, the sample is that folder's expected images in ADU."""
    fitted = yaml.safe_load((run_dir / "fit.yaml").read_text())
    fitted["train"] = {**fitted["train"], "minutes": minutes, "steps": None,
                       "refine": {"images": []}}
    if sample_images is not None:
        fitted["sample"] = {**fitted["sample"], "images": {"folder": sample_images,
                                                           "fraction": 1.0, "units": "adu"}}
    return RunConfig.model_validate(fitted)


def bounds_pair(name: str, low: Path, high: Path, runs: Path, minutes: float, out: Path) -> dict:
    """Train the real-pair and semi-synthetic networks on the left half; score every method on
    the right half; returns the pair's row."""
    sim_dir = runs / "runs" / name
    if not (sim_dir / "fit.yaml").exists():
        raise SystemExit(f"{sim_dir} has no fit.yaml: run benchmarks/realdata.py --out {runs} first")
    camera = yaml.safe_load((sim_dir / "fit.yaml").read_text())["camera"]
    x_raw, meta = read_image(low)
    x = check_image(x_raw).astype(np.float32)
    ref = check_image(read_image(high)[0]).astype(np.float32)
    left, right = halves(x.shape)
    base = out / "bounds" / name
    row_file = out / f"{name}_bounds.json"
    if row_file.exists():
        print(f"{name}: reusing the scored row {row_file}")
        result = json.loads(row_file.read_text())
        if "residual" not in result:
            result.pop("residual_power_ratio", None)
            result["residual"] = residual_stats(x, camera_frame(x, ref, camera), ref)
            row_file.write_text(json.dumps(result, indent=2))
        return result
    pairs_dir, clean_dir = base / "pairs", base / "clean"
    if not pairs_dir.exists():
        write_pair_tiles(x[left], ref[left], pairs_dir)
    if not clean_dir.exists():
        clean_dir.mkdir(parents=True)
        imwrite(clean_dir / "high_left.tif", onto(ref, x)[left].astype(np.float32))
    runs_of = {"real pairs": (base / "real", fitted_run(sim_dir, minutes), pairs_dir),
               "semi-synthetic": (base / "semi", fitted_run(sim_dir, minutes, str(clean_dir)), None)}
    for label, (run_dir, run, pairs) in runs_of.items():
        if not finished(run_dir, run):
            print(f"{name}: training the {label} network ({minutes:g} min)")
            train(run, run_dir, pairs=pairs, resume=(run_dir / "last.pt").exists())
    frame = camera_frame(x, ref, camera)
    nets = {"simulation": sim_dir, "semi-synthetic": base / "semi", "real pairs": base / "real"}
    bits = meta.get("bits") or 32
    rows = right_half_scores(x, ref, right, nets, bits)
    best = max((k for k in ("gaussian", "vst+bm3d") if k in rows), key=lambda k: rows[k]["psnr"])
    result = {"pair": name, "minutes": minutes, "scores": rows, "best_classical": best,
              "over_best_classical": {k: round(rows[k]["psnr"] - rows[best]["psnr"], 3)
                                      for k in nets},
              "camera_model": right_half_scores(frame, ref, right, nets, bits),
              "residual": residual_stats(x, frame, ref)}
    row_file.write_text(json.dumps(result, indent=2))
    return result


BANDS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # cycles/pixel


def residual_stats(x: np.ndarray, frame: np.ndarray, ref: np.ndarray) -> dict:
    """How the real frame's residual (``x`` minus the reference mapped onto it) compares with
    the camera model's (``frame`` minus the same): ``power_ratio``, real over model power per
    band of spatial frequency (1 everywhere: the model's noise has the real spectrum; above 1
    at low frequencies only: the frame and the reference differ in structure, e.g. motion,
    drift or bleaching, which no camera model reproduces); ``by_intensity``, per eighth of the
    reference's intensities, the residuals' variance, skewness and kurtosis (real, model);
    ``neighbour_correlation``, (horizontal, vertical) for each."""
    mu = onto(ref, x)
    res = {"real": x - mu, "model": frame - mu}
    k = np.hypot(np.fft.fftfreq(x.shape[0])[:, None], np.fft.fftfreq(x.shape[1])[None, :])
    power = {n: np.abs(np.fft.fft2(r - r.mean())) ** 2 for n, r in res.items()}
    bands = [(lo, hi, (k >= lo) & (k < hi)) for lo, hi in itertools.pairwise([*BANDS, np.inf])]
    parts = np.array_split(np.argsort(mu, axis=None), 8)

    def moments(r: np.ndarray) -> list[float]:
        c = r - r.mean()
        v = float(np.mean(c**2))
        return [round(v, 3), round(float(np.mean(c**3)) / v**1.5, 3),
                round(float(np.mean(c**4)) / v**2, 3)]

    return {"power_ratio": {f"{lo:g}-{hi:g}": round(float(power["real"][m].sum()
                                                          / power["model"][m].sum()), 3)
                            for lo, hi, m in bands},
            "by_intensity": [{"mean": round(float(mu.flat[i].mean()), 3),
                              **{n: moments(r.flat[i]) for n, r in res.items()}} for i in parts],
            "neighbour_correlation": {n: [round(float(np.corrcoef(r[:, 1:].ravel(),
                                                                   r[:, :-1].ravel())[0, 1]), 4),
                                          round(float(np.corrcoef(r[1:].ravel(),
                                                                   r[:-1].ravel())[0, 1]), 4)]
                                      for n, r in res.items()}}


def right_half_scores(x: np.ndarray, ref: np.ndarray, right: tuple[slice, slice],
                      nets: dict[str, Path], bits: int) -> dict[str, dict]:
    """Scores on ``right`` of the input, the tuned Gaussian and VST + BM3D (tuned there) and
    each network's ``predict --tta`` restoration of the whole input."""
    rows = {"input": scores(x[right], ref[right]), "gaussian": gaussian_best(x, ref, right)[1]}
    b = bm3d_best(x, ref, vst_camera(x, bits), right)
    if b is not None:
        rows["vst+bm3d"] = b[1]
    for label, run_dir in nets.items():
        restored = predict(load_model(run_dir)[0], x.astype(np.float32), "YX", augment=True)
        rows[label] = scores(restored[right], ref[right])
    return rows


def bounds_table(results: list[dict], key: str) -> list[str]:
    """Markdown rows: every method's PSNR / SSIM on the right half (``key``: ``scores``, the
    real frame, or ``camera_model``) and the simulation and semi-synthetic networks' PSNR
    margins over the best classical baseline there."""
    keys = ("input", "gaussian", "vst+bm3d", "simulation", "semi-synthetic", "real pairs")
    rows = ["| pair (right half) | " + " | ".join(keys) + " | simulation − best classical | "
            "semi-synthetic − best classical |", "|---|" + "---|" * (len(keys) + 2)]
    for r in results:
        s = r[key]
        best = max(s[k]["psnr"] for k in ("gaussian", "vst+bm3d") if k in s)
        rows.append(f"| {r['pair']} | " + " | ".join(
            f"{s[k]['psnr']:.2f} / {s[k]['ssim']:.3f}" if k in s else "—" for k in keys)
            + f" | {s['simulation']['psnr'] - best:+.2f} dB | "
            f"{s['semi-synthetic']['psnr'] - best:+.2f} dB |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of real low/high image pairs")
    parser.add_argument("--runs", required=True, help="the --out folder of benchmarks/realdata.py")
    parser.add_argument("--minutes", type=float, default=10.0, help="training minutes per network")
    parser.add_argument("--only", help="comma-separated pair names")
    parser.add_argument("--out", help="output folder (default: --runs)")
    parser.add_argument("--json", help="also write all rows as JSON here")
    args = parser.parse_args()
    runs = Path(args.runs)
    out = Path(args.out or args.runs)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(Path(args.data))
    names = args.only.split(",") if args.only else list(pairs)
    results = [bounds_pair(n, *pairs[n], runs, args.minutes, out) for n in names]
    table = bounds_table(results, "scores")
    table += ["", "The same networks on the high image recorded by the fitted camera (the camera "
              "model's noise instead of the real one):", "", *bounds_table(results, "camera_model")]
    (out / "bounds.md").write_text("PSNR (dB) / SSIM on the right half of each pair; networks "
                                   "trained on the left half\n\n" + "\n".join(table) + "\n")
    emit(results, table, args.json)


if __name__ == "__main__":
    main()
