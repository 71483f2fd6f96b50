"""The tissue phantom of the synthetic z-scans: absorption μ (1/µm) of a brain section, float32 (Z, Y, X).

Recipe (after the field notes; lengths in µm):
- a section of thickness ``section_um`` (20 µm) centred on the middle plane, with soft faces, so the
  outer planes focus above/below the tissue;
- neuropil: band-limited 3-D noise (Gaussian σ 1.5 µm) modulated by 6 µm light/dark patches, plus
  dark granules (the > 2.2 σ tail of 0.5 µm noise); with the other objects this gives the real ROIs'
  intensity distribution (median 150 vs 146 of 255);
- a section mid-plane that wanders by σ 3 µm across the slide (`section_wobble_um`);
- fibres: tapered tubes (radius 0.4–1.0 µm, 15–60 µm long, mostly lying in the section plane);
- neurons: 9–20 µm granular ellipsoids (Nissl-like texture, σ 0.5 µm), up to ~30 µm with their
  tapering apical dendrite (60 % have one), with a pale nucleus and a dark nucleolus; centres spread
  3 µm beyond the section faces, so some are cut by them;
- glia nuclei: 4–8 µm dark ellipsoids.

Determinism: the plane is cut into fixed global cells of `CELL_PX` pixels. Each cell's random objects
and white noise come from ``SeedSequence([seed, cell_y, cell_x, stream])`` (`cell_rng`), so μ at a
voxel depends only on the seed, the number of planes, the parameters and the voxel's global position,
never on the window it is rendered in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from zse.models.simulator.params import CELL_PX, SynthParams

# random-number streams of a cell (the last entry of its SeedSequence)
STREAM_OBJECTS = 1
STREAM_TEXTURE = 2
STREAM_NOISE = 3  # the z-scan's detector noise (zse.models.simulator.formation)
STREAM_PATCHES = 4
STREAM_SECTION = 5


def _key(c: int) -> int:
    """Fold a cell index (negative for cells beyond the volume's top/left) to a distinct integer >= 0."""
    return 2 * c if c >= 0 else -2 * c - 1


def cell_rng(seed: int, cy: int, cx: int, stream: int) -> np.random.Generator:
    """The generator of global cell (cy, cx) for one stream: depends only on these four numbers."""
    return np.random.default_rng(np.random.SeedSequence([seed, _key(cy), _key(cx), stream]))


@dataclass(frozen=True)
class _Geometry:
    n_z: int
    dz: float  # z_step_um
    px: float  # lateral pixel, µm
    z_mid: float  # µm
    z_top: float  # section faces, µm
    z_bot: float


def _geometry(n_z: int, params: SynthParams) -> _Geometry:
    dz = params.z_step_um
    z_mid = (n_z - 1) / 2 * dz
    return _Geometry(n_z, dz, params.voxel_size_um[2], z_mid, z_mid - params.section_um / 2, z_mid + params.section_um / 2)


_MAX_EXTENT_UM = 36.0
_PATCH_SIGMA_UM = 6.0  # largest distance from an object's anchor point to any voxel it touches


@lru_cache(maxsize=64)
def _cell_objects(seed: int, cy: int, cx: int, geo: _Geometry, params: SynthParams) -> tuple[tuple, ...]:
    """Objects anchored in global cell (cy, cx), coordinates in µm (z, y, x), from that cell's seed."""
    rng = cell_rng(seed, cy, cx, STREAM_OBJECTS)
    side = CELL_PX * geo.px
    area_mm2 = (side / 1000.0) ** 2
    y0, x0 = cy * side, cx * side
    objs: list[tuple] = []
    for _ in range(rng.poisson(params.fibres_per_mm2 * area_mm2)):
        c = np.array([rng.uniform(geo.z_top, geo.z_bot), y0 + rng.uniform(0, side), x0 + rng.uniform(0, side)])
        c[0] += _section_offset_at(seed, c[1], c[2], params.section_wobble_um)
        theta, elev = rng.uniform(0, np.pi), rng.normal(0, 0.25)
        d = np.array([np.sin(elev), np.cos(elev) * np.sin(theta), np.cos(elev) * np.cos(theta)])
        half = rng.uniform(7.5, 30.0)
        objs.append(("tube", c - half * d, c + half * d, rng.uniform(0.3, 0.9), 0.6, rng.uniform(0.2, 0.6)))
    for _ in range(rng.poisson(params.glia_per_mm2 * area_mm2)):
        c = np.array([rng.uniform(geo.z_top - 2, geo.z_bot + 2), y0 + rng.uniform(0, side), x0 + rng.uniform(0, side)])
        c[0] += _section_offset_at(seed, c[1], c[2], params.section_wobble_um)
        a = rng.uniform(2.0, 4.0)
        axes = (a * rng.uniform(0.8, 1.0), a, a * rng.uniform(0.6, 1.0))
        objs.append(("glia", c, axes, rng.uniform(0, np.pi), rng.uniform(0.15, 0.35)))
    for _ in range(rng.poisson(params.neurons_per_mm2 * area_mm2)):
        c = np.array([rng.uniform(geo.z_top - 3, geo.z_bot + 3), y0 + rng.uniform(0, side), x0 + rng.uniform(0, side)])
        c[0] += _section_offset_at(seed, c[1], c[2], params.section_wobble_um)
        a = rng.uniform(4.5, 10.0)  # semi-major lateral axis: 10–24 µm cells, up to 30 µm with dendrite base
        b = a * rng.uniform(0.6, 1.0)
        cz = min(a, b) * rng.uniform(0.8, 1.1)
        theta = rng.uniform(0, np.pi)
        mu = rng.uniform(0.12, 0.25)
        rn = min(b, cz) * rng.uniform(0.30, 0.42)
        off = rng.uniform(-0.15, 0.15, size=3) * np.array([cz, b, b])
        nucleolus_r = rng.uniform(0.7, 1.2)
        objs.append(("neuron", c, (cz, a, b), theta, mu, c + off, rn, nucleolus_r))
        if rng.uniform() < 0.6:
            phi = theta + rng.choice([0.0, np.pi])
            elev = rng.normal(0, 0.2)
            d = np.array([np.sin(elev), np.cos(elev) * np.sin(phi), np.cos(elev) * np.cos(phi)])
            length = a * rng.uniform(1.5, 2.5)
            objs.append(("tube", c + 0.5 * a * d, c + (0.5 * a + length) * d, 0.35 * b, 0.25, 0.9 * mu))
    return tuple(objs)


@lru_cache(maxsize=32)
def _section_waves(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, 0, STREAM_SECTION]))
    n = 8
    return rng.uniform(250.0, 1000.0, n), rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)


def _section_offset_at(seed: int, y_um: float, x_um: float, wobble_um: float) -> float:
    """Scalar `_section_offset_um` (for object anchors)."""
    lam, ang, phase = _section_waves(seed)
    total = 0.0
    for la, an, ph in zip(lam.tolist(), ang.tolist(), phase.tolist(), strict=True):
        total += math.cos(2 * math.pi * (math.sin(an) * y_um + math.cos(an) * x_um) / la + ph)
    return total * wobble_um * math.sqrt(2.0 / len(lam))


def _section_offset_um(seed: int, y_um: Any, x_um: Any, params: SynthParams) -> np.ndarray:
    """Axial offset (µm) of the section's mid-plane at lateral position (y, x) µm.

    Real slides are neither flat nor perfectly followed by the scanner's focus map: the tissue's centre
    moves by a few µm between fields. Modelled as a sum of 8 plane waves (wavelengths 250–1000 µm,
    random directions and phases from the seed alone), scaled to a standard deviation of
    ``section_wobble_um``; a pure function of position, so slabs agree.
    """
    lam, ang, phase = _section_waves(seed)
    n = len(lam)
    y = np.asarray(y_um, dtype=np.float64)
    x = np.asarray(x_um, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(y.shape, x.shape))
    for i in range(n):
        out = out + np.cos(2 * np.pi * (np.sin(ang[i]) * y + np.cos(ang[i]) * x) / lam[i] + phase[i])
    return out * (params.section_wobble_um * math.sqrt(2.0 / n))


def _soft(inside_um: np.ndarray, width_um: float = 0.7) -> np.ndarray:
    """Soft indicator from a signed distance-like quantity (positive inside), linear ramp of `width_um`."""
    return np.clip(0.5 + inside_um / width_um, 0.0, 1.0)


def _bbox(lo: np.ndarray, hi: np.ndarray, geo: _Geometry, win: tuple[int, int, int, int]) -> tuple[slice, ...] | None:
    """Index slices (window-local) of the voxels within [lo, hi] µm (z, y, x), or None if empty."""
    wy0, wx0, wy1, wx1 = win
    z0 = max(0, math.floor(lo[0] / geo.dz))
    z1 = min(geo.n_z, math.ceil(hi[0] / geo.dz) + 1)
    y0 = max(wy0, math.floor(lo[1] / geo.px))
    y1 = min(wy1, math.ceil(hi[1] / geo.px) + 1)
    x0 = max(wx0, math.floor(lo[2] / geo.px))
    x1 = min(wx1, math.ceil(hi[2] / geo.px) + 1)
    if z0 >= z1 or y0 >= y1 or x0 >= x1:
        return None
    return (slice(z0, z1), slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))


def _coords(sl: tuple[slice, ...], geo: _Geometry, win: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
    z = (np.arange(sl[0].start, sl[0].stop) * geo.dz)[:, None, None]
    y = ((np.arange(sl[1].start, sl[1].stop) + win[0]) * geo.px)[None, :, None]
    x = ((np.arange(sl[2].start, sl[2].stop) + win[1]) * geo.px)[None, None, :]
    return z, y, x


def _ellipsoid_inside(z, y, x, c, axes, theta) -> np.ndarray:
    """Approximate signed distance (µm, positive inside) to an ellipsoid rotated by theta in y-x."""
    dz, dy, dx = z - c[0], y - c[1], x - c[2]
    ct, st = math.cos(theta), math.sin(theta)
    u = ct * dy + st * dx
    v = -st * dy + ct * dx
    rho = np.sqrt((dz / axes[0]) ** 2 + (u / axes[1]) ** 2 + (v / axes[2]) ** 2)
    return (1.0 - rho) * min(axes)


def _tube_inside(z, y, x, p0, p1, r0, taper) -> np.ndarray:
    """Signed distance (µm, positive inside) to a tube from p0 to p1 whose radius tapers to r0·taper."""
    d = p1 - p0
    length2 = float(d @ d)
    t = ((z - p0[0]) * d[0] + (y - p0[1]) * d[1] + (x - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt((z - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (x - p0[2] - t * d[2]) ** 2)
    return r0 * (1.0 - (1.0 - taper) * t) - dist


def _white_noise(seed: int, n_z: int, win: tuple[int, int, int, int], stream: int = STREAM_TEXTURE) -> np.ndarray:
    """Standard normal float32 (Z, wy1−wy0, wx1−wx0) whose value at a voxel depends only on seed and position."""
    wy0, wx0, wy1, wx1 = win
    out = np.empty((n_z, wy1 - wy0, wx1 - wx0), dtype=np.float32)
    for cy in range(wy0 // CELL_PX, (wy1 - 1) // CELL_PX + 1):
        for cx in range(wx0 // CELL_PX, (wx1 - 1) // CELL_PX + 1):
            block = _cell_noise(seed, cy, cx, n_z, stream)
            ys, ye = max(wy0, cy * CELL_PX), min(wy1, (cy + 1) * CELL_PX)
            xs, xe = max(wx0, cx * CELL_PX), min(wx1, (cx + 1) * CELL_PX)
            out[:, ys - wy0 : ye - wy0, xs - wx0 : xe - wx0] = block[
                :, ys - cy * CELL_PX : ye - cy * CELL_PX, xs - cx * CELL_PX : xe - cx * CELL_PX
            ]
    return out


def _cell_noise(seed: int, cy: int, cx: int, n_z: int, stream: int) -> np.ndarray:
    return cell_rng(seed, cy, cx, stream).standard_normal((n_z, CELL_PX, CELL_PX), dtype=np.float32)


def _filtered(noise: np.ndarray, sigma_um: float, geo: _Geometry) -> np.ndarray:
    """Gaussian band-limited noise with unit variance (σ in µm, anisotropic in voxels)."""
    sig = (sigma_um / geo.dz, sigma_um / geo.px, sigma_um / geo.px)
    out = ndi.gaussian_filter(noise, sig, mode="reflect", truncate=4.0)
    # unit variance: the std of filtered white noise is the l2 norm of the (separable) kernel
    norm = 1.0
    for s in sig:
        delta = np.zeros(2 * int(4.0 * s + 0.5) + 1)
        delta[len(delta) // 2] = 1.0
        norm *= float(np.sqrt((ndi.gaussian_filter1d(delta, s, truncate=4.0) ** 2).sum()))
    out /= np.float32(norm)
    return out


def _noise_halo(geo: _Geometry) -> int:
    return int(4.0 * 1.5 / geo.px + 0.5) + 1


def phantom_mu(seed: int, n_z: int, win: tuple[int, int, int, int], params: SynthParams) -> np.ndarray:
    """Absorption μ (1/µm), float32 (Z, wy1−wy0, wx1−wx0) on global pixel window (wy0, wx0, wy1, wx1).

    Any window (also beyond the volume, negative coordinates included) gives the same value at the
    same global voxel.
    """
    geo = _geometry(n_z, params)
    wy0, wx0, wy1, wx1 = win
    h = _noise_halo(geo)
    white = _white_noise(seed, n_z, (wy0 - h, wx0 - h, wy1 + h, wx1 + h))
    neuropil = _filtered(white, 1.5, geo)[:, h:-h, h:-h]
    texture = _filtered(white, 0.5, geo)[:, h:-h, h:-h]
    del white
    # light and dark patches of tissue (vessels, tears, density changes): 2-D field, σ = 6 µm
    hl = int(4.0 * _PATCH_SIGMA_UM / geo.px + 0.5) + 1
    white2 = _white_noise(seed, 1, (wy0 - hl, wx0 - hl, wy1 + hl, wx1 + hl), STREAM_PATCHES)[0]
    sig = _PATCH_SIGMA_UM / geo.px
    patches = ndi.gaussian_filter(white2, sig, mode="reflect", truncate=4.0)[hl:-hl, hl:-hl]
    patches *= np.float32(2.0 * math.sqrt(math.pi) * sig)  # ~unit variance
    del white2
    mu = params.neuropil_mu * np.clip(1.0 + 0.5 * neuropil + 0.3 * texture, 0.0, None)
    mu *= np.clip(1.0 + 0.6 * patches, 0.05, None)[None]
    # Nissl-stained granules and fine processes of the neuropil: the dark tail of the fine texture
    mu += (params.granule_mu * np.clip(texture - 2.2, 0.0, None)).astype(np.float32)
    del neuropil
    # objects anchored in any cell whose objects can reach the window
    ext = math.ceil(_MAX_EXTENT_UM / geo.px)
    for cy in range((wy0 - ext) // CELL_PX, (wy1 + ext - 1) // CELL_PX + 1):
        for cx in range((wx0 - ext) // CELL_PX, (wx1 + ext - 1) // CELL_PX + 1):
            objs = _cell_objects(seed, cy, cx, geo, params)
            for obj in objs:
                _draw(mu, texture, obj, geo, win)
    # section faces
    z = (np.arange(n_z) * geo.dz)[:, None, None]
    yy = (np.arange(wy0, wy1) * geo.px)[:, None]
    xx = (np.arange(wx0, wx1) * geo.px)[None, :]
    off = _section_offset_um(seed, yy, xx, params)[None]
    face = np.minimum(z - (geo.z_top + off), (geo.z_bot + off) - z)
    mu *= _soft(face, 1.0).astype(np.float32)
    return mu


def _draw(mu: np.ndarray, texture: np.ndarray, obj: tuple, geo: _Geometry, win: tuple[int, int, int, int]) -> None:
    kind = obj[0]
    if kind == "tube":
        _, p0, p1, r0, taper, m = obj
        lo = np.minimum(p0, p1) - r0 - 1
        hi = np.maximum(p0, p1) + r0 + 1
        sl = _bbox(lo, hi, geo, win)
        if sl is None:
            return
        z, y, x = _coords(sl, geo, win)
        inside = _soft(_tube_inside(z, y, x, p0, p1, r0, taper), 0.5)
        mu[sl] += (m * inside * np.clip(1.0 + 0.3 * texture[sl], 0.3, None)).astype(np.float32)
    elif kind == "glia":
        _, c, axes, theta, m = obj
        r = max(axes) + 1
        sl = _bbox(c - r, c + r, geo, win)
        if sl is None:
            return
        z, y, x = _coords(sl, geo, win)
        inside = _soft(_ellipsoid_inside(z, y, x, c, axes, theta), 0.6)
        mu[sl] += (m * inside * np.clip(1.0 + 0.25 * texture[sl], 0.3, None)).astype(np.float32)
    else:
        _, c, axes, theta, m, cn, rn, rnl = obj
        r = max(axes) + 1
        sl = _bbox(c - r, c + r, geo, win)
        if sl is None:
            return
        z, y, x = _coords(sl, geo, win)
        cell = _soft(_ellipsoid_inside(z, y, x, c, axes, theta), 0.8)
        dn = np.sqrt((z - cn[0]) ** 2 + (y - cn[1]) ** 2 + (x - cn[2]) ** 2)
        nuc = _soft(rn - dn, 0.6)
        nucleolus = _soft(rnl - dn, 0.5)
        granular = m * np.clip(1.0 + 0.5 * texture[sl], 0.15, None)
        inner = (1.0 - nucleolus) * (0.3 * m) + nucleolus * (2.2 * m)
        mu[sl] += (cell * ((1.0 - nuc) * granular + nuc * inner)).astype(np.float32)
