"""Run under NUMBA_ENABLE_CUDASIM=1: the CUDA rendering kernels against the CPU ones.

Prints one JSON line: max abs difference, relative to the volume's maximum, and integrals.
"""

import json
import sys

import numpy as np
from numba import cuda

from simulate import phantoms, render
from simulate.config import SampleConfig
from simulate.render_cuda import render_cuda

shape, spacing = (6, 24, 28), (0.2, 0.1, 0.1)
box = np.array(shape) * np.array(spacing)
cfg = SampleConfig.model_validate({
    "microtubules": {"density": 1.5, "persistence": 5.0},
    "granules": {"density": 2.0, "radius": 0.15, "hollow": 0.5},
    "beads": {"density": 3.0}})
s = phantoms.sample(cfg, box, np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0),
                    slab=False)
cpu = render.render(s, shape, spacing)
gpu = render_cuda(s, shape, spacing).copy_to_host()
into = cuda.to_device(np.zeros(shape, np.float32))  # rendering into a caller's array (a batch)
assert render_cuda(s, shape, spacing, out=into) is into
assert np.array_equal(into.copy_to_host(), gpu)
print(json.dumps({"max_rel_diff": float(np.abs(cpu - gpu).max() / cpu.max()),
                  "cpu_sum": float(cpu.sum(dtype=np.float64)), "gpu_sum": float(gpu.sum(dtype=np.float64)),
                  "n_filaments": int(len(s.filaments.brightness)), "n_granules": int(len(s.granules.centres)),
                  "n_beads": int(len(s.beads.positions))}))
