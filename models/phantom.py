"""Synthetic brightfield z-scans of brain sections with an optical-section ground truth (`zse synth`).

Phantom (after the field notes' recipe; lengths in µm, absorption μ in 1/µm):
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

Image formation (per plane k at defocus (k − z')·z_step): OD_k = Σ_z' (h_{k−z'} ∗ μ_{z'})·z_step with
the scalar widefield PSF of `zse.models.optics` (each plane summing to 1, so every plane has the same
mean optical density, as in the real stacks), FFT convolution; I = I0·exp(−OD) with I0 = ``background``
× the dtype maximum; shot noise (``photons`` electrons at I0, Gaussian approximation of Poisson) plus
read noise (``read_noise`` in 8-bit units), rounded and clipped.

The ground truth is an optical section of the same μ at every plane — what a confocal microscope
gives: OD_k = ``section_um`` · (h_conf ∗ μ)_k with h_conf the confocal-like PSF of
`zse.models.optics.confocal_psf_zyx` (the 1.3-NA oil widefield PSF squared, ±3 planes, summing to 1),
so each plane shows only the structures at its own depth, in focus, nothing above or below the tissue,
and an in-slice plane carries about the column's mean OD (the x-scan's). No noise. A widefield truth
(even at NA 1.3) would keep every plane's out-of-focus light: the input's SSIM to it was ≈ 0.95, so no
method could be told apart; against this truth the input scores ≈ 0.55 on in-slice planes (headroom).

Determinism and bounded memory: the plane is cut into fixed global cells of `CELL_PX` pixels. Each
cell's random objects and white noise come from ``SeedSequence([seed, cell_y, cell_x, stream])``, and
every output cell is convolved on its own fixed window (cell ± PSF radius), so a voxel's value does not
depend on how the volume is sliced into slabs: `synthesize`, `synthesize_region` and the dask array
of `synth_dask` agree bit for bit for any slab size. A 256 × 256 slab of a 29-plane volume needs
≈ 0.1 GB, a 512 × 512 one ≈ 0.3 GB, whatever the total size; `zse synth` writes 29 × 1024 × 1024 (+ truth)
with a peak RSS of 0.62 GB, 0.26 GB of which is importing torch via zse.pipeline.

Axes and units: volumes are (Z, Y, X) ``volume_zyx``; ``voxel_size_um`` = (z, y, x) in µm is what the
metadata records (z: the nominal stage step); ``z_step_um`` is the physical distance between focal
planes in the sample, used for the phantom's z sampling and the PSF defocus (a nominal 1 µm stage step
in a mounted section is ~1.3–1.5 µm in the sample, so ``z_step_um`` is also the knob for blur strength,
together with ``na``).

Comparison with the real Huron ROIs (200 trainB files, 128×128×29, 1 µm voxels) against 24 synthetic
ROIs of the same shape (`volume_stats`), blur preset "huron" (NA 0.75, 1.4 µm step): mean 140.5 vs
136.9, median 150 vs 146, p5 53 vs 39, p95 195 vs 202; sharpest plane 14 vs 14; sharpness (mean
gradient) at the peak 17.1 vs 23.4, at the end planes 3.8 vs 5.8 (ends/peak 0.22 vs 0.25); dark
objects' median diameter 12.2 vs 11.3 px. Full table, the "standard" preset (1 µm step) and known
gaps: docs/synth.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import ndimage as ndi

from zse.errors import ConfigError, validation_message
from zse.models import optics

CELL_PX = 256
"""Side (pixels) of the global cells that own random numbers and of the per-cell convolution windows."""

_STREAM_OBJECTS = 1
_STREAM_TEXTURE = 2
_STREAM_NOISE = 3
_STREAM_PATCHES = 4
_STREAM_SECTION = 5

BLUR_PRESETS: dict[str, tuple[float, float]] = {
    # name: (na, z_step_um)
    "mild": (0.5, 1.0),
    "standard": (0.75, 1.0),
    "huron": (0.75, 1.4),  # best match to the real Huron ROIs' per-plane sharpness curve (docs/synth.md)
    "strong": (0.75, 2.0),
}


class SynthParams(BaseModel):
    """Every parameter of the phantom and of the image formation (frozen; unknown keys are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    na: float = Field(default=0.75, gt=0, lt=1.0, description="widefield objective NA (dry)")
    z_step_um: float = Field(default=1.0, gt=0, description="distance between focal planes in the sample, µm")
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    wavelength_um: float = Field(default=optics.DEFAULT_WAVELENGTH_UM, gt=0)
    refractive_index: float = Field(default=1.0, ge=1.0, description="medium of the widefield defocus")
    truth_na: float = Field(default=optics.HIGH_NA, gt=0)
    truth_refractive_index: float = Field(default=optics.HIGH_NA_INDEX, ge=1.0)
    section_um: float = Field(default=20.0, gt=0, description="section thickness, µm")
    section_wobble_um: float = Field(default=3.0, ge=0, description="std of the section mid-plane's axial offset over the slide, µm")
    background: float = Field(default=0.95, gt=0, le=1.0, description="I0 as a fraction of the dtype maximum")
    photons: float = Field(default=20000.0, gt=0, description="electrons at I0 (shot noise)")
    read_noise: float = Field(default=0.5, ge=0, description="read noise σ in 8-bit grey levels")
    neuropil_mu: float = Field(default=0.002, ge=0, description="mean neuropil absorption, 1/µm")
    granule_mu: float = Field(default=1.2, ge=0, description="absorption of neuropil granules per unit of texture excess")
    neurons_per_mm2: float = Field(default=1900.0, ge=0)
    glia_per_mm2: float = Field(default=1500.0, ge=0)
    fibres_per_mm2: float = Field(default=12000.0, ge=0)


# ---------------------------------------------------------------------------------------------- checks


def _config_error(what: str, given: Any, valid: str) -> ConfigError:
    return ConfigError(f"{what} {given!r} is invalid; valid: {valid}")


def check_shape(shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """Validate a (Z, Y, X) shape: Z ≥ 3, Y, X ≥ 1, integers."""
    try:
        shape = tuple(int(s) for s in shape_zyx)
    except (TypeError, ValueError):
        raise _config_error("shape", tuple(shape_zyx), "three integers Z,Y,X with Z >= 3 and Y, X >= 1") from None
    if len(shape) != 3 or shape[0] < 3 or shape[1] < 1 or shape[2] < 1:
        raise _config_error("shape", shape, "three integers Z,Y,X with Z >= 3 and Y, X >= 1")
    return shape  # type: ignore[return-value]


def make_params(**kwargs: Any) -> SynthParams:
    """Build `SynthParams`, turning validation errors into one-line ConfigErrors."""
    try:
        params = SynthParams(**kwargs)
    except ValidationError as exc:
        raise ConfigError(f"invalid synth option: {validation_message(exc)}") from None
    if not all(v > 0 and math.isfinite(v) for v in params.voxel_size_um):
        raise _config_error("voxel_size_um", params.voxel_size_um, "three positive sizes (z, y, x) in µm")
    if params.voxel_size_um[1] != params.voxel_size_um[2]:
        raise _config_error("voxel_size_um", params.voxel_size_um, "square pixels (y == x)")
    if params.truth_na >= params.truth_refractive_index:
        raise _config_error("truth_na", params.truth_na, f"< truth_refractive_index ({params.truth_refractive_index})")
    if params.na >= params.refractive_index:
        raise _config_error("na", params.na, f"< refractive_index ({params.refractive_index})")
    return params


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.name not in ("uint8", "uint16"):
        raise _config_error("dtype", dt.name, "uint8, uint16")
    return dt


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise _config_error("seed", seed, "an integer >= 0")
    return int(seed)


# ---------------------------------------------------------------------------------------------- PSFs


@dataclass(frozen=True)
class _Kernel:
    radius: int  # lateral radius in px
    half_z: int  # planes on each side of focus
    psf: np.ndarray  # (2·half_z+1, 2R+1, 2R+1) float32
    scale_um: float  # OD = scale_um · (psf ∗ μ)


@lru_cache(maxsize=8)
def _kernel(kind: str, n_z: int, params: SynthParams) -> _Kernel:
    """The x-scan's widefield PSF (every plane sums to 1; OD = z_step · Σ planes) or the truth's
    optical-section PSF (the 3-D kernel sums to 1; OD = section thickness · local mean μ)."""
    px = params.voxel_size_um[2]
    if kind == "x-scan":
        na, n, half_z = params.na, params.refractive_index, n_z - 1
    else:
        na, n, half_z = params.truth_na, params.truth_refractive_index, min(n_z - 1, optics.CONFOCAL_HALF_Z)
    r = optics.psf_lateral_radius_px(
        half_z * params.z_step_um, na=na, refractive_index=n, wavelength_um=params.wavelength_um, pixel_um=px
    )
    make = optics.widefield_psf_zyx if kind == "x-scan" else optics.confocal_psf_zyx
    psf = make((2 * half_z + 1, 2 * r + 1, 2 * r + 1), (params.z_step_um, px, px), na=na,
               wavelength_um=params.wavelength_um, refractive_index=n)
    scale = params.z_step_um if kind == "x-scan" else params.section_um
    return _Kernel(radius=r, half_z=half_z, psf=psf, scale_um=scale)


@lru_cache(maxsize=8)
def _kernel_fft(kind: str, n_z: int, params: SynthParams) -> tuple[np.ndarray, tuple[int, int, int], int]:
    """rFFT of the kernel placed for circular convolution on one output cell's window."""
    k = _kernel(kind, n_z, params)
    r = k.radius
    w = CELL_PX + 2 * r
    lz = scipy.fft.next_fast_len(n_z + k.half_z, real=True)
    wf = scipy.fft.next_fast_len(w, real=True)
    placed = np.zeros((lz, wf, wf), dtype=np.float32)
    zi = (np.arange(-k.half_z, k.half_z + 1)) % lz
    yi = (np.arange(-r, r + 1)) % wf
    placed[np.ix_(zi, yi, yi)] = k.psf
    return scipy.fft.rfftn(placed, workers=1).astype(np.complex64), (lz, wf, wf), r


def psf_attrs(kind: str, params: SynthParams) -> dict[str, Any]:
    if kind == "x-scan":
        na, n = params.na, params.refractive_index
    else:
        na, n = params.truth_na, params.truth_refractive_index
    px = params.voxel_size_um[2]
    desc = optics.psf_description(
        na=na, wavelength_um=params.wavelength_um, refractive_index=n, voxel_size_um=(params.z_step_um, px, px)
    )
    if kind != "x-scan":
        desc.update(model="confocal-optical-section (widefield PSF squared, ±3 planes)",
                    normalisation=f"kernel sums to 1; OD = {params.section_um} µm (section thickness) x local mean absorption")
    return desc


# ---------------------------------------------------------------------------------------------- phantom


def _key(c: int) -> int:
    """Fold a cell index (negative for cells beyond the volume's top/left) to a distinct integer >= 0."""
    return 2 * c if c >= 0 else -2 * c - 1


def _rng(seed: int, cy: int, cx: int, stream: int) -> np.random.Generator:
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
    rng = _rng(seed, cy, cx, _STREAM_OBJECTS)
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
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, 0, _STREAM_SECTION]))
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


def _white_noise(seed: int, n_z: int, win: tuple[int, int, int, int], stream: int = _STREAM_TEXTURE) -> np.ndarray:
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
    return _rng(seed, cy, cx, stream).standard_normal((n_z, CELL_PX, CELL_PX), dtype=np.float32)


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
    white2 = _white_noise(seed, 1, (wy0 - hl, wx0 - hl, wy1 + hl, wx1 + hl), _STREAM_PATCHES)[0]
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


# ---------------------------------------------------------------------------------------------- imaging


def _convolve_cell(mu_win: np.ndarray, kind: str, params: SynthParams) -> np.ndarray:
    """Optical density (Z, CELL_PX, CELL_PX) of one output cell from μ on the cell ± kernel radius."""
    n_z = mu_win.shape[0]
    kf, fshape, r = _kernel_fft(kind, n_z, params)
    spec = scipy.fft.rfftn(mu_win, s=fshape, workers=1)
    spec *= kf
    od = scipy.fft.irfftn(spec, s=fshape, workers=1)
    return (od[:n_z, r : r + CELL_PX, r : r + CELL_PX] * _kernel(kind, n_z, params).scale_um).astype(np.float32)


def _to_intensity(od: np.ndarray, kind: str, params: SynthParams, dtype: np.dtype, noise: np.ndarray | None) -> np.ndarray:
    top = float(np.iinfo(dtype).max)
    i0 = params.background * top
    inten = i0 * np.exp(-od.astype(np.float64))
    if kind == "x-scan" and noise is not None:
        gain = i0 / params.photons  # grey levels per electron
        read = params.read_noise * top / 255.0
        inten = inten + np.sqrt(inten * gain + read * read) * noise
    return np.clip(np.rint(inten), 0, top).astype(dtype)


KINDS = ("x-scan", "ground-truth")


def synthesize_region(
    shape_zyx: Sequence[int],
    seed: int,
    region_yx: tuple[int, int, int, int],
    *,
    kinds: Sequence[str] = KINDS,
    dtype: Any = np.uint8,
    params: SynthParams | None = None,
) -> dict[str, np.ndarray]:
    """Render the window region_yx = (y0, x0, y1, x1) (global pixels) of the volume; {kind: (Z, h, w)}.

    Memory: μ on the region's covering cells ± the largest PSF radius, plus one cell's FFT at a time.
    """
    n_z, ny, nx = check_shape(shape_zyx)
    seed = _check_seed(seed)
    dt = _check_dtype(dtype)
    params = params or SynthParams()
    for k in kinds:
        if k not in KINDS:
            raise _config_error("kind", k, ", ".join(KINDS))
    y0, x0, y1, x1 = (int(v) for v in region_yx)
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise _config_error("region", region_yx, f"0 <= y0 < y1 <= {ny}, 0 <= x0 < x1 <= {nx}")
    cy0, cy1 = y0 // CELL_PX, (y1 - 1) // CELL_PX + 1
    cx0, cx1 = x0 // CELL_PX, (x1 - 1) // CELL_PX + 1
    r = max(_kernel(k, n_z, params).radius for k in kinds)
    win = (cy0 * CELL_PX - r, cx0 * CELL_PX - r, cy1 * CELL_PX + r, cx1 * CELL_PX + r)
    mu = phantom_mu(seed, n_z, win, params)
    out = {k: np.empty((n_z, y1 - y0, x1 - x0), dtype=dt) for k in kinds}
    for cy in range(cy0, cy1):
        for cx in range(cx0, cx1):
            gy0, gx0 = cy * CELL_PX, cx * CELL_PX
            # part of this cell inside the requested region (global), and where it goes
            ys, ye = max(y0, gy0), min(y1, gy0 + CELL_PX)
            xs, xe = max(x0, gx0), min(x1, gx0 + CELL_PX)
            noise = None
            if "x-scan" in kinds:
                rng = _rng(seed, cy, cx, _STREAM_NOISE)
                noise = rng.standard_normal((n_z, CELL_PX, CELL_PX), dtype=np.float32)
            for k in kinds:
                rk = _kernel(k, n_z, params).radius
                wy, wx = gy0 - rk - win[0], gx0 - rk - win[1]
                od = _convolve_cell(mu[:, wy : wy + CELL_PX + 2 * rk, wx : wx + CELL_PX + 2 * rk], k, params)
                img = _to_intensity(od, k, params, dt, noise)
                out[k][:, ys - y0 : ye - y0, xs - x0 : xe - x0] = img[:, ys - gy0 : ye - gy0, xs - gx0 : xe - gx0]
    return out


def synthesize(
    shape_zyx: Sequence[int],
    seed: int,
    *,
    dtype: Any = np.uint8,
    na: float = 0.75,
    z_step_um: float = 1.0,
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    slab_px: int = 512,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic brightfield z-scan and its sharp ground truth, deterministic for `seed`.

    Args:
        shape_zyx: (Z, Y, X), Z ≥ 3 planes, Y, X ≥ 1 pixels.
        seed: integer ≥ 0; the result depends only on (shape Z, seed, parameters), not on `slab_px`;
            a smaller volume with the same Z is a crop of a larger one.
        dtype: uint8 or uint16.
        na, z_step_um, voxel_size_um: widefield NA, focal step in the sample (µm), voxel size (z, y, x) µm.
        slab_px: y-x side of the slabs rendered one at a time (memory bound; no effect on values).
        **kwargs: further `SynthParams` fields (section_um, background, photons, ...).

    Returns:
        (xscan_zyx, truth_zyx): two arrays (Z, Y, X) of `dtype`; brightfield, dark cells on light.
    """
    shape = check_shape(shape_zyx)
    params = make_params(na=na, z_step_um=z_step_um, voxel_size_um=tuple(voxel_size_um), **kwargs)
    if int(slab_px) < 1:
        raise _config_error("slab_px", slab_px, "an integer >= 1")
    dt = _check_dtype(dtype)
    n_z, ny, nx = shape
    xs = np.empty(shape, dtype=dt)
    gt = np.empty(shape, dtype=dt)
    for y0 in range(0, ny, slab_px):
        for x0 in range(0, nx, slab_px):
            reg = (y0, x0, min(ny, y0 + slab_px), min(nx, x0 + slab_px))
            parts = synthesize_region(shape, seed, reg, dtype=dt, params=params)
            sl = (slice(None), slice(reg[0], reg[2]), slice(reg[1], reg[3]))
            xs[sl] = parts["x-scan"]
            gt[sl] = parts["ground-truth"]
    return xs, gt


def synth_dask(
    shape_zyx: Sequence[int],
    seed: int,
    kind: str,
    *,
    dtype: Any = np.uint8,
    params: SynthParams | None = None,
    slab_px: int = 512,
) -> Any:
    """Lazy dask array (Z, Y, X) of one kind ("x-scan" or "ground-truth"), one slab per block."""
    import dask.array as da

    shape = check_shape(shape_zyx)
    dt = _check_dtype(dtype)
    params = params or SynthParams()
    if kind not in KINDS:
        raise _config_error("kind", kind, ", ".join(KINDS))
    n_z, ny, nx = shape

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None  # supplied by dask.map_blocks
        (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        return synthesize_region(shape, seed, (y0, x0, y1, x1), kinds=(kind,), dtype=dt, params=params)[kind]

    chunks = ((n_z,), _chunks(ny, slab_px), _chunks(nx, slab_px))
    return da.map_blocks(block, dtype=dt, chunks=chunks, meta=np.empty((0, 0, 0), dtype=dt))


def _chunks(n: int, c: int) -> tuple[int, ...]:
    return tuple(min(c, n - i) for i in range(0, n, c))


# ---------------------------------------------------------------------------------------------- statistics


def sharpness_curve(volume_zyx: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude per plane (grey levels per pixel, forward differences), float64 (Z,)."""
    v = np.asarray(volume_zyx, dtype=np.float32)
    gy = np.diff(v, axis=1)[:, :, :-1]
    gx = np.diff(v, axis=2)[:, :-1, :]
    return np.sqrt(gy * gy + gx * gx).mean(axis=(1, 2)).astype(np.float64)


def dark_object_diameters_px(plane_yx: np.ndarray, *, fraction: float = 0.45, min_area_px: int = 20) -> np.ndarray:
    """Equivalent diameters (px) of dark objects: pixels below `fraction` × the plane's 99.5th percentile,
    lightly smoothed (σ 1 px), connected components of at least `min_area_px` pixels."""
    p = ndi.gaussian_filter(np.asarray(plane_yx, dtype=np.float32), 1.0)
    mask = p < fraction * np.percentile(plane_yx, 99.5)
    labels, n = ndi.label(mask)
    if n == 0:
        return np.zeros(0)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= min_area_px]
    return 2.0 * np.sqrt(areas / np.pi)


def volume_stats(volumes_zyx: Sequence[np.ndarray]) -> dict[str, Any]:
    """Summary statistics of a set of uint8 (Z, Y, X) volumes, for comparing synthetic and real stacks."""
    vols = [np.asarray(v) for v in volumes_zyx]
    flat = np.concatenate([v.ravel() for v in vols]).astype(np.float32)
    curves = np.stack([sharpness_curve(v) for v in vols])
    curve = curves.mean(axis=0)
    mid = vols[0].shape[0] // 2
    diam = np.concatenate([dark_object_diameters_px(v[int(np.argmax(c))]) for v, c in zip(vols, curves, strict=True)])
    return {
        "mean": float(flat.mean()),
        "percentiles": {str(q): float(np.percentile(flat, q)) for q in (1, 5, 25, 50, 75, 95, 99.5)},
        "sharpness_curve": [round(float(c), 2) for c in curve],
        "sharpest_plane": int(np.argmax(curve)),
        "end_to_peak": float((curve[0] + curve[-1]) / 2 / curve.max()),
        "mid_plane_sharpness": float(curve[mid]),
        "dark_object_diameter_px": {
            "count_per_roi": float(len(diam) / len(vols)),
            "p25": float(np.percentile(diam, 25)) if len(diam) else 0.0,
            "median": float(np.median(diam)) if len(diam) else 0.0,
            "p75": float(np.percentile(diam, 75)) if len(diam) else 0.0,
        },
    }
