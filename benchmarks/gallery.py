"""The sample library at a glance: one simulated 2D pair per structure type (clean | noisy).

    python benchmarks/gallery.py [--out benchmarks/results/gallery.png]

Widefield NA 0.8 (air), 0.2 µm pixels, 30 photons at the peak; each type at its library
candidate's settings (``simulate.fit_sample.CANDIDATES``), plus the generalist mixture preset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from simulate import SimConfig, simulate_pair
from simulate.fit_sample import CANDIDATES, candidate_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gallery.png"))
    args = parser.parse_args()
    base = {"task": "denoise", "shape": [192, 192], "optics": {"na": 0.8, "ni": 1.0},
            "sampling": {"pixel": 0.2}, "camera": {"photons": 30}}
    cfgs = {name: SimConfig.from_dict({**base, "sample": {**candidate_sample(name),
                                                           "background": 0.05}})
            for name in CANDIDATES}
    gen = SimConfig.from_preset("generalist2d")
    cfgs["mixture (generalist2d)"] = gen.with_overrides({k: v for k, v in base.items()
                                                         if k != "task"})
    fig, ax = plt.subplots(2, len(cfgs), figsize=(2.3 * len(cfgs), 4.8), constrained_layout=True)
    for k, (name, cfg) in enumerate(cfgs.items()):
        p = simulate_pair(cfg, 1, 0)
        for row, img in enumerate((p.clean, p.input)):
            ax[row, k].imshow(img, cmap="magma")
            ax[row, k].axis("off")
        ax[0, k].set_title(name, fontsize=9)
    ax[0, 0].text(-12, 96, "clean", rotation=90, va="center", fontsize=9)
    ax[1, 0].text(-12, 96, "30 photons", rotation=90, va="center", fontsize=9)
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
