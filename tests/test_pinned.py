"""Pairs and training batches pinned for every preset: a refactor must leave them unchanged.

The values were taken before the refactor of issue 13 (input digests at a748c07, fingerprints at
cec1660: the rounded-value hashes they replace flipped under freshly installed dependencies).
Camera ADU are hashed exactly (integers); targets and normalised batches by a fingerprint (mean,
RMS, random projections) compared to 1e-5 of their RMS, so a difference in the last bit of a float (another
numpy or scipy build) does not count, a changed simulation does. A change that is meant to alter
the simulation updates these digests in the same commit and says why (deconvolve's batch: the
preset's Wiener prefilter, issue 14; without it the batch still gives the old fingerprint).
"""

import hashlib

import numpy as np
import pytest

from restore.data import SimulatedBatches, model_ndim
from simulate import SimConfig, simulate_pair
from simulate.config_io import load_preset

SHAPES = {"deconvolve": [16, 64, 64], "denoise2d": [96, 96], "denoise3d": [16, 64, 64],
          "generalist2d": [96, 96], "isotropic": [16, 64, 64], "n2n": [96, 96], "nuclei2d": [96, 96],
          "upsample3d": [12, 64, 64]}
PINNED = {  # preset: (input digest, target fingerprint, batch fingerprint)
    "deconvolve": ("18edbcc66ded0c4d",  # batch: the preset's target.wiener prefilters the input
                   [102.40616, 102.48443, -18.982943, -9.5205296, -49.669728, 76.428912],
                   [0.11836011, 0.15176711, -0.09322315, 0.11264366, -0.03107459, 0.27667139]),
    "denoise2d": ("e41b420d2442e9eb",
                  [100.56632, 100.56901, 79.703817, -6.2677736, -161.49166, -19.865948],
                  [0.36312052, 0.38671528, 0.22594665, -0.093009693, -0.34459941, -0.094056331]),
    "denoise3d": ("b0d070ce67abf747",
                  [100.80726, 100.80944, -15.929608, -9.1489979, -50.019849, 74.965624],
                  [0.36305719, 0.38606352, -0.16118095, -0.13024226, -0.16260003, 0.38668697]),
    "generalist2d": ("2184e0c4656a0c2f",
                     [103.2326, 103.25367, 83.64341, -9.4577581, -163.56196, -20.215955],
                     [0.24436839, 0.28173478, 0.32276493, 0.076508858, -0.36760665, 0.17539985]),
    "isotropic": ("b52d5165ec788e82",
                  [101.04596, 101.05048, -19.143296, 21.802862, -58.745303, 116.75305],
                  [0.35418061, 0.39489203, 0.11549266, 0.078972288, -0.26136291, 0.06920807]),
    "n2n": ("e41b420d2442e9eb",
            [100.54546, 100.56268, 82.202501, -6.4700984, -162.56379, -20.02634],
            [0.36088054, 0.40450086, 0.30315975, -0.13221711, -0.24197576, -0.18664044]),
    "nuclei2d": ("5baa724a5c25ed2e",
                 [103.2381, 103.25884, 80.757086, -3.2857153, -165.36203, -19.221432],
                 [0.21113736, 0.22927331, 0.082890606, -0.0046875996, -0.23736322, 0.22347336]),
    "upsample3d": ("1394129c4f6a2597",
                   [104.00513, 104.02549, -38.00357, 60.165052, -25.630315, 16.132279],
                   [0.2782261, 0.30281181, -0.0078216894, 0.23033579, -0.13196274, -0.038395722]),
}


def _digest(a) -> str:
    """Exact: camera ADU are integers."""
    return hashlib.sha256(np.round(np.asarray(a, np.float64)).tobytes()).hexdigest()[:16]


def _fingerprint(*arrays) -> np.ndarray:
    """Mean, RMS and four fixed random projections (scaled to the RMS) of the values: a change of
    the simulation moves them by about their size; a different last bit of a float (another numpy,
    scipy or CPU) by about 1e-7 of it, where a hash of rounded values would flip."""
    a = np.concatenate([np.asarray(x, np.float64).ravel() for x in arrays])
    p = np.random.default_rng(13).standard_normal((4, a.size)) @ a / np.sqrt(a.size)
    return np.array([a.mean(), np.sqrt(np.mean(a * a)), *p])


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_pairs_and_batches_are_unchanged(preset):
    shape = SHAPES[preset]
    want_input, want_target, want_batch = PINNED[preset]
    data = load_preset(preset)
    data.pop("train", None)
    cfg = SimConfig.from_dict({**data, "shape": shape})
    pair = simulate_pair(cfg, 5, 1)
    patch = (32, 32) if model_ndim(cfg) == 2 else (8, 32, 32)
    x, y = SimulatedBatches(cfg, seed=5, batch_size=4, patch=patch, patches_per_image=2)(1)
    assert _digest(pair.input) == want_input
    for got, want in ((_fingerprint(pair.target), want_target), (_fingerprint(x, y), want_batch)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * want[1])
