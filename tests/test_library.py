"""The sample library: each structure type's statistics match its settings, every type is a
pure function of its generator, types do not disturb each other, and mixtures vary per image."""

import numpy as np
import pytest

from simulate import ConfigError, SimConfig, library, render
from simulate.config_sample import (
    Actin,
    Cells,
    Membranes,
    Mitochondria,
    Nuclei,
    SampleConfig,
    draw_mixture,
)

BOX = np.array([1.0, 200.0, 200.0])  # a 2D slab, µm
OFF = {"microtubules": {"density": 0.0}, "granules": {"density": 0.0}}


def _rng(k=0):
    return np.random.default_rng([11, k])


def test_nuclei_count_size_and_shape():
    p = Nuclei(density=0.002, radius=6.0, radius_spread=0.2, aspect=1.5, height=0.5, nucleoli=0,
               texture=0.0)
    s = library.nuclei(p, BOX, _rng(), slab=True)
    ell = s.granules
    n = len(ell.centres)
    assert abs(n - 80) < 4 * np.sqrt(80)  # Poisson count of density × area
    lateral = np.sqrt(ell.axes[:, 1] * ell.axes[:, 2])  # the aspect keeps the area
    assert lateral.mean() == pytest.approx(6.0, rel=0.08)
    assert np.all(ell.axes[:, 1] / ell.axes[:, 2] <= 1.5 + 1e-9)
    assert np.allclose(ell.axes[:, 0], 0.5 * lateral)  # flattened along z
    assert np.allclose(ell.rotations[:, 0], [1, 0, 0])  # lying flat: rotations about z only
    # brightness is a density: the total of a nucleus is brightness × volume
    vol = 4 / 3 * np.pi * np.prod(ell.axes, axis=1)
    assert np.mean(ell.brightness / vol) == pytest.approx(1.0, rel=0.1)


def test_nuclei_nucleoli_are_darker_and_texture_keeps_the_total():
    p = Nuclei(density=0.01, radius=3.0, radius_spread=0.0, aspect=1.0, height=1.0, nucleoli=2.0,
               nucleolus_contrast=-0.8, texture=0.4, brightness_spread=0.0)
    box = np.array([8.0, 40.0, 40.0])
    s = library.nuclei(p, box, _rng(1), slab=False)
    neg = s.granules.brightness < 0
    assert neg.any()  # nucleoli remove brightness
    body = ~neg
    vol = 4 / 3 * np.pi * 27.0
    assert np.allclose(s.granules.brightness[body], 0.6 * vol)  # 1 − texture in the body
    # the texture points carry the rest (minus points outside the box's z range)
    assert 0 < s.beads.brightness.sum() <= 0.4 * vol * body.sum() * 1.001


def test_cells_are_soft_lobed_blobs():
    p = Cells(density=0.001, radius=10.0, lobes=3.0, softness=0.4, texture=0.0)
    s = library.cells(p, BOX, _rng(2), slab=True)
    ell = s.granules
    assert len(ell.centres) >= 2 * 20  # several lobes per cell, two shells per lobe
    # nested shells: every second ellipsoid is the first scaled by 1 − softness
    assert np.allclose(ell.axes[1::2], 0.6 * ell.axes[0::2])


def test_membranes_2d_outline_cells_of_the_set_size():
    p = Membranes(coverage=1.0, radius=5.0, irregularity=0.3)
    s = library.membranes(p, BOX, _rng(3), slab=True)
    f = s.filaments
    nl = 4  # levels through the 1 µm slab, every 0.25 µm
    seg = f.vertices.reshape(-1, nl, 2, 3)[:, 0]
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum()
    # a tessellation of cells of area π r² has about 2·√(π)... edge length per area: hexagons of
    # area A have perimeter/2 = 3·side per cell, side = √(2A / (3√3))
    area = np.pi * 25.0
    expected = (BOX[1] + 20) * (BOX[2] + 20) / area * 3 * np.sqrt(2 * area / (3 * np.sqrt(3)))
    assert length == pytest.approx(expected, rel=0.25)
    # each edge is a vertical sheet: the same line at every level
    lines = f.vertices.reshape(-1, nl, 2, 3)
    assert np.allclose(lines[:, :, :, 1:], lines[:, :1, :, 1:])


def test_membranes_coverage_selects_a_patch():
    full = library.membranes(Membranes(coverage=1.0, radius=4.0), BOX, _rng(4), slab=True)
    part = library.membranes(Membranes(coverage=0.3, radius=4.0), BOX, _rng(4), slab=True)
    ratio = len(part.filaments.brightness) / len(full.filaments.brightness)
    assert 0.2 < ratio < 0.55  # cells inside the patch and the edges bounding it


def test_membranes_fill_puts_signal_inside_the_cells():
    dark = library.membranes(Membranes(coverage=1.0, radius=4.0), BOX, _rng(4), slab=True)
    lit = library.membranes(Membranes(coverage=1.0, radius=4.0, fill=0.5), BOX, _rng(4), slab=True)
    assert np.array_equal(dark.filaments.vertices, lit.filaments.vertices)  # same tissue
    assert len(dark.granules.centres) == 0
    interiors = lit.granules
    assert np.allclose(interiors.axes, 0.8 * 4.0)  # a ball of 0.8 cell radii per cell
    vol = 4 / 3 * np.pi * 3.2**3
    assert np.mean(interiors.brightness) / vol == pytest.approx(0.5, rel=0.15)


def test_membranes_3d_surface_density():
    p = Membranes(coverage=1.0, radius=2.0, brightness=2.0, brightness_spread=0.0)
    box = np.array([6.0, 12.0, 12.0])
    s = library.membranes(p, box, _rng(5), slab=False)
    pts = s.beads
    assert len(pts.positions) > 1000
    inside = np.all((pts.positions >= 0) & (pts.positions <= box), axis=1)
    # faces of cubic cells of side a: 3 faces per cell of area a² → 3/a µm² per µm³
    a = (4 / 3 * np.pi) ** (1 / 3) * 2.0
    assert pts.brightness[inside].sum() == pytest.approx(2.0 * 3 / a * np.prod(box), rel=0.3)


def test_mitochondria_tubes_have_the_set_length_and_radius():
    p = Mitochondria(density=0.05, length=3.0, length_spread=0.2, radius=0.25, radius_spread=0.0,
                     brightness=2.0, brightness_spread=0.0)
    box = np.array([1.0, 400.0, 400.0])
    s = library.mitochondria(p, box, _rng(6), slab=True)
    total_length = s.beads.brightness.sum() / 2.0  # brightness per µm × length
    n = 0.05 * 400 * 400
    assert total_length == pytest.approx(n * 3.0, rel=0.1)  # a few leave the box early


def test_a_tube_is_a_solid_cylinder_of_its_radius():
    p = Mitochondria(density=1.0, length=4.0, length_spread=0.0, radius=0.3, radius_spread=0.0,
                     persistence=1e6, brightness=1.0, brightness_spread=0.0)
    box = np.array([1.0, 30.0, 30.0])
    rng = np.random.default_rng(3)
    for _ in range(50):  # one whole tube inside the box: 28 balls along 4 µm at 0.15 µm steps
        s = library.mitochondria(p.model_copy(update={"density": 1 / 900}), box, rng, slab=True)
        if len(s.beads.positions) == 28 * library._BALL_POINTS:
            break
    pts = s.beads.positions
    centred = pts - pts.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ axis
    perp = np.linalg.norm(centred - along[:, None] * axis, axis=1)
    assert perp.max() <= 0.3 * 1.02
    assert np.sqrt(np.mean(perp**2)) == pytest.approx(np.sqrt(0.4) * 0.3, rel=0.15)  # a ball's 2/5 r²
    assert np.ptp(along) == pytest.approx(4.0 + 2 * 0.3, rel=0.1)


def test_actin_fibres_align():
    def order_parameter(fil):
        v = np.diff(fil.vertices, axis=0)
        same = np.repeat(np.arange(len(fil.brightness)), np.diff(fil.starts))[1:] == \
            np.repeat(np.arange(len(fil.brightness)), np.diff(fil.starts))[:-1]
        ang = np.arctan2(v[same, 1], v[same, 2])
        return abs(np.mean(np.exp(2j * ang)))  # 1: all parallel, 0: isotropic

    box = np.array([1.0, 60.0, 60.0])
    aligned = library.actin(Actin(density=0.0, fibres=0.5, alignment=0.95), box, _rng(7), slab=True)
    random = library.actin(Actin(density=0.0, fibres=0.5, alignment=0.0), box, _rng(7), slab=True)
    assert order_parameter(aligned.filaments) > 0.8
    assert order_parameter(random.filaments) < 0.3


@pytest.mark.parametrize("name", ["nuclei", "cells", "membranes", "mitochondria", "actin"])
def test_each_type_is_a_pure_function_of_its_generator(name):
    cfg = SampleConfig.model_validate({**OFF, "nuclei": {"density": 0.003},
                                       "cells": {"density": 0.001},
                                       "membranes": {"coverage": 0.5}, "mitochondria": {"density": 0.05},
                                       "actin": {"density": 0.2, "fibres": 0.1}})
    a = library.sample(cfg, BOX, _rng(8), slab=True)
    b = library.sample(cfg, BOX, _rng(8), slab=True)
    c = library.sample(cfg, BOX, _rng(9), slab=True)
    for part in ("filaments", "granules", "beads"):
        for f in getattr(a, part).__dataclass_fields__:
            assert np.array_equal(getattr(getattr(a, part), f), getattr(getattr(b, part), f))
    assert not np.array_equal(a.granules.centres, c.granules.centres)


def test_adding_a_type_keeps_the_others():
    base = SampleConfig.model_validate({"microtubules": {"density": 0.2}})
    more = SampleConfig.model_validate({"microtubules": {"density": 0.2}, "nuclei": {"density": 0.003}})
    a = library.sample(base, BOX, _rng(10), slab=True)
    b = library.sample(more, BOX, _rng(10), slab=True)
    assert np.array_equal(a.filaments.vertices, b.filaments.vertices)
    assert len(b.granules.centres) > len(a.granules.centres)


def test_mixture_draws_types_per_image():
    cfg = SampleConfig.model_validate({**OFF, "nuclei": {"density": 0.003},
                                       "mitochondria": {"density": 0.05},
                                       "actin": {"density": 0.2},
                                       "mixture": {"types": ["nuclei", "mitochondria", "actin"],
                                                   "presence": 0.5}})
    shown = []
    for k in range(12):
        drawn = draw_mixture(cfg, _rng(20 + k))
        on = tuple(t for t in ("nuclei", "mitochondria", "actin") if getattr(drawn, t).density > 0)
        assert on  # at least one type in every image
        shown.append(on)
        for t in on:  # factors within the ranges
            assert 0.3 <= getattr(drawn, t).density / getattr(cfg, t).density <= 3.0
    assert len(set(shown)) >= 3


def test_mixture_of_a_switched_off_type_is_refused():
    with pytest.raises(ConfigError, match=r"mixture\.types lists nuclei"):
        SimConfig.from_dict({"sample": {"mixture": {"types": ["nuclei"]}}})


def test_library_sample_renders_its_integral():
    cfg = SampleConfig.model_validate({**OFF, "nuclei": {"density": 0.02, "radius": 2.0,
                                                         "nucleoli": 0.0},
                                       "mitochondria": {"density": 0.2}})
    box = np.array([4.0, 20.0, 20.0])
    spacing = (0.1, 0.1, 0.1)
    s = library.sample(cfg, box, _rng(12), slab=False)
    shape = tuple(int(round(b / d)) for b, d in zip(box, spacing, strict=True))
    vol = render.render(s, shape, spacing)
    # everything inside the grid is deposited: the total is at most the objects' and most of it
    total = s.granules.brightness.sum() + s.beads.brightness.sum()
    assert 0.5 * total < vol.sum(dtype=np.float64) <= total * 1.0001


def test_every_library_type_simulates_a_pair():
    sample = {**OFF, "nuclei": {"density": 0.004}, "cells": {"density": 0.002},
              "membranes": {"coverage": 0.5}, "mitochondria": {"density": 0.1},
              "actin": {"density": 0.3, "fibres": 0.2}}
    cfg = SimConfig.from_dict({"shape": [64, 64], "sample": sample,
                               "sampling": {"pixel": 0.2}, "optics": {"na": 0.8, "ni": 1.0}})
    from simulate import simulate_pair

    p = simulate_pair(cfg, 0, 0)
    assert p.clean.shape == (64, 64) and np.isfinite(p.input).all() and p.clean.max() > 0
