"""CSBDeep beside synthcare, in one run: training patches/s and prediction Mpixel/s.

    python benchmarks/bench_csbdeep.py --csbdeep-python TF/bin/python [--steps 8] [--repeat 3]
        [--json out.json]

CSBDeep runs as its users run it, in its own environment (TensorFlow and PyTorch in one process
fight over threads), e.g. ``python -m venv TF && TF/bin/pip install tensorflow-cpu tensorboard csbdeep``:
``CARE(Config(...)).train(X, Y, validation_data, epochs, steps_per_epoch)`` with the default
callbacks, and ``CARE.predict(img, axes)`` untiled. Both libraries get the same networks
(``bench_train.py``'s pinned ones: depth 2, 32 first filters, batch 16; kernel 5 and 128² patches
in 2D, kernel 3 and 16×64² in 3D; MAE loss) on fixed random tensors, so this times the framework,
not the data. Training: the median time between consecutive batch ends (CSBDeep: a Keras
callback; synthcare: ``restore.train.train_step``), after a warm-up. Prediction: 1024² (2D) and
64×256² (3D), median of ``--repeat`` after one warm-up. The two run one after the other, each
alone on the machine, so their ratio is measured in one session.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from bench_predict import CASES as PREDICT_CASES
from bench_predict import _time, model_and_image
from bench_train import CASES as TRAIN_CASES
from bench_train import compute_rate
from common import emit

from restore.predict import predict

CSBDEEP = r'''
import json, statistics, sys, tempfile, time
import numpy as np
import tensorflow as tf
import csbdeep
from csbdeep.models import CARE, Config

steps, repeat = int(sys.argv[1]), int(sys.argv[2])
out = {"csbdeep": csbdeep.__version__, "tensorflow": tf.__version__,
       "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                   tf.config.threading.get_inter_op_parallelism_threads()]}


class Clock(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


for name, axes, kern, patch in (("2d", "YX", 5, (128, 128)), ("3d", "ZYX", 3, (16, 64, 64))):
    cfg = Config(axes, n_channel_in=1, n_channel_out=1, unet_kern_size=kern, unet_n_depth=2,
                 unet_n_first=32, train_batch_size=16, train_loss="mae")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, *patch, 1)).astype(np.float32)
    y = rng.standard_normal((32, *patch, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        model = CARE(cfg, "bench", basedir=d)
        model.prepare_for_training()
        clock = Clock()
        model.callbacks.append(clock)
        model.train(x, y, validation_data=(x[:4], y[:4]), epochs=1, steps_per_epoch=steps + 2)
        dt = statistics.median(np.diff(clock.ends[1:]))
        out[f"train_{name}"] = 16 / dt
        shape = (1024, 1024) if name == "2d" else (64, 256, 256)
        img = rng.poisson(20, shape).astype(np.float32)
        model.predict(img, axes)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            model.predict(img, axes)
            times.append(time.perf_counter() - t)
        out[f"predict_{name}"] = float(np.prod(shape)) / 1e6 / statistics.median(times)
print("RESULT " + json.dumps(out))
'''


def csbdeep_rates(python: str, steps: int, repeat: int) -> dict:
    """CSBDeep's training patches/s and prediction Mpixel/s, measured by ``python``."""
    try:
        done = subprocess.run([python, "-c", CSBDEEP, str(steps), str(repeat)], check=True,
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit(f"--csbdeep-python: {python} does not exist") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"CSBDeep failed under {python}:\n{exc.stderr[-3000:]}") from None
    line = next(x for x in done.stdout.splitlines()[::-1] if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def synthcare_rates(steps: int, repeat: int) -> dict:
    """synthcare's rates on the same networks, shapes and batches."""
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for name, (preset, shape, sets) in TRAIN_CASES.items():
        out[f"train_{name}"] = compute_rate(preset, shape, [*sets, "train.loss=mae"], steps, False)
    for name, (nd, shape, axes, _) in PREDICT_CASES.items():
        model, img = model_and_image(nd, shape)
        t, _ = _time(lambda m=model, i=img, a=axes: predict(m, i, a, tiles=None), repeat)
        out[f"predict_{name}"] = float(np.prod(shape)) / 1e6 / t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csbdeep-python", required=True, help="python of an environment with "
                    "tensorflow and csbdeep")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps")
    ap.add_argument("--repeat", type=int, default=3, help="timed predictions")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not Path(args.csbdeep_python).exists():
        ap.error(f"--csbdeep-python: {args.csbdeep_python} does not exist")
    ours = synthcare_rates(args.steps, args.repeat)
    theirs = csbdeep_rates(args.csbdeep_python, args.steps, args.repeat)
    rows = [("training, 2D 16×128², kernel 5 (patches/s)", "train_2d"),
            ("training, 3D 16×16×64², kernel 3 (patches/s)", "train_3d"),
            ("prediction, 2D 1024² untiled (Mpixel/s)", "predict_2d"),
            ("prediction, 3D 64×256² untiled (Mvoxel/s)", "predict_3d")]
    table = [f"| | synthcare (torch {ours['torch']}) | CSBDeep {theirs['csbdeep']} "
             f"(TensorFlow {theirs['tensorflow']}) | ratio |", "|---|---:|---:|---:|"]
    table += [f"| {label} | {ours[k]:.2f} | {theirs[k]:.2f} | {ours[k] / theirs[k]:.2f}× |"
              for label, k in rows]
    emit([{"synthcare": ours, "csbdeep": theirs, "python": sys.version.split()[0]}], table,
         args.json)


if __name__ == "__main__":
    main()
