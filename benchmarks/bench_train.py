"""Training throughput: patches/s on pre-generated tensors (compute) and with pairs simulated
on the fly (the real loop, DataLoader workers), and the fraction of step time spent waiting for
data.

    python benchmarks/bench_train.py [--steps 8] [--json out.json] [--only 2d|3d]

Configs (the issue's): 2D batch 16 of 128×128, depth 2, 32 filters, kernel 5; 3D batch 16 of
16×64×64, kernel 3. Simulation and training share the machine's cores, so the on-the-fly rate
includes that contention; the data wait is reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from common import emit

from restore import losses
from restore.config import load_run
from restore.train import build_model, train, train_step
from restore.unet import memory_format_for

# the network and batch are pinned (not the presets', which quality tuning changes), so numbers
# stay comparable across versions and with the CSBDeep runs of the README
PINNED = ["train.batch_size=16", "train.depth=2", "train.filters=32", "train.patches_per_image=8"]
CASES = {
    "2d": ("denoise2d", [16, 1, 128, 128], ["train.patch=[128,128]", "train.kernel=5", *PINNED]),
    "3d": ("denoise3d", [16, 1, 16, 64, 64], ["train.patch=[16,64,64]", "train.kernel=3", *PINNED]),
}


def compute_rate(preset: str, shape: list[int], sets: list[str], steps: int, bf16: bool,
                 layout: torch.memory_format | None = None) -> float:
    """Patches/s of restore.train's step (forward, loss, backward, AdamW) on fixed random
    tensors (median step), in the layout training uses unless ``layout`` is given."""
    run = load_run(preset, None, sets)
    torch.manual_seed(0)
    model = build_model(run)
    fmt = layout or memory_format_for(model.cfg.ndim)
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0)
    x, y = torch.randn(shape).to(memory_format=fmt), torch.randn(shape)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    loss_fn = losses.get(run.train.loss)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        train_step(model, opt, loss_fn, x, y, autocast=ctx)
        if i:  # the first step allocates and picks kernels
            times.append(time.perf_counter() - t)
    return shape[0] / statistics.median(times)


def on_the_fly(preset: str, sets: list[str], steps: int, workers: int) -> dict:
    """The real training loop on simulated pairs: patches/s and data-wait fraction."""
    run = load_run(preset, None, [*sets, f"train.steps={steps + 2}", f"train.val_every={steps + 2}",
                                  "train.val_patches=4", f"train.workers={workers}"])
    with tempfile.TemporaryDirectory() as out:
        s = train(run, out, progress=False)
    return {"patches_per_s": (steps + 2) * run.train.batch_size / s["seconds"],
            "data_wait_fraction": s["data_wait_s"] / s["seconds"], "workers": workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--only", choices=sorted(CASES))
    ap.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast (slow "
                    "without CPU bf16 units)")
    ap.add_argument("--layouts", action="store_true", help="also time the contiguous layout "
                    "(training uses channels-last: restore.unet.memory_format_for)")
    ap.add_argument("--json")
    args = ap.parse_args()
    capability = torch.backends.cpu.get_cpu_capability()
    results = []
    for name, (preset, shape, sets) in CASES.items():
        if args.only and name != args.only:
            continue
        r = {"case": name, "batch": shape, "threads": torch.get_num_threads(), "cpu": capability,
             "compute_fp32": compute_rate(preset, shape, sets, args.steps, False)}
        if args.bf16:
            r["compute_bf16"] = compute_rate(preset, shape, sets, 2, True)
        if args.layouts:
            r["compute_fp32_contiguous"] = compute_rate(preset, shape, sets, args.steps, False,
                                                        torch.contiguous_format)
        for workers in (0, 1):
            r[f"on_the_fly_w{workers}"] = on_the_fly(preset, sets, args.steps, workers)
        results.append(r)
    table = [f"{'case':5s} {'compute fp32':>13s} {'fly w0':>8s} {'wait w0':>8s} {'fly w1':>8s} "
             f"{'wait w1':>8s}  (patches/s)"]
    for r in results:
        w0, w1 = r["on_the_fly_w0"], r["on_the_fly_w1"]
        table.append(f"{r['case']:5s} {r['compute_fp32']:13.2f} {w0['patches_per_s']:8.2f} "
                     f"{w0['data_wait_fraction']:8.1%} {w1['patches_per_s']:8.2f} "
                     f"{w1['data_wait_fraction']:8.1%}")
        if "compute_fp32_contiguous" in r:
            table.append(f"{'':5s} contiguous layout: {r['compute_fp32_contiguous']:.2f} (channels-"
                         f"last {r['compute_fp32'] / r['compute_fp32_contiguous']:.2f}× faster)")
    emit(results, table, args.json)

if __name__ == "__main__":
    main()
