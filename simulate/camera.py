"""The camera: photons → electrons → ADU.

Stages, in the order the physics happens:

1. photon detection with quantum efficiency ``qe`` plus dark current and clock-induced charge
   ``dark`` (e⁻/pixel/frame): Poisson electrons with mean ``qe·S + dark`` (hot pixels add their
   own, fixed, dark level);
2. optional electron multiplication ``G``: Gamma(n/c², c²·G) electrons, where c² = ``em_spread``
   is the relative variance of one electron's multiplied output: 1 for an EMCCD's register
   (exponential, excess noise factor F² = 2), ~0.1 for a PMT or HyD in analog mode
   (F² = 1 + c²);
3. Gaussian read noise ``read_noise`` (e⁻ rms, referred to the output amplifier, i.e. after EM
   gain);
4. conversion ``gain`` (ADU/e⁻) and ``offset`` (ADU), rounding to integer ADU and clipping to
   ``[0, 2^bits − 1]`` (saturation).
5. optional correlation of the noise between neighbouring pixels, ``correlation`` = (ρ_y, ρ_x),
   as read-out electronics make it (a scanning detector's bandwidth along its line, an
   amplifier's undershoot): the frame's noise (the frame minus its per-pixel mean) passes
   through the filter [c, 1, c] / √(1 + 2c²) along each axis, 2c / (1 + 2c²) = ρ, which keeps
   its variance and gives neighbours the correlation ρ; then rounding and clipping again.

A photon-counting detector (``photon_counting=True``) outputs the detected electrons themselves:
no read noise, gain or offset. ``gain``, ``offset`` and ``read_noise`` may be per-pixel maps
(sCMOS); the expected image :meth:`Camera.expected` uses their means (an ideal camera with the
nominal parameters), so fixed-pattern noise is something restoration should remove.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path

import annotated_types
import numba
import numpy as np

from .backend import array_module, to_host
from .config import MAX_CORRELATION, CameraConfig
from .errors import SynthcareError
from .kernels import pixel_adu
from .rng import key_from as rng_key


def _bounds(name: str) -> tuple[float, float, bool, bool]:
    """(low, high, low open, high open) of a camera setting, from its :class:`CameraConfig`
    field: the config model is the one place a setting's range is written."""
    lo, hi, lo_open, hi_open = -np.inf, np.inf, False, False
    for m in CameraConfig.model_fields[name].metadata:
        if isinstance(m, annotated_types.Ge):
            lo = float(m.ge)
        elif isinstance(m, annotated_types.Gt):
            lo, lo_open = float(m.gt), True
        elif isinstance(m, annotated_types.Le):
            hi = float(m.le)
        elif isinstance(m, annotated_types.Lt):
            hi, hi_open = float(m.lt), True
    return lo, hi, lo_open, hi_open


def _check(name: str, value) -> None:
    """Refuse a setting (scalar or per-pixel map) outside its range, naming it and the range."""
    lo, hi, lo_open, hi_open = _bounds(name)
    v = np.asarray(value, dtype=np.float64)
    bad = ((v <= lo) if lo_open else (v < lo)) | ((v >= hi) if hi_open else (v > hi))
    if not np.all(np.isfinite(v)) or np.any(bad):
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        shown = v if v.ndim == 0 else f"a map with range [{v.min()}, {v.max()}]"
        raise SynthcareError(f"camera {name} must be in {rng}, got {shown}")


# a runtime camera's defaults are its config's (immutable scalars)
_DEFAULTS = {name: f.default for name, f in CameraConfig.model_fields.items()}


@dataclass(frozen=True)
class Camera:
    """A scientific camera (sCMOS, CCD, EMCCD) or a photon-counting point detector.

    Parameters
    ----------
    qe : quantum efficiency, (0, 1].
    gain : ADU per electron at the output amplifier; scalar or (ny, nx) map.
    offset : ADU added to every pixel; scalar or map.
    read_noise : e⁻ rms; scalar or map.
    dark : dark current plus clock-induced charge, e⁻/pixel/frame.
    em_gain : EM multiplication (≥ 1) or None for no EM register.
    em_spread : relative variance c² of one electron's multiplied output, (0, 1]: 1 an EMCCD's
        register (F² = 2), ~0.1 a PMT (F² = 1 + c²).
    bits : bit depth; output clipped to [0, 2^bits − 1]. None: no clipping.
    hot_pixels : fraction of pixels with extra dark signal (a fixed pattern of the camera).
    hot_level : mean extra dark signal of a hot pixel, e⁻/frame (exponentially distributed
        between pixels, Poisson in time).
    photon_counting : output detected electrons directly (no read noise, gain or offset).
    pattern_seed : seed of the fixed pattern (which pixels are hot).
    correlation : (ρ_y, ρ_x), correlation of the noise between neighbouring pixels along y and
        x, each in [−0.4, 0.4] (stage 5 above).
    """

    qe: float = _DEFAULTS["qe"]
    gain: float | np.ndarray = _DEFAULTS["gain"]
    offset: float | np.ndarray = _DEFAULTS["offset"]
    read_noise: float | np.ndarray = _DEFAULTS["read_noise"]
    dark: float = _DEFAULTS["dark"]
    em_gain: float | None = _DEFAULTS["em_gain"]
    em_spread: float = _DEFAULTS["em_spread"]
    bits: int | None = _DEFAULTS["bits"]
    hot_pixels: float = _DEFAULTS["hot_pixels"]
    hot_level: float = _DEFAULTS["hot_level"]
    photon_counting: bool = _DEFAULTS["photon_counting"]
    pattern_seed: int = _DEFAULTS["pattern_seed"]
    correlation: tuple[float, float] = _DEFAULTS["correlation"]
    _hot_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.init and f.name != "correlation" and getattr(self, f.name) is not None:
                _check(f.name, getattr(self, f.name))  # None: no EM register, no clipping
        rho = tuple(float(r) for r in np.ravel(self.correlation))
        if len(rho) != 2 or not all(abs(r) <= MAX_CORRELATION for r in rho):
            raise SynthcareError(f"camera correlation must be two values (y, x), each in "
                                 f"[-{MAX_CORRELATION}, {MAX_CORRELATION}], got {self.correlation}")
        object.__setattr__(self, "correlation", rho)

    @classmethod
    def from_config(cls, cfg, maps: dict[str, np.ndarray] | None = None) -> Camera:
        """From a :class:`~simulate.config.CameraConfig`; ``maps`` may replace gain, offset and
        read_noise by per-pixel arrays."""
        kw = {f.name: getattr(cfg, f.name) for f in fields(cls) if f.init}
        if maps is None and cfg.maps:
            maps = load_maps(cfg.maps)
        kw.update(maps or {})
        return cls(**kw)

    # -- the model ------------------------------------------------------------------------------
    @property
    def _em(self) -> float:
        return 1.0 if self.em_gain is None else float(self.em_gain)

    def _nominal(self, name: str) -> float:
        return float(np.mean(getattr(self, name)))

    def expected(self, photons: np.ndarray) -> np.ndarray:
        """Mean ADU of an ideal camera with the nominal parameters (no hot pixels, no clipping):
        gain · G · (qe · S + dark) + offset. float32."""
        xp = array_module(photons)
        e = self._em * (self.qe * xp.asarray(photons, xp.float64) + self.dark)
        if self.photon_counting:
            return e.astype(xp.float32)
        return (self._nominal("gain") * e + self._nominal("offset")).astype(xp.float32)

    def photons_from_expected(self, adu: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`expected`: photons from (mean) ADU."""
        xp = array_module(adu)
        a = xp.asarray(adu, xp.float64)
        if not self.photon_counting:
            a = (a - self._nominal("offset")) / self._nominal("gain")
        return ((a / self._em - self.dark) / self.qe).astype(xp.float32)

    def hot_map(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Extra dark electrons per frame of each pixel (fixed for this camera and frame shape)."""
        if self.hot_pixels <= 0:
            return None
        shape = tuple(shape[-2:])
        if shape not in self._hot_cache:
            rng = np.random.default_rng([self.pattern_seed, *shape])
            hot = rng.random(shape) < self.hot_pixels
            self._hot_cache[shape] = np.where(hot, rng.exponential(self.hot_level, shape), 0.0)
        return self._hot_cache[shape]

    def capture(self, photons, rng):
        """One exposure: expected photons per pixel (before QE) → integer-valued ADU (float32).

        ``photons`` is (..., ny, nx), numpy or cupy (a cupy array is captured on its GPU, with
        the same random streams); per-pixel maps broadcast against its last two axes. The
        frame's randomness is keyed by one draw from ``rng``; each pixel then draws from its own
        counter-based stream (:mod:`simulate.rng`), so the frame is bit-identical whatever the
        number of threads. ``rng`` may also be a sequence of generators, one per entry of the
        leading axis of ``photons`` (a batch of pairs, each exposed as if alone).
        """
        xp = array_module(photons)
        s = xp.asarray(photons, dtype=xp.float32)
        if s.size == 0:
            return xp.empty(s.shape, xp.float32)
        lo, hi = to_host(xp.stack([s.min(), s.max()])).tolist()  # one transfer; NaN → min
        if not (lo >= 0 and hi < np.inf):
            raise SynthcareError("photons must be finite and non-negative")
        rngs = [rng] if isinstance(rng, np.random.Generator) else list(rng)
        if len(rngs) > 1 and (s.ndim < 3 or s.shape[0] != len(rngs)):
            raise SynthcareError(f"{len(rngs)} generators for photons of shape {s.shape}: the "
                                 "leading axis must have one entry per generator")
        lead = (len(rngs), -1)
        frames = xp.ascontiguousarray(s.reshape(*lead, *s.shape[-2:]) if s.ndim >= 2
                                      else s.reshape(1, 1, 1, -1))
        plane = frames.shape[2:]

        def per_pixel(value) -> np.ndarray:
            v = np.asarray(value, np.float64)
            if v.ndim == 2 and v.shape != plane:
                raise SynthcareError(f"camera map of shape {v.shape} does not match the detector's "
                                     f"{plane}")
            return np.ascontiguousarray(np.broadcast_to(v, plane))

        hot = self.hot_map(plane) if s.ndim >= 2 else None
        maps = [per_pixel(m) for m in (0.0 if hot is None else hot, self.read_noise, self.gain,
                                       self.offset)]
        keys = np.array([rng_key(r) for r in rngs], np.uint64)
        args = (float(self.qe), float(self.dark), 0.0 if self.em_gain is None else float(self.em_gain),
                float(self.em_spread), bool(self.photon_counting),
                np.inf if self.bits is None else 2.0 ** int(self.bits) - 1,
                not any(self.correlation))  # a correlated frame is quantised after its filter
        out = xp.empty(frames.shape, xp.float32)
        if xp is np:
            _capture(frames, *maps, *args, keys, out)
        else:
            from .camera_cuda import capture_cuda

            capture_cuda(frames, *maps, *args, keys, out)
        if any(self.correlation) and s.ndim >= 2:
            out = self._correlate(frames, out, maps[0], maps[2], maps[3], args[-2])
        return out.reshape(s.shape)

    def _correlate(self, photons, adu, hot, gain, offset, top: float):
        """Stage 5: the frames' noise (``adu``, analogue, minus its per-pixel mean for
        ``photons``) filtered by [c, 1, c] / √(1 + 2c²) along each axis with a nonzero
        correlation, then rounded and clipped (the converter comes after the electronics that
        correlate: rounding first would erase most of a small correlation). Frames are
        (..., ny, nx); the filter wraps around a frame's edges (every pixel keeps its
        variance). numpy or cupy."""
        xp = array_module(adu)
        e = self._em * (self.qe * photons.astype(xp.float64) + self.dark + xp.asarray(hot))
        mean = e if self.photon_counting else xp.asarray(gain) * e + xp.asarray(offset)
        noise = adu - mean
        for axis, rho in zip((-2, -1), self.correlation, strict=True):
            if rho:
                c = neighbour_tap(rho)
                noise = (noise + c * (xp.roll(noise, 1, axis) + xp.roll(noise, -1, axis))) / np.sqrt(
                    1 + 2 * c * c)
        return xp.clip(xp.rint(mean + noise), 0, top).astype(xp.float32)


def neighbour_tap(rho: float) -> float:
    """The side tap c of the filter [c, 1, c] that gives white noise the neighbour correlation
    ``rho``: 2c / (1 + 2c²) = ρ, the root with |c| < 1/√2 (|ρ| ≤ 1/√2)."""
    if rho == 0:
        return 0.0
    return float((1 - np.sqrt(1 - 2 * rho * rho)) / (2 * rho))


@functools.lru_cache(maxsize=4)
def load_maps(path: str) -> dict[str, np.ndarray]:
    """Per-pixel sCMOS maps from an .npz holding any of 'gain', 'offset', 'read_noise'."""
    p = Path(path)
    if not p.is_file():
        raise SynthcareError(f"camera.maps file not found: {p}")
    try:
        with np.load(p) as data:
            maps = {k: np.asarray(data[k], np.float64) for k in ("gain", "offset", "read_noise")
                    if k in data.files}
    except (OSError, ValueError) as exc:
        raise SynthcareError(f"camera.maps {p} is not a readable .npz: {exc}") from None
    if not maps or any(m.ndim != 2 for m in maps.values()):
        raise SynthcareError(f"camera.maps {p} must hold 2D arrays named gain, offset or read_noise")
    return maps


@numba.njit(parallel=True, cache=True)
def _capture(photons, hot, read_noise, gain, offset, qe, dark, em_gain, em_spread, counting, top,
             quantise, keys, out):  # pragma: no cover - numba
    nb, nf, ny, nx = photons.shape
    for row in numba.prange(nb * nf * ny):
        b = row // (nf * ny)
        local = row - b * nf * ny  # row within its pair: f·ny + y
        y = local % ny
        f = local // ny
        for x in range(nx):
            out[b, f, y, x] = pixel_adu(photons[b, f, y, x], local * nx + x, qe, dark, hot[y, x],
                                        em_gain, em_spread, read_noise[y, x], gain[y, x], offset[y, x],
                                        counting, top, quantise, keys[b, 0], keys[b, 1])
