"""The counter-based generator behind the camera: exact Philox, right distributions."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.special
import scipy.stats

from simulate import rng


@numba.njit
def _philox(c, k):
    return rng.philox4x32(np.uint64(c[0]), np.uint64(c[1]), np.uint64(c[2]), np.uint64(c[3]),
                          np.uint64(k[0]), np.uint64(k[1]))


@pytest.mark.parametrize(("ctr", "key", "want"), [  # Random123 tests/kat_vectors, philox4x32 10
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(ctr, key, want):
    assert tuple(int(x) for x in _philox(np.array(ctr, np.uint64), np.array(key, np.uint64))) == want


@numba.njit
def _ndtri_all(p):
    out = np.empty_like(p)
    for i in range(p.size):
        out[i] = rng.ndtri(p[i])
    return out


def test_inverse_normal_cdf_matches_scipy():
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 10001), np.logspace(-300, -2, 200)])
    np.testing.assert_allclose(_ndtri_all(p), scipy.special.ndtri(p), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("kind", "param", "dist"), [
    ("uniform", 0.0, scipy.stats.uniform()),
    ("normal", 0.0, scipy.stats.norm()),
    ("gamma", 1.0, scipy.stats.gamma(1.0)),
    ("gamma", 6.0, scipy.stats.gamma(6.0)),
])
def test_continuous_distributions(kind, param, dist):
    x = rng.sample(kind, 200_000, np.random.default_rng(0), param)
    assert scipy.stats.kstest(x, dist.cdf).pvalue > 1e-3


@pytest.mark.parametrize("lam", [0.05, 1.0, 7.5, 9.99, 10.0, 25.0, 400.0])
def test_poisson_pmf(lam):
    x = rng.sample("poisson", 200_000, np.random.default_rng(1), lam)
    assert np.array_equal(x, np.rint(x)) and x.min() >= 0
    assert x.mean() == pytest.approx(lam, abs=5 * np.sqrt(lam / 200_000))
    assert x.var() == pytest.approx(lam, rel=0.03)
    k, counts = np.unique(x, return_counts=True)
    expected = scipy.stats.poisson(lam).pmf(k) * x.size
    big = expected > 50
    chi2 = np.sum((counts[big] - expected[big]) ** 2 / expected[big])
    assert scipy.stats.chi2(big.sum()).sf(chi2) > 1e-3


def test_streams_are_keyed_and_reproducible():
    a = rng.sample("normal", 1000, np.random.default_rng(5))
    b = rng.sample("normal", 1000, np.random.default_rng(5))
    c = rng.sample("normal", 1000, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
