"""Run under NUMBA_ENABLE_CUDASIM=1: the CUDA rendering kernels against the CPU ones.

Prints one JSON line: max abs difference, relative to the volume's maximum, and integrals, over
four samples (ordinary granules; granules too small to cover a voxel centre, rendered as
points; no granules; the library's nuclei, membranes, mitochondria and actin), one at a time
and as one batch (one launch per kernel).
"""

import json
import sys

import numpy as np
from numba import cuda

from simulate import library, render
from simulate.config_sample import SampleConfig
from simulate.render_cuda import prepare, render_cuda, render_prepared_batch

shape, spacing = (6, 24, 28), (0.2, 0.1, 0.1)
box = np.array(shape) * np.array(spacing)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
out = {"max_rel_diff": 0.0, "cpu_sum": 0.0, "gpu_sum": 0.0, "n_filaments": 0, "n_granules": 0,
       "n_beads": 0, "batch_max_rel_diff": 0.0}
samples, renders = [], []
configs = [SampleConfig.model_validate({
    "microtubules": {"density": 1.5, "persistence": 5.0},
    "granules": {"density": 2.0 if radius else 0.0, "radius": radius or 0.1,
                 "hollow": 0.5 if radius > 0.1 else 0.0},
    "beads": {"density": 3.0}}) for radius in (0.15, 0.01, 0.0)]
# the library's other types: large ellipsoids, nucleoli that subtract, surface points, tubes
configs.append(SampleConfig.model_validate({
    "microtubules": {"density": 0.0}, "granules": {"density": 0.0},
    "nuclei": {"density": 0.3, "radius": 0.8, "texture_density": 20.0, "nucleoli": 2.0},
    "membranes": {"coverage": 1.0, "radius": 0.6},
    "mitochondria": {"density": 1.0, "radius": 0.1, "length": 1.0},
    "actin": {"density": 1.0, "fibres": 1.0}}))
for k, cfg in enumerate(configs):
    s = library.sample(cfg, box, np.random.default_rng([seed, k]), slab=False)
    cpu = render.render(s, shape, spacing)
    gpu = render_cuda(s, shape, spacing).copy_to_host()
    into = cuda.to_device(np.zeros(shape, np.float32))  # rendering into a caller's array (a batch)
    assert render_cuda(s, shape, spacing, out=into) is into
    assert np.array_equal(into.copy_to_host(), gpu)
    out["max_rel_diff"] = max(out["max_rel_diff"], float(np.abs(cpu - gpu).max() / cpu.max()))
    out["cpu_sum"] += float(cpu.sum(dtype=np.float64))
    out["gpu_sum"] += float(gpu.sum(dtype=np.float64))
    out["n_filaments"] += int(len(s.filaments.brightness))
    out["n_granules"] += int(len(s.granules.centres))
    out["n_beads"] += int(len(s.beads.positions))
    samples.append(s)
    renders.append(cpu)
order = [1, 2, 0, 3]  # the sample without granules between two with
batch = render_prepared_batch([prepare(samples[i], shape, spacing) for i in order]).copy_to_host()
for b, i in enumerate(order):
    rel = float(np.abs(renders[i] - batch[b]).max() / renders[i].max())
    out["batch_max_rel_diff"] = max(out["batch_max_rel_diff"], rel)
print(json.dumps(out))
