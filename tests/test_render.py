"""Ground truth: geometry and rasterisation keep every object's integral."""

from __future__ import annotations

import numpy as np
import pytest

from simulate import kernels, phantoms, render
from simulate.config_sample import Granules, Microtubules

SPACING = (0.1, 0.05, 0.05)
SHAPE = (40, 120, 120)  # 4 x 6 x 6 µm


def _empty_points():
    return phantoms.Points(np.zeros((0, 3)), np.zeros(0))


def _empty_ellipsoids():
    return phantoms.Ellipsoids(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0),
                               np.zeros((0, 3, 3)), np.zeros(0))


def _render(filaments=None, granules=None, beads=None):
    empty_f = phantoms.Filaments(np.zeros((0, 3)), np.zeros(1, np.int64), np.zeros(0))
    s = phantoms.Sample(filaments or empty_f, granules or _empty_ellipsoids(),
                        beads or _empty_points())
    return render.render(s, SHAPE, SPACING)


def test_filament_integral_is_brightness_times_length():
    t = np.linspace(0, 1, 200)
    verts = np.stack([2.0 + 0.7 * np.sin(3 * t), 1.0 + 4 * t, 1.0 + 3 * t + 0.5 * t**2], axis=1)
    fil = phantoms.Filaments(verts, np.array([0, len(verts)]), np.array([2.5]))
    vol = _render(filaments=fil)
    assert vol.sum(dtype=np.float64) == pytest.approx(2.5 * fil.lengths[0], rel=1e-3)
    assert vol.max() < 2.5 * fil.lengths[0] / 50  # spread along the line, not a blob


def test_random_microtubules_integral_and_density():
    rng = np.random.default_rng(1)
    box = np.array(SHAPE) * np.array(SPACING)
    params = Microtubules(density=1.0, persistence=10.0, brightness=1.0, brightness_spread=0.3)
    fil = phantoms.microtubules(params, box, rng, slab=False)
    inside = np.all((fil.vertices >= 0) & (fil.vertices <= box), axis=1)
    assert inside.mean() > 0.95  # chains end where they leave the box
    total = float(np.sum(fil.lengths * fil.brightness))
    pos, w = kernels.filament_points(fil, 0.025)
    assert w.sum() == pytest.approx(total, rel=1e-9)  # sampling keeps brightness x length
    half = 0.5 * np.array(SPACING)
    full = np.all((pos >= half) & (pos <= box - half), axis=1)  # deposits all its weight
    some = np.all((pos >= -half) & (pos <= box + half), axis=1)  # deposits part of it
    got = _render(filaments=fil).sum(dtype=np.float64)
    assert w[full].sum() * (1 - 1e-5) <= got <= w[some].sum() * (1 + 1e-5)
    assert fil.lengths.sum() == pytest.approx(params.density * np.prod(box), rel=0.25)


def test_persistence_length():
    # <t(s).t(0)> = exp(-s / Lp) for a 3D worm-like chain
    rng = np.random.default_rng(2)
    big = np.array([400.0, 400.0, 400.0])
    fil = phantoms.microtubules(Microtubules(density=1e-4, persistence=5.0), big, rng, slab=False)
    cos = []
    for a, b in zip(fil.starts[:-1], fil.starts[1:], strict=True):
        seg = np.diff(fil.vertices[a:b], axis=0)
        t = seg / np.linalg.norm(seg, axis=1, keepdims=True)
        lag = 50  # 5 µm at 0.1 µm steps
        cos.extend(np.sum(t[:-lag] * t[lag:], axis=1))
    assert np.mean(cos) == pytest.approx(np.exp(-1.0), abs=0.02)


@pytest.mark.parametrize(("axes", "inner"), [((0.3, 0.3, 0.3), 0.0), ((0.5, 0.2, 0.25), 0.0),
                                              ((0.4, 0.4, 0.4), 0.7), ((0.02, 0.02, 0.02), 0.0)])
def test_granule_integral_is_brightness(axes, inner):
    rng = np.random.default_rng(3)
    centres = np.array([[2.0, 3.0, 3.1], [1.5, 2.0, 4.0]])
    ell = phantoms.Ellipsoids(centres, np.array([axes, axes]), np.array([inner, inner]),
                              phantoms._random_rotations(rng, 2), np.array([5.0, 2.0]))
    vol = _render(granules=ell)
    assert vol.sum(dtype=np.float64) == pytest.approx(7.0, rel=1e-4)


@pytest.mark.parametrize("inner", [0.0, 0.6])
def test_large_ellipsoid_integral_within_half_a_percent(inner):
    # semi-axes of 8+ voxels are normalised by the analytic volume (no full sum over their box)
    rng = np.random.default_rng(5)
    ell = phantoms.Ellipsoids(np.array([[2.0, 3.0, 3.0]]), np.array([[0.85, 1.2, 1.6]]),
                              np.array([inner]), phantoms._random_rotations(rng, 1), np.array([4.0]))
    vol = _render(granules=ell)
    assert vol.sum(dtype=np.float64) == pytest.approx(4.0, rel=5e-3)
    assert kernels.LARGE_VOXELS * 0.1 <= 0.85  # the case is a large one


def test_hollow_granule_is_a_shell():
    ell = phantoms.Ellipsoids(np.array([[2.0, 3.0, 3.0]]), np.array([[0.8, 0.8, 0.8]]),
                              np.array([0.8]), np.eye(3)[None], np.array([1.0]))
    vol = _render(granules=ell)
    centre = vol[19:21, 59:61, 59:61].max()
    assert centre == 0.0 and vol.max() > 0


def test_granule_partly_outside_loses_light():
    ell = phantoms.Ellipsoids(np.array([[2.0, 3.0, 0.0]]), np.array([[0.4, 0.4, 0.4]]),
                              np.array([0.0]), np.eye(3)[None], np.array([1.0]))
    assert _render(granules=ell).sum() == pytest.approx(0.5, abs=0.05)


def test_beads_integral_and_reproducible():
    rng = np.random.default_rng(4)
    box = np.array(SHAPE) * np.array(SPACING)
    from simulate.config_sample import Beads

    b = phantoms.beads(Beads(density=0.5, brightness=2.0), box, rng, slab=False)
    inner = np.all((b.positions > 0.1) & (b.positions < box - 0.1), axis=1)
    b = phantoms.Points(b.positions[inner], b.brightness[inner])
    v1 = _render(beads=b)
    v2 = _render(beads=b)
    assert v1.sum(dtype=np.float64) == pytest.approx(b.brightness.sum(), rel=1e-5)
    assert np.array_equal(v1, v2)


def test_clustered_granules_are_clustered():
    box = np.array([10.0, 40.0, 40.0])
    rng = np.random.default_rng(5)
    spread = phantoms.granules(Granules(density=0.01), box, rng, slab=False).centres
    clustered = phantoms.granules(Granules(density=0.01, cluster_size=8, cluster_radius=0.5), box,
                                  rng, slab=False).centres

    def nearest(c):
        d = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(len(c)) * 1e9
        return np.median(d.min(axis=1))

    assert nearest(clustered) < 0.3 * nearest(spread)


def test_slab_filaments_stay_in_slab():
    box = np.array([1.0, 20.0, 20.0])
    fil = phantoms.microtubules(Microtubules(density=0.5), box, np.random.default_rng(6), slab=True)
    assert fil.vertices[:, 0].min() >= 0 and fil.vertices[:, 0].max() <= 1.0
    seg = np.diff(fil.vertices, axis=0)
    tilt = np.abs(seg[:, 0]) / np.linalg.norm(seg, axis=1)
    assert np.median(tilt) < 0.2  # mostly in-plane, as in a flat cell


def test_smooth_background_is_the_sum_of_its_plane_waves():
    # the field is evaluated as one matrix product per plane; it must equal the log-normal of
    # the normalised sum of cos(k·r + φ) written out term by term
    f = phantoms.SmoothField.draw(np.random.default_rng(4), 3.0)
    z, y, x = np.array([0.0, 0.7]), np.linspace(0, 9, 40), np.linspace(0, 12, 50)
    kz, ky, kx = (2 * np.pi * f.wavevectors).T
    waves = sum(np.cos(kz[i] * z[:, None, None] + ky[i] * y[None, :, None]
                       + kx[i] * x[None, None, :] + f.phases[i]) for i in range(len(kz)))
    want = np.exp(0.5 * np.sqrt(2 / len(kz)) * waves - 0.125)
    np.testing.assert_allclose(f(z, y, x), want, rtol=1e-12)
    assert abs(np.log(f(np.zeros(1), np.linspace(0, 300, 300), np.linspace(0, 300, 300))).std()
               - 0.5) < 0.1  # log-normal with σ = 0.5
