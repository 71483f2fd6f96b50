"""Theoretical point-spread functions for brightfield z-scans.

Scalar defocus model (Born & Wolf, ch. 8.8; Goodman, *Introduction to Fourier Optics*, ch. 6): the
amplitude PSF at defocus ``z`` is the 2-D inverse Fourier transform of the circular pupil
``P(f) = circ(|f| <= NA / λ)`` multiplied by the angular-spectrum defocus phase
``exp(i·2π·z·(sqrt((n/λ)² − |f|²) − n/λ))``; the intensity PSF is ``|h|²`` (incoherent widefield
imaging, i.e. a condenser aperture filling the objective's, which is how brightfield stacks behave to
first order). No apodisation, no spherical aberration, no polarisation: it is meant for simulation
and as the deconvolution kernel of the classical baseline, not for metrology.

Sampling: the lateral voxel of whole-slide scanners (~0.25–1 µm) undersamples the in-focus PSF of a
0.75-NA objective (cut-off 2·NA/λ ≈ 2.7 cycles/µm). The intensity PSF is therefore computed on a fine
grid (spacing ≤ λ/(4·NA), an odd number ``s`` of fine samples per voxel, so the intensity is sampled
without aliasing) and then integrated over each voxel (sum of s × s fine samples: the detector pixel
integrates the light). The field of the fine computation is widened, when needed, to hold the
geometric blur disk of the largest defocus (radius ``|z|·tan(asin(NA/n))``) without wrap-around, then
cropped to the requested lateral size.

Normalisation (the convention every user of this module relies on): **each z-plane of a returned PSF
sums to 1**. A defocused plane neither gains nor loses light, so convolving an optical density with it
conserves the mean optical density of every plane (the real Huron stacks show the same: their mean
intensity per plane varies by < 0.5 %). Energy falling outside the cropped lateral window is dropped
before normalising.

Axes and units: PSFs are ``psf_zyx`` float32 arrays (Z, Y, X) with odd Z, Y, X; the centre voxel
``(Z//2, Y//2, X//2)`` is the focus on the optical axis, plane ``i`` is at defocus
``(i − Z//2)·voxel_size_um[0]`` µm (defocus measured in the medium of index ``refractive_index``).
All lengths are micrometres. The PSF is symmetric under z → −z, y → −y, x → −x and y ↔ x (enforced
exactly by symmetrisation).

Speed: 29×63×63 at NA 0.75 and 1 µm voxels takes ~0.05 s; the 1.3-NA oil PSF ~0.2 s (2 CPU cores).
Results are cached per parameter set (16 entries); callers get a copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.fft

from zse.errors import ConfigError

DEFAULT_WAVELENGTH_UM = 0.55
"""Centre of the visible band; brightfield scanners use white light, green dominates luminance."""

HIGH_NA = 1.3
HIGH_NA_INDEX = 1.515
"""Oil-immersion objective used for the sharp ground truth of synthetic data."""


def _check_optics(na: float, wavelength_um: float, refractive_index: float) -> None:
    if not (math.isfinite(wavelength_um) and wavelength_um > 0):
        raise ConfigError(f"wavelength_um={wavelength_um!r} is invalid: give a positive wavelength in µm")
    if not (math.isfinite(refractive_index) and refractive_index >= 1.0):
        raise ConfigError(f"refractive_index={refractive_index!r} is invalid: give a value >= 1.0")
    if not (math.isfinite(na) and 0 < na < refractive_index):
        raise ConfigError(
            f"na={na!r} is invalid for refractive_index={refractive_index}: NA must be in (0, {refractive_index})"
        )


def _check_voxel(voxel_size_um: Sequence[float]) -> tuple[float, float, float]:
    vs = tuple(float(v) for v in voxel_size_um)
    if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        raise ConfigError(
            f"voxel_size_um={tuple(voxel_size_um)!r} is invalid: give three positive sizes (z, y, x) in µm"
        )
    return vs  # type: ignore[return-value]


def defocus_blur_radius_um(defocus_um: float, *, na: float, refractive_index: float = 1.0) -> float:
    """Geometric-optics radius (µm) of the blur disk at defocus ``defocus_um`` (µm): |z|·tan(asin(NA/n))."""
    _check_optics(na, DEFAULT_WAVELENGTH_UM, refractive_index)
    s = na / refractive_index
    return abs(defocus_um) * s / math.sqrt(1.0 - s * s)


def psf_lateral_radius_px(
    max_defocus_um: float,
    *,
    na: float,
    refractive_index: float = 1.0,
    wavelength_um: float = DEFAULT_WAVELENGTH_UM,
    pixel_um: float = 1.0,
) -> int:
    """Lateral radius (pixels) that holds the PSF up to defocus ``max_defocus_um``.

    Geometric blur radius plus two Airy radii (0.61·λ/NA each) for the diffraction fringes, rounded up.
    """
    r = defocus_blur_radius_um(max_defocus_um, na=na, refractive_index=refractive_index)
    r += 2 * 0.61 * wavelength_um / na
    return max(1, math.ceil(r / pixel_um))


def widefield_psf_zyx(
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    na: float = 0.75,
    wavelength_um: float = DEFAULT_WAVELENGTH_UM,
    refractive_index: float = 1.0,
) -> np.ndarray:
    """Widefield (defocus) intensity PSF of a brightfield objective, each z-plane summing to 1.

    Args:
        shape_zyx: (Z, Y, X) of the returned PSF, all odd and ≥ 1; plane ``Z//2`` is in focus.
        voxel_size_um: (z, y, x) voxel size in µm; z is the defocus step between planes in the medium.
        na: numerical aperture of the objective, 0 < NA < refractive_index.
        wavelength_um: vacuum wavelength in µm (default 0.55).
        refractive_index: index of the medium in which the defocus happens (1.0 for a dry objective
            focusing in air; set the mounting medium's index, e.g. 1.52, to model focusing inside a
            mounted section with ``voxel_size_um[0]`` the step in the sample).

    Returns:
        ``psf_zyx``: float32 (Z, Y, X), non-negative, each plane summing to 1, symmetric in z, y, x.

    Raises:
        ConfigError: even or non-positive sizes, non-positive voxel sizes, NA outside (0, n).
    """
    shape, voxel = _check_request(shape_zyx, voxel_size_um, na, wavelength_um, refractive_index)
    return _widefield_cached(shape, voxel, float(na), float(wavelength_um), float(refractive_index)).copy()


def _check_request(shape_zyx: Sequence[int], voxel_size_um: Sequence[float], na: float, wavelength_um: float,
                   refractive_index: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The checks every PSF function shares: three odd sizes with Y == X, square pixels, valid optics."""
    shape = tuple(int(s) for s in shape_zyx)
    if len(shape) != 3 or not all(s >= 1 and s % 2 == 1 for s in shape):
        raise ConfigError(f"PSF shape_zyx={tuple(shape_zyx)!r} is invalid: give three odd sizes >= 1 (Z, Y, X)")
    dz, dy, dx = _check_voxel(voxel_size_um)
    _check_optics(na, wavelength_um, refractive_index)
    if not math.isclose(dy, dx, rel_tol=1e-6):
        raise ConfigError(f"voxel_size_um={tuple(voxel_size_um)!r}: the PSF model needs square pixels (y == x)")
    if shape[1] != shape[2]:
        raise ConfigError(f"PSF shape_zyx={shape!r}: the lateral sizes must be equal (Y == X)")
    return (shape[0], shape[1], shape[2]), (dz, dy, dx)


@lru_cache(maxsize=16)
def _widefield_cached(
    shape: tuple[int, int, int], voxel: tuple[float, float, float], na: float, wavelength_um: float, refractive_index: float
) -> np.ndarray:
    nz, _, nx = shape
    dz, _, dx = voxel
    half_z = nz // 2
    # Fine sampling: odd number of samples per voxel, spacing <= λ/(4 NA) (intensity Nyquist).
    s = math.ceil(dx / (wavelength_um / (4.0 * na)))
    s += 1 - s % 2
    # Field (in voxels, odd) large enough that the wrapped-around copies of the largest blur disk
    # (radius rho) stay outside the cropped window: field - rho > nx // 2 + 1.
    rho = psf_lateral_radius_px(
        half_z * dz, na=na, refractive_index=refractive_index, wavelength_um=wavelength_um, pixel_um=dx
    )
    field = max(nx, rho + nx // 2 + 2)
    field += 1 - field % 2
    n_fine = field * s
    delta = dx / s
    f = scipy.fft.fftfreq(n_fine, d=delta)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    k_cut = na / wavelength_um
    pupil = f2 <= k_cut**2
    kz = np.sqrt(np.maximum((refractive_index / wavelength_um) ** 2 - f2, 0.0)) - refractive_index / wavelength_um
    kz_p = kz[pupil]
    out = np.empty((half_z + 1, nx, nx), dtype=np.float64)
    c0 = (field - nx) // 2
    for i in range(half_z + 1):  # z -> -z symmetry: compute non-negative defocus only
        z = i * dz
        spec = np.zeros((n_fine, n_fine), dtype=np.complex128)
        spec[pupil] = np.exp(2j * np.pi * z * kz_p)
        h = scipy.fft.ifft2(spec, workers=-1)
        inten = np.fft.fftshift(h.real**2 + h.imag**2)
        binned = inten.reshape(field, s, field, s).sum(axis=(1, 3))
        plane = binned[c0 : c0 + nx, c0 : c0 + nx]
        plane = plane + plane[::-1, :]
        plane = plane + plane[:, ::-1]
        plane = plane + plane.T
        out[i] = plane / plane.sum()
    full = np.concatenate([out[:0:-1], out], axis=0)
    return full.astype(np.float32)


def high_na_psf_zyx(
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    na: float = HIGH_NA,
    wavelength_um: float = DEFAULT_WAVELENGTH_UM,
    refractive_index: float = HIGH_NA_INDEX,
) -> np.ndarray:
    """PSF of a 1.3-NA oil objective (n = 1.515), used for the sharp ground truth of synthetic data.

    Same model, shapes, units and normalisation as `widefield_psf_zyx` (each plane sums to 1).
    """
    return widefield_psf_zyx(
        shape_zyx, voxel_size_um, na=na, wavelength_um=wavelength_um, refractive_index=refractive_index
    )


CONFOCAL_HALF_Z = 3
"""Planes kept on each side of focus by `zse.models.simulator`'s optical-section truth. A point-pinhole
confocal's plane energy falls off as 1/defocus²: at a 1.4 µm step and NA 1.3 the planes beyond ±3 hold
≈ 4 % of it, which the truth drops (it is slightly more sectioned than an ideal confocal)."""


def confocal_psf_zyx(
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    na: float = HIGH_NA,
    wavelength_um: float = DEFAULT_WAVELENGTH_UM,
    refractive_index: float = HIGH_NA_INDEX,
) -> np.ndarray:
    """Optical-section PSF of an ideal confocal microscope (point pinhole): the square of the widefield
    intensity PSF, normalised so that **the whole 3-D kernel sums to 1**.

    Unlike the widefield PSF, whose every plane carries all the light (so defocused structures stay in
    the image as haze), this kernel's plane energy falls off with defocus: convolving an absorption μ
    (1/µm) with it gives the local mean of μ around each voxel, nothing from structures a few planes
    away and nothing at all above or below the tissue. `zse.models.simulator` scales that by the section
    thickness to make the synthetic ground truth (an in-slice plane then carries the column's mean OD).

    The widefield PSF is computed on a lateral window wide enough for the largest kept defocus (so its
    per-plane normalisation is the physical one: a defocused plane keeps its energy), squared, cropped
    to `shape_zyx` and normalised. Squaring voxel-integrated values is an approximation of integrating
    the squared PSF over each voxel; at 1 µm pixels the in-focus confocal spot (~0.2 µm) is sub-voxel
    either way.

    Args:
        shape_zyx: (Z, Y, X) of the returned kernel, all odd; plane ``Z//2`` is in focus.
        voxel_size_um, na, wavelength_um, refractive_index: as `widefield_psf_zyx` (default 1.3-NA oil).

    Returns:
        float32 (Z, Y, X), non-negative, summing to 1, symmetric in z, y, x.
    """
    shape, (dz, dy, dx) = _check_request(shape_zyx, voxel_size_um, na, wavelength_um, refractive_index)
    half_z = shape[0] // 2
    rho = psf_lateral_radius_px(half_z * dz, na=na, refractive_index=refractive_index, wavelength_um=wavelength_um,
                                pixel_um=dx)
    wide = max(shape[2], 2 * rho + 1)
    h = widefield_psf_zyx((shape[0], wide, wide), (dz, dy, dx), na=na, wavelength_um=wavelength_um,
                          refractive_index=refractive_index).astype(np.float64)
    c, r = wide // 2, shape[2] // 2
    hc = (h * h)[:, c - r : c + r + 1, c - r : c + r + 1]
    return (hc / hc.sum()).astype(np.float32)


def psf_description(
    *, na: float, wavelength_um: float, refractive_index: float, voxel_size_um: Sequence[float]
) -> dict[str, object]:
    """JSON-able description of a PSF (for provenance attributes and checksums)."""
    return {
        "model": "scalar-defocus-pupil",
        "na": float(na),
        "wavelength_um": float(wavelength_um),
        "refractive_index": float(refractive_index),
        "voxel_size_um": [float(v) for v in voxel_size_um],
        "normalisation": "each z-plane sums to 1",
    }
