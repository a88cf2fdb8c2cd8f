"""Pairs and training batches pinned for every preset: a refactor must leave them unchanged.

The digests were taken before the refactor of issue 13 (commit a748c07). Camera ADU are hashed
exactly (integers), targets to 0.01 ADU and normalised batches to 1e-4, so a difference in the
last bit of a float does not count, a changed simulation does. A change that is meant to alter
the simulation updates these digests in the same commit and says why.
"""

import hashlib

import numpy as np
import pytest

from restore.data import SimulatedBatches, model_ndim
from simulate import SimConfig, simulate_pair
from simulate.config import load_preset

PINNED = {  # preset: (shape, input, target, batch)
    "deconvolve": ([16, 64, 64], "18edbcc66ded0c4d", "f638df4fbd906573", "71e67b070bef8174"),
    "denoise2d": ([96, 96], "e41b420d2442e9eb", "26ca36abcedcfb05", "db2b7e6894c709bf"),
    "denoise3d": ([16, 64, 64], "b0d070ce67abf747", "88fffdd7e383fd04", "ed5b1ce6daf5962f"),
    "generalist2d": ([96, 96], "2184e0c4656a0c2f", "0a62587aa674374d", "60964241f45f2bfb"),
    "isotropic": ([16, 64, 64], "b52d5165ec788e82", "f9179649d1631cfd", "223b6904e340555a"),
    "n2n": ([96, 96], "e41b420d2442e9eb", "43b439844fb59024", "10bea3c5497e61af"),
    "nuclei2d": ([96, 96], "5baa724a5c25ed2e", "3f210a3eda966f70", "dcf3409548bfaa98"),
    "upsample3d": ([12, 64, 64], "1394129c4f6a2597", "9afe8fd204a239e0", "35c3a270681b5273"),
}


def _digest(*arrays, decimals: int) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.round(np.asarray(a, np.float64), decimals).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_pairs_and_batches_are_unchanged(preset):
    shape, want_input, want_target, want_batch = PINNED[preset]
    data = load_preset(preset)
    data.pop("train", None)
    cfg = SimConfig.from_dict({**data, "shape": shape})
    pair = simulate_pair(cfg, 5, 1)
    patch = (32, 32) if model_ndim(cfg) == 2 else (8, 32, 32)
    x, y = SimulatedBatches(cfg, seed=5, batch_size=4, patch=patch, patches_per_image=2)(1)
    assert (_digest(pair.input, decimals=0), _digest(pair.target, decimals=2),
            _digest(x, y, decimals=4)) == (want_input, want_target, want_batch)
