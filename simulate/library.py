"""The sample library: the structures most imaged in fluorescence microscopy, and mixtures.

Each structure type is a function ``(settings, box, rng, *, slab) -> Sample`` drawing objects in
physical coordinates (µm, axes z, y, x, origin at the corner of the box) from an explicit
generator, built only from the three primitives the renderers know (:mod:`simulate.phantoms`:
polylines, solid or hollow ellipsoids, points). So every type renders with the same numba kernels
on the CPU and CUDA kernels on a GPU, keeps its integral exactly, and is a pure function of the
generator's state.

* nuclei: flattened ellipsoids with chromatin texture (points) and nucleoli (ellipsoids adding
  or removing brightness), clustered so neighbours touch and overlap;
* cells: a few overlapping lobes per cell, each two nested ellipsoids (a soft edge);
* membranes: a Voronoi tessellation of jittered lattice seeds; edges (2D, as vertical sheets
  through the slab) or faces (3D, as dense points) of the cells inside a random tissue patch;
* mitochondria: worm-like chains of overlapping balls of points (short thick tubes, also
  bacteria);
* actin: a dense mesh of flexible filaments and straight, aligned stress fibres;
* microtubules, granules, beads: :mod:`simulate.phantoms`.

:func:`sample` draws every type that is switched on (a type with density 0 draws nothing, so
adding a type never changes the others), after the mixture, if any, has drawn which types an
image shows and scaled their densities, brightness and sizes
(:func:`simulate.config_sample.draw_mixture`, a pure function of the settings and the generator).
"""

from __future__ import annotations

import numpy as np
import scipy.spatial

from .config_sample import LIBRARY, Microtubules, SampleConfig, draw_mixture, structure_on
from .phantoms import (
    Ellipsoids,
    Filaments,
    Points,
    Sample,
    _grow,
    _positions,
    beads,
    granules,
    microtubules,
    spread,
)

MAX_POINTS = 2_000_000  # points one type may draw per sample (texture and surfaces get coarser)


# --- helpers ---------------------------------------------------------------------------------
def _measure(box: np.ndarray, slab: bool) -> float:
    """Area (µm², slab) or volume (µm³) that densities refer to."""
    return float(box[1] * box[2] if slab else np.prod(box))


def _flat_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rotations about the optical (z) axis by uniform angles: body-to-lab, (n, 3, 3)."""
    phi = rng.uniform(0, 2 * np.pi, n)
    c, s = np.cos(phi), np.sin(phi)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    return rot


def _in_ball(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points uniform in the unit ball, (n, 3)."""
    d = rng.standard_normal((n, 3))
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return d * rng.uniform(0, 1, (n, 1)) ** (1 / 3)


def _fill_points(rng: np.random.Generator, centres: np.ndarray, axes: np.ndarray, rot: np.ndarray,
                 total: np.ndarray, density: float, box: np.ndarray) -> Points:
    """Sub-resolution points uniform inside ellipsoids (texture), ``density`` per µm³ (fewer and
    brighter beyond :data:`MAX_POINTS`), ellipsoid ``i`` sharing ``total[i]`` among its points;
    points outside the box's z range are dropped (they would not be rendered)."""
    vol = 4 / 3 * np.pi * np.prod(axes, axis=1)
    lam = density * vol
    lam *= min(1.0, MAX_POINTS / max(float(lam.sum()), 1.0))
    k = rng.poisson(lam)
    owner = np.repeat(np.arange(len(vol)), k)
    local = _in_ball(rng, len(owner)) * axes[owner]
    pos = centres[owner] + np.einsum("nij,nj->ni", rot[owner], local)
    w = (total / np.maximum(k, 1))[owner]
    keep = (pos[:, 0] >= 0) & (pos[:, 0] <= box[0])
    return Points(pos[keep], w[keep])


def _empty() -> Sample:
    return Sample(Filaments(np.zeros((0, 3)), np.zeros(1, np.int64), np.zeros(0)),
                  Ellipsoids(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3, 3)),
                             np.zeros(0)),
                  Points(np.zeros((0, 3)), np.zeros(0)))


def merge(parts: list[Sample]) -> Sample:
    """One sample holding the objects of several, in order."""
    fil = [p.filaments for p in parts if len(p.filaments.brightness)]
    if fil:
        offsets = np.cumsum([0] + [len(f.vertices) for f in fil])
        starts = np.concatenate([[0]] + [f.starts[1:] + o for f, o in zip(fil, offsets, strict=False)])
        filaments = Filaments(np.concatenate([f.vertices for f in fil]), starts.astype(np.int64),
                              np.concatenate([f.brightness for f in fil]))
    else:
        filaments = _empty().filaments
    ell = [p.granules for p in parts]
    pts = [p.beads for p in parts]
    return Sample(filaments,
                  Ellipsoids(*(np.concatenate([getattr(e, f) for e in ell])
                               for f in ("centres", "axes", "inner", "rotations", "brightness"))),
                  Points(np.concatenate([p.positions for p in pts]),
                         np.concatenate([p.brightness for p in pts])))


def _with(ell: Ellipsoids | None = None, fil: Filaments | None = None,
          pts: Points | None = None) -> Sample:
    e = _empty()
    return Sample(fil if fil is not None else e.filaments, ell if ell is not None else e.granules,
                  pts if pts is not None else e.beads)


# --- nuclei and cells ------------------------------------------------------------------------
def nuclei(p, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """Flattened ellipsoidal nuclei with chromatin texture and nucleoli (:class:`Nuclei`)."""
    box = np.asarray(box, np.float64)
    centres = _positions(rng, p.density * _measure(box, slab), box, p.cluster_size, 1.2 * p.radius)
    n = len(centres)
    r = p.radius * spread(rng, n, p.radius_spread)
    q = rng.uniform(1.0, p.aspect, n)  # lateral axis ratio, area kept
    axes = np.stack([p.height * r, r * np.sqrt(q), r / np.sqrt(q)], axis=1)
    rot = _flat_rotations(rng, n)
    density = p.brightness * spread(rng, n, p.brightness_spread)  # per µm³
    total = density * 4 / 3 * np.pi * np.prod(axes, axis=1)
    body = Ellipsoids(centres, axes, np.zeros(n), rot, total * (1 - p.texture))
    # nucleoli: spheres within half the radius, capped by the nucleus's height
    k = rng.poisson(p.nucleoli, n)
    own = np.repeat(np.arange(n), k)
    nr = p.nucleolus_radius * r[own] * spread(rng, len(own), 0.2)
    n_axes = np.stack([np.minimum(nr, 0.8 * axes[own, 0]), nr, nr], axis=1)
    n_centres = centres[own] + np.einsum("nij,nj->ni", rot[own],
                                         0.5 * _in_ball(rng, len(own)) * (axes[own] - n_axes))
    n_total = p.nucleolus_contrast * density[own] * 4 / 3 * np.pi * np.prod(n_axes, axis=1)
    nucleoli = Ellipsoids(n_centres, n_axes, np.zeros(len(own)), rot[own], n_total)
    texture = _fill_points(rng, centres, axes, rot, total * p.texture, p.texture_density, box)
    return merge([_with(ell=body), _with(ell=nucleoli), _with(pts=texture)])


_SHELLS = 2  # nested ellipsoids per lobe: a step edge that the PSF smooths (each costs a render)


def cells(p, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """Soft cytoplasm blobs: overlapping lobes, each two nested ellipsoids (:class:`Cells`)."""
    box = np.asarray(box, np.float64)
    centres = rng.uniform(0, 1, (rng.poisson(p.density * _measure(box, slab)), 3)) * box
    n = len(centres)
    r = p.radius * spread(rng, n, p.radius_spread)
    density = p.brightness * spread(rng, n, p.brightness_spread)
    lobes = 1 + rng.poisson(p.lobes - 1, n)
    own = np.repeat(np.arange(n), lobes)
    m = len(own)
    offset = np.zeros((m, 3))
    offset[:, 1:] = 0.35 * r[own, None] * rng.standard_normal((m, 2))
    lr = r[own] * rng.uniform(0.5, 1.0, m)
    q = rng.uniform(1.0, 2.0, m)
    axes = np.stack([p.height * r[own] * rng.uniform(0.7, 1.0, m), lr * np.sqrt(q), lr / np.sqrt(q)], 1)
    rot = _flat_rotations(rng, m)
    lobe_c = centres[own] + offset
    shells = 1.0 - p.softness * np.arange(_SHELLS) / max(_SHELLS - 1, 1)  # 1 … 1 − softness
    vol = 4 / 3 * np.pi * np.prod(axes, axis=1)
    d = density[own] * (1 - p.texture) / _SHELLS
    ell = Ellipsoids(np.repeat(lobe_c, _SHELLS, 0), np.repeat(axes, _SHELLS, 0) * np.tile(shells, m)[:, None],
                     np.zeros(m * _SHELLS), np.repeat(rot, _SHELLS, 0),
                     np.repeat(d * vol, _SHELLS) * np.tile(shells ** 3, m))
    texture = _fill_points(rng, lobe_c, axes, rot, density[own] * vol * p.texture, p.texture_density,
                           box)
    return merge([_with(ell=ell), _with(pts=texture)])


# --- membranes -------------------------------------------------------------------------------
def _lattice(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, spacing: float,
             jitter: float) -> np.ndarray:
    """Jittered lattice points covering the box [lo, hi] (2 or 3 axes): a hexagonal (2D) or
    cubic (3D) lattice at a random rotation and offset, each point moved by Gaussian jitter of
    ``jitter`` × spacing."""
    nd = len(lo)
    centre, half = (lo + hi) / 2, np.linalg.norm(hi - lo) / 2 + spacing
    n = int(np.ceil(half / spacing)) + 1
    idx = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * nd, indexing="ij"), -1).reshape(-1, nd)
    if nd == 2:
        basis = spacing * np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
        phi = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    else:
        basis = spacing * np.eye(3)
        rot = scipy.spatial.transform.Rotation.random(random_state=rng).as_matrix()
    pts = (idx @ basis + rng.uniform(0, spacing, nd)) @ rot.T + centre
    pts = pts + jitter * spacing * rng.standard_normal(pts.shape)
    return pts[np.all((pts >= lo) & (pts <= hi), axis=1)]


def _patch_mask(rng: np.random.Generator, seeds: np.ndarray, coverage: float, scale: float) -> np.ndarray:
    """Which seeds lie in the tissue: a smooth random field (random plane waves of wavelength
    ~``scale`` µm) above its (1 − coverage) quantile over the seeds."""
    if coverage >= 1:
        return np.ones(len(seeds), bool)
    k = rng.standard_normal((16, seeds.shape[1])) / scale
    field = np.cos(2 * np.pi * seeds @ k.T + rng.uniform(0, 2 * np.pi, 16)).sum(axis=1)
    return field >= np.quantile(field, 1 - coverage)


def membranes(p, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """Membranes of a tissue of packed cells (:class:`Membranes`)."""
    box = np.asarray(box, np.float64)
    return (_membranes_2d if slab else _membranes_3d)(p, box, rng)


def _membranes_2d(p, box: np.ndarray, rng: np.random.Generator) -> Sample:
    """Edges of a 2D Voronoi tessellation as vertical sheets through the slab: one polyline per
    edge and level, levels every 0.25 µm (the out-of-focus parts blur as a real sheet's would)."""
    a = np.sqrt(2 * np.pi / np.sqrt(3)) * p.radius  # hexagonal cells of area π r²
    lo, hi = -2 * a * np.ones(2), box[1:] + 2 * a
    seeds = _lattice(rng, lo, hi, a, 0.35 * p.irregularity)
    if len(seeds) < 4:
        return _empty()
    inside = _patch_mask(rng, seeds, p.coverage, p.patch_scale * p.radius)
    vor = scipy.spatial.Voronoi(seeds)
    ridges = [(i, j, v) for (i, j), v in zip(vor.ridge_points, vor.ridge_vertices, strict=True)
              if -1 not in v and (inside[i] or inside[j])]
    if not ridges:
        return _empty()
    ends = np.array([vor.vertices[v] for _, _, v in ridges])  # (m, 2, 2)
    near = np.all((ends > lo) & (ends < hi), axis=(1, 2))
    ends = ends[near]
    m = len(ends)
    bright = p.brightness * spread(rng, m, p.brightness_spread)
    levels = np.linspace(0, box[0], max(1, int(round(box[0] / 0.25))) + 1)
    levels = 0.5 * (levels[:-1] + levels[1:]) if len(levels) > 1 else np.array([box[0] / 2])
    nl = len(levels)
    verts = np.zeros((m, nl, 2, 3))
    verts[..., 0] = levels[None, :, None]
    verts[..., 1:] = ends[:, None]
    starts = np.arange(0, 2 * m * nl + 1, 2, dtype=np.int64)
    fil = Filaments(verts.reshape(-1, 3), starts, np.repeat(bright / nl * box[0], nl))
    centres = np.column_stack([np.full(len(seeds), box[0] / 2), seeds])
    return merge([_with(fil=fil), _with(ell=_interiors(p, centres[inside], rng))])


def _interiors(p, centres: np.ndarray, rng: np.random.Generator) -> Ellipsoids | None:
    """The cells' interiors (``fill``): a ball of 0.8 cell radii at each cell centre, each cell
    with its own brightness (coefficient of variation 0.5)."""
    if p.fill <= 0 or not len(centres):
        return None
    n = len(centres)
    r = 0.8 * p.radius
    total = p.fill * p.brightness * spread(rng, n, 0.5) * 4 / 3 * np.pi * r**3
    return Ellipsoids(centres, np.full((n, 3), r), np.zeros(n),
                      np.broadcast_to(np.eye(3), (n, 3, 3)).copy(), total)


def _membranes_3d(p, box: np.ndarray, rng: np.random.Generator) -> Sample:
    """Faces of a 3D Voronoi tessellation, sampled as dense random points (each face keeps
    ``brightness`` per µm² of its area)."""
    a = (4 / 3 * np.pi) ** (1 / 3) * p.radius  # cubic cells of the volume of a ball of radius r
    lo, hi = -1.5 * a * np.ones(3), box + 1.5 * a
    seeds = _lattice(rng, lo, hi, a, 0.35 * p.irregularity)
    if len(seeds) < 5:
        return _empty()
    inside = _patch_mask(rng, seeds, p.coverage, p.patch_scale * p.radius)
    vor = scipy.spatial.Voronoi(seeds)
    tris, owner = [], []
    for f, ((i, j), v) in enumerate(zip(vor.ridge_points, vor.ridge_vertices, strict=True)):
        if -1 in v or not (inside[i] or inside[j]):
            continue
        poly = vor.vertices[v]
        c = poly.mean(axis=0)
        if np.any(c < -a) or np.any(c > box + a):
            continue
        normal = seeds[j] - seeds[i]
        u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 * np.linalg.norm(normal) else
                     [0.0, 1.0, 0.0])
        w = np.cross(normal, u)
        order = np.argsort(np.arctan2((poly - c) @ w, (poly - c) @ u))
        poly = poly[order]
        for k in range(len(poly)):  # fan around the centroid
            tris.append((c, poly[k], poly[(k + 1) % len(poly)]))
            owner.append(f)
    if not tris:
        return _empty()
    t = np.asarray(tris)  # (n, 3 corners, 3)
    _, face = np.unique(np.asarray(owner), return_inverse=True)
    bright = p.brightness * spread(rng, face.max() + 1, p.brightness_spread)[face]
    area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    spacing = max(0.03, float(np.sqrt(area.sum() / MAX_POINTS)))
    k = np.maximum(rng.poisson(area / spacing**2), 1)
    own = np.repeat(np.arange(len(t)), k)
    r1, r2 = rng.uniform(0, 1, (2, len(own)))
    s = np.sqrt(r1)
    pos = (1 - s)[:, None] * t[own, 0] + (s * (1 - r2))[:, None] * t[own, 1] + (s * r2)[:, None] * t[own, 2]
    w = (bright * area / k)[own]
    keep = np.all((pos >= -0.5) & (pos <= box + 0.5), axis=1)
    near = np.all((seeds > -a) & (seeds < box + a), axis=1) & inside
    return merge([_with(pts=Points(pos[keep], w[keep])), _with(ell=_interiors(p, seeds[near], rng))])


# --- tubes and filaments ---------------------------------------------------------------------
_BALL_POINTS = 96  # points per sphere of a tube: 4/3·π·27 ≈ 113 per (r/3)³ ball volume


def mitochondria(p, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """Short thick worm-like tubes as chains of overlapping balls, each filled with random points
    (:class:`Mitochondria`): rendering costs the points, not the voxels the tube covers."""
    box = np.asarray(box, np.float64)
    n = rng.poisson(p.density * _measure(box, slab))
    starts = rng.uniform(0, 1, (n, 3)) * box
    length = p.length * spread(rng, n, p.length_spread)
    radius = p.radius * spread(rng, n, p.radius_spread)
    per_um = p.brightness * spread(rng, n, p.brightness_spread)
    centres, axes, weights, own = [], [], [], []
    for i in range(n):
        step = max(0.02, min(radius[i] / 2, p.persistence / 20))
        m = max(1, int(np.ceil(length[i] / step)))
        if slab:
            phi, tilt = rng.uniform(0, 2 * np.pi), 0.1 * rng.standard_normal()
            t0 = np.array([np.sin(tilt), np.cos(tilt) * np.sin(phi), np.cos(tilt) * np.cos(phi)])
        else:
            t0 = rng.standard_normal(3)
            t0 /= np.linalg.norm(t0)
        kicks = np.sqrt(step / p.persistence) * rng.standard_normal((m, 3))
        buf = np.empty((m + 1, 3))
        k = _grow(starts[i], t0, kicks, step, box, slab, 0.1, buf)
        centres.append(buf[:k])
        axes.append(np.full(k, radius[i]))
        weights.append(np.full(k, per_um[i] * step * (1 - p.texture)))
        own.append(np.full(k, i))
    if not centres:
        return _empty()
    c, r, w, own = (np.concatenate(a) for a in (centres, axes, weights, own))
    # each sphere of the chain as points uniform in its ball (cheap to render, any size): about
    # one point per (r/3)³, so the PSF sees a smooth tube
    k = np.full(len(c), _BALL_POINTS)
    ball = np.repeat(np.arange(len(c)), k)
    pts = c[ball] + r[ball, None] * _in_ball(rng, len(ball))
    tubes = Points(pts, np.repeat(w / k, k))
    if p.texture <= 0:
        return _with(pts=tubes)
    # puncta: about one per µm of tube, at random spheres of the chain
    sizes = np.bincount(own, minlength=n)
    k = rng.poisson(np.maximum(length, 1e-3))
    pick = np.concatenate([rng.integers(0, max(s, 1), kk) + off for s, kk, off in
                           zip(sizes, k, np.cumsum(sizes) - sizes, strict=True)]).astype(np.int64)
    pick = pick[pick < len(c)]
    tube_of = own[pick]
    puncta = c[pick] + 0.5 * r[pick, None] * _in_ball(rng, len(pick))
    wp = (per_um * length * p.texture / np.maximum(k, 1))[tube_of]
    return merge([_with(pts=tubes), _with(pts=Points(puncta, wp))])


def actin(p, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """A mesh of flexible filaments and aligned stress fibres (:class:`Actin`)."""
    box = np.asarray(box, np.float64)
    mesh = microtubules(Microtubules(density=p.density, persistence=p.persistence,
                                     brightness=p.brightness, brightness_spread=p.brightness_spread),
                        box, rng, slab=slab)
    axis = rng.standard_normal(3)
    if slab:
        axis[0] = 0.0
    axis /= max(np.linalg.norm(axis), 1e-12)
    fibres = microtubules(Microtubules(density=p.fibres, persistence=p.fibre_persistence,
                                       brightness=p.fibre_brightness,
                                       brightness_spread=p.brightness_spread),
                          box, rng, slab=slab, axis=axis, alignment=p.alignment)
    return merge([_with(fil=mesh), _with(fil=fibres)])


TYPES = {"nuclei": nuclei, "cells": cells, "membranes": membranes, "mitochondria": mitochondria,
         "actin": actin}

def sample(params: SampleConfig, box: np.ndarray, rng: np.random.Generator, *, slab: bool) -> Sample:
    """Draw every structure type switched on in ``params`` (a mixture first draws which), in the
    fixed order of :data:`simulate.config_sample.LIBRARY`."""
    if params.mixture.types:
        params = draw_mixture(params, rng)
    parts = [Sample(microtubules(params.microtubules, box, rng, slab=slab),
                    granules(params.granules, box, rng, slab=slab),
                    beads(params.beads, box, rng, slab=slab))]
    for name in LIBRARY:
        if name in TYPES and structure_on(params, name):
            parts.append(TYPES[name](getattr(params, name), box, rng, slab=slab))
    return parts[0] if len(parts) == 1 else merge(parts)
