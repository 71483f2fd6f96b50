"""Image formation of the synthetic z-scans: the widefield z-scan and its optical-section ground truth
from the phantom's absorption μ (`zse.models.simulator.phantom`), in memory or as a lazy dask array.

X-scan (per plane k at defocus (k − z')·z_step): OD_k = Σ_z' (h_{k−z'} ∗ μ_{z'})·z_step with the scalar
widefield PSF of `zse.models.optics` (each plane summing to 1, so every plane has the same mean optical
density, as in the real stacks), FFT convolution; I = I0·exp(−OD) with I0 = ``background`` × the dtype
maximum; shot noise (``photons`` electrons at I0, Gaussian approximation of Poisson) plus read noise
(``read_noise`` in 8-bit units), rounded and clipped.

Ground truth: an optical section of the same μ at every plane — what a confocal microscope gives:
OD_k = ``section_um`` · (h_conf ∗ μ)_k with h_conf the confocal-like PSF of
`zse.models.optics.confocal_psf_zyx` (the 1.3-NA oil widefield PSF squared, ±3 planes, summing to 1),
so each plane shows only the structures at its own depth, in focus, nothing above or below the tissue,
and an in-slice plane carries about the column's mean OD (the z-scan's). No noise. A widefield truth
(even at NA 1.3) would keep every plane's out-of-focus light: the input's SSIM to it was ≈ 0.95, so no
method could be told apart; against this truth the input scores ≈ 0.55 on in-slice planes (headroom).

Determinism and bounded memory: every output cell (`CELL_PX` pixels square) is convolved on its own
fixed window (cell ± PSF radius), and its detector noise comes from the cell's own random stream, so a
voxel's value does not depend on how the volume is sliced into slabs: `synthesize`, `synthesize_region`
and the dask array of `synth_dask` agree bit for bit for any slab size. A 256 × 256 slab of a 29-plane
volume needs ≈ 0.1 GB, a 512 × 512 one ≈ 0.3 GB, whatever the total size; `zse synth` writes
29 × 1024 × 1024 (+ truth) with a peak RSS of 0.62 GB, 0.26 GB of which is importing torch via
zse.pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft

from zse.models import optics
from zse.models.simulator.params import (
    CELL_PX,
    KINDS,
    SynthParams,
    check_dtype,
    check_kind,
    check_seed,
    check_shape,
    config_error,
    make_params,
)
from zse.models.simulator.phantom import STREAM_NOISE, cell_rng, phantom_mu


@dataclass(frozen=True)
class _Kernel:
    radius: int  # lateral radius in px
    half_z: int  # planes on each side of focus
    psf: np.ndarray  # (2·half_z+1, 2R+1, 2R+1) float32
    scale_um: float  # OD = scale_um · (psf ∗ μ)


@lru_cache(maxsize=8)
def _kernel(kind: str, n_z: int, params: SynthParams) -> _Kernel:
    """The z-scan's widefield PSF (every plane sums to 1; OD = z_step · Σ planes) or the truth's
    optical-section PSF (the 3-D kernel sums to 1; OD = section thickness · local mean μ)."""
    px = params.voxel_size_um[2]
    if kind == "z-scan":
        na, n, half_z = params.na, params.refractive_index, n_z - 1
    else:
        na, n, half_z = params.truth_na, params.truth_refractive_index, min(n_z - 1, optics.CONFOCAL_HALF_Z)
    r = optics.psf_lateral_radius_px(
        half_z * params.z_step_um, na=na, refractive_index=n, wavelength_um=params.wavelength_um, pixel_um=px
    )
    make = optics.widefield_psf_zyx if kind == "z-scan" else optics.confocal_psf_zyx
    psf = make((2 * half_z + 1, 2 * r + 1, 2 * r + 1), (params.z_step_um, px, px), na=na,
               wavelength_um=params.wavelength_um, refractive_index=n)
    scale = params.z_step_um if kind == "z-scan" else params.section_um
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
    """JSON-ready description of the PSF that forms `kind` ("z-scan": widefield; "ground-truth": the
    confocal-like optical section), as `zse synth` records it in its outputs' metadata."""
    if kind == "z-scan":
        na, n = params.na, params.refractive_index
    else:
        na, n = params.truth_na, params.truth_refractive_index
    px = params.voxel_size_um[2]
    desc = optics.psf_description(
        na=na, wavelength_um=params.wavelength_um, refractive_index=n, voxel_size_um=(params.z_step_um, px, px)
    )
    if kind != "z-scan":
        desc.update(model="confocal-optical-section (widefield PSF squared, ±3 planes)",
                    normalisation=f"kernel sums to 1; OD = {params.section_um} µm (section thickness) x local mean absorption")
    return desc


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
    if kind == "z-scan" and noise is not None:
        gain = i0 / params.photons  # grey levels per electron
        read = params.read_noise * top / 255.0
        inten = inten + np.sqrt(inten * gain + read * read) * noise
    return np.clip(np.rint(inten), 0, top).astype(dtype)


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
    seed = check_seed(seed)
    dt = check_dtype(dtype)
    params = params or SynthParams()
    for k in kinds:
        check_kind(k)
    y0, x0, y1, x1 = (int(v) for v in region_yx)
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise config_error("region", region_yx, f"0 <= y0 < y1 <= {ny}, 0 <= x0 < x1 <= {nx}")
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
            if "z-scan" in kinds:
                rng = cell_rng(seed, cy, cx, STREAM_NOISE)
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
        raise config_error("slab_px", slab_px, "an integer >= 1")
    dt = check_dtype(dtype)
    n_z, ny, nx = shape
    xs = np.empty(shape, dtype=dt)
    gt = np.empty(shape, dtype=dt)
    for y0 in range(0, ny, slab_px):
        for x0 in range(0, nx, slab_px):
            reg = (y0, x0, min(ny, y0 + slab_px), min(nx, x0 + slab_px))
            parts = synthesize_region(shape, seed, reg, dtype=dt, params=params)
            sl = (slice(None), slice(reg[0], reg[2]), slice(reg[1], reg[3]))
            xs[sl] = parts["z-scan"]
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
    """Lazy dask array (Z, Y, X) of one kind ("z-scan" or "ground-truth"), one slab per block."""
    import dask.array as da

    shape = check_shape(shape_zyx)
    dt = check_dtype(dtype)
    params = params or SynthParams()
    check_kind(kind)
    n_z, ny, nx = shape

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None  # supplied by dask.map_blocks
        (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        return synthesize_region(shape, seed, (y0, x0, y1, x1), kinds=(kind,), dtype=dt, params=params)[kind]

    chunks = ((n_z,), _chunks(ny, slab_px), _chunks(nx, slab_px))
    return da.map_blocks(block, dtype=dt, chunks=chunks, meta=np.empty((0, 0, 0), dtype=dt))


def _chunks(n: int, c: int) -> tuple[int, ...]:
    return tuple(min(c, n - i) for i in range(0, n, c))


def synth_attrs(kind: str, seed: int, shape_zyx: Sequence[int], blur: str | None, params: SynthParams) -> dict[str, Any]:
    """The ``synth`` metadata `zse synth` records with a volume of `kind`: seed, shape (Z, Y, X), NA of
    the kind's PSF, focal step (µm), blur preset (None = "standard"), PSF description, every parameter."""
    return {
        "seed": seed,
        "shape": list(shape_zyx),
        "na": params.na if kind == "z-scan" else params.truth_na,
        "z_step_um": params.z_step_um,
        "blur": blur or "standard",
        "psf": psf_attrs(kind, params),
        "kind": kind,
        "params": params.model_dump(mode="json"),
    }
