"""Train without real pairs, scored on real pairs: the whole user path on every low/high pair.

    python benchmarks/realdata.py --data ../shared/realdata [--minutes 10] [--only NAME] [--out DIR]
        [--sample NAME] [--set KEY=VALUE ...]

For every pair of images in ``--data`` (the low file's name holds raw/single/low/noisy, the high
file's gt/avg/target/high, both share the name's first word): ``synthcare fit`` on the low image
(``--psf confocal`` when the name says confocal: a user knows their microscope), training for
``--minutes`` on simulation only (the last 60 % refining on restorations of the low image,
as ``synthcare fit`` sets it, unless ``--no-refine``), prediction of the low image
(``predict --tta``; the plain prediction is scored too), and scores against the high image
(the CARE paper's affine fit, PSNR and SSIM) beside the input, the best Gaussian filter and
BM3D after a variance-stabilising transform (generalised Anscombe with the fitted camera), both
tuned on the reference (an upper bound on what a user would get from them). BM3D needs the
``bench`` extra (``pip install -e ".[bench]"``); without it that row is skipped.

``--camera-check`` also passes the high image (scaled to the low one) through the fitted camera
and scores the network and BM3D on that semi-synthetic input: when the input's PSNR matches the
real one and the network's margin over BM3D is the same as on the real image, the camera model
is not what limits the network (the sample prior and the training budget are).

Each pair's JSON also says where the network's and BM3D's errors lie (``errors``: shares of
the squared error by reference brightness and by spatial frequency, :func:`error_breakdown`)
and whether they are the same errors (``mean_with_bm3d``: the scores of the mean of the two
restorations, :func:`complementarity`; a diagnostic, not a method).

What a pair allows at all (a network trained on its true sample, scored on the other half):
``benchmarks/realdata_bounds.py``, which reuses this script's run folders.

Writes ``DIR/<pair>.json``, ``DIR/<pair>.png`` (crops of every method), the fit's figure
``DIR/<pair>_fit.png``, and ``DIR/results.md``. Run folders (``DIR/runs/<pair>``, ignored by
git) are reused: an interrupted benchmark resumes. The data are read from their path, never
copied.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import yaml
from common import emit
from scipy.ndimage import gaussian_filter

from restore.checkpoints import load_model
from restore.config import RunConfig
from restore.metrics import fit_affine, normalise_gt, scores
from restore.predict import predict
from restore.refine import stage_totals
from restore.train import ensure_trained
from simulate.fit import check_image, fit_image, plot_fit
from simulate.fit_noise import fit_camera
from simulate.tiff import read_image

LOW = re.compile(r"raw|single|low|noisy", re.I)
HIGH = re.compile(r"gt|avg|target|high|ground", re.I)
SIGMAS = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
BM3D_FACTORS = (0.6, 0.8, 1.0, 1.25, 1.6, 2.0)


def find_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """{name: (low, high)} of the images in a folder, matched by the first word of their names."""
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".tif", ".tiff")]
    pairs = {}
    for low in files:
        if not LOW.search(low.stem):
            continue
        word = re.split(r"[_\-. ]", low.stem)[0]
        highs = [h for h in files if h != low and h.stem.startswith(word) and HIGH.search(h.stem)
                 and not LOW.search(h.stem)]
        if len(highs) == 1:
            pairs[word] = (low, highs[0])
    return pairs


def gaussian_best(x: np.ndarray, ref: np.ndarray,
                  region: tuple[slice, ...] = ()) -> tuple[np.ndarray, dict, float]:
    """The Gaussian filter of the best PSNR against the reference (scored in ``region`` only)."""
    rows = [(s, scores(gaussian_filter(x, s)[region], ref[region])) for s in SIGMAS]
    s, sc = max(rows, key=lambda r: r[1]["psnr"])
    return gaussian_filter(x, s), sc, s


def anscombe(x: np.ndarray, slope: float, offset: float, read: float) -> np.ndarray:
    """Generalised Anscombe transform of Poisson-Gaussian data in effective electrons."""
    z = (x - offset) / slope
    return 2.0 * np.sqrt(np.maximum(z + 3.0 / 8.0 + read**2, 0.0))


def inverse_anscombe(d: np.ndarray, slope: float, offset: float, read: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo and Foi, 2011)."""
    d = np.maximum(d, 0.8)
    z = (d**2 / 4 + np.sqrt(1.5) / (4 * d) - 11 / (8 * d**2) + 5 * np.sqrt(1.5) / (8 * d**3)
         - 1 / 8 - read**2)
    return z * slope + offset


def vst_camera(x: np.ndarray, bits: int) -> tuple[float, float, float]:
    """(slope ADU/e⁻, offset ADU, read noise e⁻) of the camera fitted to ``x``, for the VST."""
    cam, _, line = fit_camera(x, bits=bits)
    return line.slope, cam["offset"], float(np.sqrt(max(line.variance(cam["offset"]), 0.0)) / line.slope)


def bm3d_best(x: np.ndarray, ref: np.ndarray, cam_line,
              region: tuple[slice, ...] = ()) -> tuple[np.ndarray, dict, float] | None:
    """BM3D after the variance-stabilising transform, its σ factor tuned on the reference
    (scored in ``region`` only)."""
    try:
        import bm3d
    except ImportError:
        return None
    slope, offset, read = cam_line
    z = anscombe(x, slope, offset, read)
    best = None
    for f in BM3D_FACTORS:
        out = inverse_anscombe(bm3d.bm3d(z.astype(np.float32), f), slope, offset, read)
        sc = scores(out[region], ref[region])
        if best is None or sc["psnr"] > best[1]["psnr"]:
            best = (out, sc, f)
    return best


def onto(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``ref`` mapped affinely (least squares) onto the values of ``x``: the reference in the
    low image's ADU, float64."""
    a = np.c_[ref.ravel(), np.ones(ref.size)].astype(np.float64)
    return (a @ np.linalg.lstsq(a, x.ravel().astype(np.float64), rcond=None)[0]).reshape(ref.shape)


def camera_frame(x: np.ndarray, ref: np.ndarray, camera: dict, seed: int = 0) -> np.ndarray:
    """The high image ``ref`` mapped onto the low image ``x`` (:func:`onto`) and captured by a
    fitted ``camera`` section (one frame of ``seed``), float32 ADU."""
    from simulate.camera import Camera
    from simulate.config import CameraConfig

    cam = Camera.from_config(CameraConfig.model_validate(camera))
    photons = np.maximum(cam.photons_from_expected(onto(ref, x).astype(np.float32)), 0)
    return np.asarray(cam.capture(photons, np.random.default_rng(seed)), np.float32)


def camera_check(low: Path, high: Path, run_dir: Path, seed: int = 0) -> dict:
    """Scores (input, VST + BM3D, network) on :func:`camera_frame`, against the high image."""
    x, ref = (check_image(read_image(p)[0]).astype(np.float64) for p in (low, high))
    fitted = yaml.safe_load((run_dir / "fit.yaml").read_text())
    noisy = camera_frame(x, ref, fitted["camera"], seed)
    rows = {"input": scores(noisy, ref),
            "network": scores(predict(load_model(run_dir)[0], noisy, "YX", augment=True), ref)}
    bm = bm3d_best(noisy, ref, vst_camera(noisy, fitted["camera"]["bits"] or 32))
    if bm is not None:
        rows["vst+bm3d"] = bm[1]
    return rows


def error_breakdown(image: np.ndarray, ref: np.ndarray, n_bins: int = 10,
                    bands: int = 5) -> dict[str, list[float]]:
    """Where a restoration's squared error lies, after the CARE normalisation (``scores``'
    affine fit to the normalised reference): ``by_intensity``, the share of the squared error
    in each tenth of the reference's pixels sorted by brightness; ``bias_by_intensity``, the mean
    error there (normalised units; negative: too dark); ``by_frequency``, the share of the
    error's power in each band of ``0.5 / bands`` cycles/pixel."""
    g = normalise_gt(ref.astype(np.float64))
    e = fit_affine(image.astype(np.float64), g) - g
    order = np.argsort(g, axis=None)
    parts = np.array_split(order, n_bins)
    total = float(np.sum(e**2))
    power = np.abs(np.fft.fft2(e)) ** 2
    k = np.hypot(np.fft.fftfreq(e.shape[0])[:, None], np.fft.fftfreq(e.shape[1])[None, :])
    edges = np.linspace(0, 0.5, bands + 1)
    edges[-1] = np.inf  # the corners beyond 0.5 cycles/pixel go to the last band
    return {"by_intensity": [round(float(np.sum(e.flat[i] ** 2)) / total, 4) for i in parts],
            "bias_by_intensity": [round(float(np.mean(e.flat[i])), 5) for i in parts],
            "by_frequency": [round(float(power[(k >= a) & (k < b)].sum() / power.sum()), 4)
                             for a, b in itertools.pairwise(edges)]}


def complementarity(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Scores of the mean of two restorations, each first fitted affinely to the reference as
    ``scores`` fits it: above both when their errors differ (two networks that erred alike would
    gain nothing)."""
    g = normalise_gt(ref)
    return scores((fit_affine(a, g) + fit_affine(b, g)) / 2, ref)


def run_pair(name: str, low: Path, high: Path, minutes: float, out: Path,
             refine: bool = True, rounds: int = 1, check: bool = False,
             overrides: list[str] | None = None, sample: str | None = None) -> dict:
    """fit → train → predict → score for one pair (and :func:`camera_check` if ``check``);
    returns its result row."""
    run_dir = out / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    row_file = run_dir / "row.json"
    if row_file.exists():
        print(f"{name}: reusing the scored run in {run_dir}")
        result = json.loads(row_file.read_text())
        if check and "camera_check" not in result:
            result["camera_check"] = camera_check(low, high, run_dir)
            save_row(result, row_file, out / f"{name}.json")
        return result
    x_raw, meta = read_image(low)
    x = check_image(x_raw)
    ref = check_image(read_image(high)[0])
    fit_file = run_dir / "fit.yaml"
    psf = "confocal" if "confocal" in low.stem.lower() else None
    t0 = time.perf_counter()
    if not fit_file.exists():
        fit = fit_image(x_raw, psf=psf, bits=meta.get("bits") or 32, sample=sample)
        fit_file.write_text("\n".join(f"# {r}" for r in fit.report) + "\n"
                            + yaml.safe_dump(fit.run, sort_keys=False))
        plot_fit(x_raw, fit.run, out / f"{name}_fit.png")
    fit_seconds = time.perf_counter() - t0
    fitted = yaml.safe_load(fit_file.read_text())
    run = RunConfig.model_validate({**fitted, "train": {
        **fitted["train"], "minutes": minutes, "steps": None,
        "refine": {"images": [str(low.resolve())] if refine else [], "rounds": rounds}}})
    if overrides:
        run = run.with_overrides(overrides)
    ensure_trained(run, run_dir)
    model, _, _ = load_model(run_dir)
    plain = predict(model, x.astype(np.float32), "YX")
    restored = predict(model, x.astype(np.float32), "YX", augment=True)  # predict --tta
    rows = {"input": scores(x, ref)}
    g_img, rows["gaussian"], sigma = gaussian_best(x, ref)
    images = {"input": x, "gaussian": g_img}
    b = bm3d_best(x, ref, vst_camera(x, meta.get("bits") or 32))
    if b is not None:
        images["vst+bm3d"], rows["vst+bm3d"], factor = b
    rows["network"] = scores(restored, ref)
    rows["network, no tta"] = scores(plain, ref)
    images["network"] = restored
    classical = [k for k in ("gaussian", "vst+bm3d") if k in rows]
    best = max(classical, key=lambda k: rows[k]["psnr"])
    result = {"pair": name, "low": low.name, "high": high.name, "psf": psf or "widefield",
              "refine": refine, "rounds": rounds if refine else 0, "steps": stage_totals(run_dir)[0],
              "overrides": overrides or [], "sample": sample or "fitted",
              "fit_seconds": round(fit_seconds, 1),
              "gaussian_sigma": sigma, "bm3d_factor": factor if b is not None else None,
              "scores": rows, "best_classical": best,
              "gain_psnr": rows["network"]["psnr"] - rows[best]["psnr"],
              "gain_ssim": rows["network"]["ssim"] - rows[best]["ssim"],
              "fit": fit_file.read_text().split("\ntask:")[0]}
    result["errors"] = {k: error_breakdown(images[k], ref) for k in ("network", "vst+bm3d")
                        if k in images}
    if b is not None:  # a diagnostic, not a method: do the network and BM3D err alike?
        result["mean_with_bm3d"] = complementarity(restored, images["vst+bm3d"], ref)
    if check:
        result["camera_check"] = camera_check(low, high, run_dir)
    figure(name, images, ref, out / f"{name}.png")
    save_row(result, row_file, out / f"{name}.json")
    return result


def save_row(result: dict, *paths: Path) -> None:
    """Write a pair's result row as JSON to each path (the run's cache and the report)."""
    for path in paths:
        path.write_text(json.dumps(result, indent=2))


def figure(name: str, images: dict[str, np.ndarray], ref: np.ndarray, path: Path) -> None:
    """Crops (the central quarter) of every method and the reference, one display range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ny, nx = ref.shape
    crop = (slice(ny // 4, ny // 4 + ny // 2), slice(nx // 4, nx // 4 + nx // 2))
    panels = {**images, "reference (high SNR)": ref}
    fig, ax = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), constrained_layout=True)
    for a, (title, img) in zip(ax, panels.items(), strict=True):
        sc = scores(img, ref)
        lo, hi = np.percentile(img[crop], [0.5, 99.8])
        a.imshow(img[crop], cmap="magma", vmin=lo, vmax=hi)
        a.set_title(title if title.startswith("reference") else
                    f"{title}\n{sc['psnr']:.2f} dB, SSIM {sc['ssim']:.3f}", fontsize=9)
        a.axis("off")
    fig.suptitle(name)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of real low/high image pairs")
    parser.add_argument("--minutes", type=float, default=10.0, help="training minutes per pair")
    parser.add_argument("--only", help="comma-separated pair names")
    parser.add_argument("--no-refine", action="store_true", help="train on the sample library "
                        "alone (synthcare fit --no-refine)")
    parser.add_argument("--rounds", type=int, default=1, help="refinement rounds (train.refine."
                        "rounds; each restores the image anew with the latest network)")
    parser.add_argument("--camera-check", action="store_true", help="also score the network "
                        "and BM3D on the high image passed through the fitted camera")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting applied to every fitted run (as train --set), for "
                        "ablations; give them a separate --out")
    parser.add_argument("--sample", help="the sample type for every pair (fit --sample) instead of "
                        "the fitted ranking; give it a separate --out")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "realdata"))
    parser.add_argument("--json", help="also write all rows as JSON here")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(Path(args.data))
    if not pairs:
        raise SystemExit(f"no low/high pairs found in {args.data}")
    names = args.only.split(",") if args.only else list(pairs)
    results = [run_pair(n, *pairs[n], args.minutes, out, not args.no_refine,
                       args.rounds, args.camera_check, args.set, args.sample) for n in names]
    table = ["| pair | input | Gaussian (tuned) | VST + BM3D (tuned) | network (simulation, "
             "--tta) | network without --tta | gain over best classical |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["scores"]

        def cell(k, s=s):
            return f"{s[k]['psnr']:.2f} / {s[k]['ssim']:.3f}" if k in s else "—"

        how = "refined" if r.get("refine") else "library only"
        table.append(f"| {r['pair']} ({how}) | {cell('input')} | {cell('gaussian')} | {cell('vst+bm3d')} | "
                     f"{cell('network')} | {cell('network, no tta')} | {r['gain_psnr']:+.2f} dB / "
                     f"{r['gain_ssim']:+.3f} |")
    checked = [r for r in results if "camera_check" in r]
    if checked:
        table += ["", "The high image through the fitted camera (semi-synthetic input):", "",
                  "| pair | input | VST + BM3D (tuned) | network (--tta) | network − BM3D |",
                  "|---|---|---|---|---|"]
        for r in checked:
            c = r["camera_check"]
            gap = (f"{c['network']['psnr'] - c['vst+bm3d']['psnr']:+.2f} dB"
                   if "vst+bm3d" in c else "—")
            table.append(f"| {r['pair']} | " + " | ".join(
                f"{c[k]['psnr']:.2f} / {c[k]['ssim']:.3f}" if k in c else "—"
                for k in ("input", "vst+bm3d", "network")) + f" | {gap} |")
    (out / "results.md").write_text("PSNR (dB) / SSIM against the high-SNR reference\n\n"
                                    + "\n".join(table) + "\n")
    emit(results, table, args.json)


if __name__ == "__main__":
    main()
