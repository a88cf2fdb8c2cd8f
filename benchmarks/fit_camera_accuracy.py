"""How well ``synthcare fit`` finds the camera from one raw image with no known offset.

    python benchmarks/fit_camera_accuracy.py [--seeds 3] [--photons 60 --background 0.2]

Issue 12's requirement: gain within 5 % and read noise within 10 % over gains 0.5–5 ADU/e⁻ and
read noise 2–10 e⁻, on structured images with some background. Each case simulates one 512×256
image (nuclei and mitochondria on a background of 20 % of the peak, widefield NA 0.8, 60
photons at the peak, offset 100 ADU, 16 bits) with the given camera and runs
:func:`simulate.fit_noise.fit_camera` without the offset. Prints JSON rows and a table of the worst
relative errors over the seeds, beside what one such image allows (:func:`bounds`).

One image, not two side by side: the seam between two simulated images is an edge along x in
every row, whose spectrum the noise-correlation fit read as a +0.05 correlation between
neighbours; the gain then came out up to 5 % high.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import emit

from simulate import SimConfig, simulate_pair
from simulate.config import CameraConfig
from simulate.fit_noise import fit_camera

GAINS = (0.5, 1.0, 2.0, 5.0)
READS = (2.0, 5.0, 10.0)
OFFSET = 100.0  # ADU


def config(gain: float, read: float, photons: float = 60.0, background: float = 0.2) -> SimConfig:
    return SimConfig.from_dict({
        "shape": [512, 256],
        "sample": {"microtubules": {"density": 0.0}, "granules": {"density": 0.0},
                   "nuclei": {"density": 0.01, "radius": 3.0},
                   "mitochondria": {"density": 0.3}, "background": background},
        "optics": {"psf": "widefield", "na": 0.8, "ni": 1.0, "wavelength": 0.52},
        "sampling": {"pixel": 0.1},
        "camera": {"photons": photons, "qe": 1.0, "gain": gain, "offset": OFFSET, "read_noise": read}})


def bounds(clean: np.ndarray, gain: float, read: float) -> tuple[float, float]:
    """The relative standard deviations below which no estimator finds the gain and the read
    noise from this image (Cramér–Rao, optimistic: every pixel's expected value known).

    ``clean``: the image's expected ADU. The gain is the slope of the variance against the
    mean, v = g·(μ − o) + c, with the information ½·Σ (μ − μ̄)²/v² (μ̄ weighted by 1/v²). The
    offset, and with it the read noise, rests on the third cumulant: one pixel's cube has
    variance 6·v³, so the offset's variance (e⁻²) is 1/Σ 1/(6·v³) with v in e⁻², the read
    variance's the same (r² = v − (μ − o)), and r's relative one that over (2r²)², plus the
    gain's (the read noise in e⁻ is its ADU over the gain)."""
    e = (np.asarray(clean, np.float64) - OFFSET) / gain  # expected electrons
    v = e + read**2  # variance, e⁻²
    w = 1.0 / v**2
    info = 0.5 * np.sum(w * (e - np.sum(w * e) / np.sum(w)) ** 2)
    gain_sd = 1.0 / np.sqrt(info)  # ADU/e⁻ per ADU/e⁻: v in e⁻² makes the slope 1
    offset_sd = 1.0 / np.sqrt(np.sum(1.0 / (6.0 * v**3)))
    return float(gain_sd), float(np.hypot(offset_sd / (2 * read**2), gain_sd))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", help="also write the rows as JSON")
    ap.add_argument("--photons", type=float, default=60.0, help="photons at the peak")
    ap.add_argument("--background", type=float, default=0.2, help="background, fraction of the peak")
    args = ap.parse_args()
    rows = []
    for gain in GAINS:
        for read in READS:
            cfg = config(gain, read, args.photons, args.background)
            for seed in range(args.seeds):
                pair = simulate_pair(cfg, seed, 0)
                cam, _, _ = fit_camera(pair.input.astype(np.float64), bits=16)
                gain_sd, read_sd = bounds(pair.clean, gain, read)
                # the effective conversion (ADU per detected electron, variance / mean) and the
                # read noise in those electrons, whatever detector the fit chose
                camera = CameraConfig.model_construct(**cam)  # a fitted offset may be < 0
                conversion = (camera.em_gain or 1.0) * camera.excess
                g, r = camera.gain * conversion, camera.read_noise / conversion
                rows.append({"gain": gain, "read_noise": read, "seed": seed,
                             "fit_gain": g, "fit_read_noise": r, "fit_offset": cam["offset"],
                             "em": bool(cam.get("em_gain")),
                             "gain_error": g / gain - 1, "read_error": r / read - 1,
                             "gain_bound": gain_sd, "read_bound": read_sd})
    lines = ["| gain ADU/e⁻ | read e⁻ | worst gain error | bound | worst read-noise error | bound | "
             "offsets | multiplier? |", "|---|---|---|---|---|---|---|---|"]
    ok = reachable_ok = True
    n_reachable = 0
    for gain in GAINS:
        for read in READS:
            sel = [r for r in rows if r["gain"] == gain and r["read_noise"] == read]
            ge = max(sel, key=lambda r: abs(r["gain_error"]))["gain_error"]
            re_ = max(sel, key=lambda r: abs(r["read_error"]))["read_error"]
            gb = max(r["gain_bound"] for r in sel)
            rb = max(r["read_bound"] for r in sel)
            met = abs(ge) <= 0.05 and abs(re_) <= 0.10 and not any(r["em"] for r in sel)
            ok &= met
            # every seed within the tolerance is likely (> 95 % for three) only where the
            # tolerance is at least 2.4 of the bound's standard deviations
            reachable = gb <= 0.05 / 2.4 and rb <= 0.10 / 2.4
            n_reachable += reachable
            reachable_ok &= met or not reachable
            offs = ", ".join(f"{r['fit_offset']:.1f}" for r in sel)
            mark = " ✓" if reachable else ""
            lines.append(f"| {gain:g} | {read:g}{mark} | {100 * ge:+.1f} % | {100 * gb:.1f} % | "
                         f"{100 * re_:+.1f} % | {100 * rb:.1f} % | {offs} | "
                         f"{'yes' if any(r['em'] for r in sel) else 'no'} |")
    lines.append(f"requirement (gain ±5 %, read noise ±10 %, no multiplier): "
                 f"{'met' if ok else 'NOT met'} in all cells; "
                 f"{'met' if reachable_ok else 'NOT met'} in the {n_reachable} cells whose bounds "
                 "allow it (✓: gain bound ≤ 2.1 %, read-noise bound ≤ 4.2 %)")
    emit(rows, lines, args.json)


if __name__ == "__main__":
    main()
