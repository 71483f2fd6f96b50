"""Faithfulness scores of an enhanced z-scan (issue 11; docs/quality.md uses them, `zse demo` too).

"Enhanced" means faithful: each plane shows the structures at its own depth, in focus, without the haze
of the others, and nothing where there is no tissue. So:

- with a truth (`synthetic_scores`): SSIM to the optical-section truth on in-slice planes (where the
  truth shows tissue) and on xz / yz sections, and the mean absolute error on the empty planes above and
  below the section (no invented structure: it must not exceed the input's);
- on real stacks without a truth (`real_scores`): the focal plane's structure kept (Pearson correlation
  of output and input focal planes — not SSIM: removing other depths' haze rightly changes contrast),
  no contrast inversion (correlation of the low-passes, σ 4 px), noise (Immerkær σ) not amplified, and
  vertical sections sharper (FM of xz / yz sections, and the axial spectral coverage with the input's
  noise floor). A flat focus curve is *not* among the goals: copying the nearest in-focus plane
  (`nearest_focus_copy`) makes it flat with no learning at all.

All volumes are (Z, Y, X) arrays of one integer dtype (uint8 in the benchmark), compared as float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from zse.errors import InputError

from ._common import dtype_range, same_shape
from .focus import FM_T_PAPER, fm
from .reference import pearson, ssim
from .spectral import noise_sigma_immerkaer, spectral_coverage
from .stack import focal_plane, focus_curve


def tissue_planes(truth_zyx: np.ndarray, min_std: float = 2.0) -> np.ndarray:
    """Indices of the truth's planes that show tissue (standard deviation > `min_std` grey levels)."""
    t = np.asarray(truth_zyx, dtype=np.float64)
    return np.flatnonzero(t.reshape(t.shape[0], -1).std(axis=1) > min_std)


def empty_planes(truth_zyx: np.ndarray, max_std: float = 0.5) -> np.ndarray:
    """Indices of the truth's empty planes (uniform background: standard deviation ≤ `max_std`)."""
    t = np.asarray(truth_zyx, dtype=np.float64)
    return np.flatnonzero(t.reshape(t.shape[0], -1).std(axis=1) <= max_std)


def _sections(v: np.ndarray, step: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ny, nx = v.shape[1:]
    return [v[:, j, :] for j in range(step // 2, ny, step)], [v[:, :, i] for i in range(step // 2, nx, step)]


def synthetic_scores(y: np.ndarray, truth: np.ndarray, *, section_step: int = 16) -> dict[str, Any]:
    """Scores of a volume y against the optical-section truth (same shape and dtype).

    Returns: ssim_planes (mean over the truth's tissue planes), ssim_xz, ssim_yz (mean over every
    `section_step`-th section), ssim_per_plane (Z values, NaN on empty planes), mae_empty (mean |y − t|
    in grey levels on the truth's empty planes; NaN when it has none), n_tissue, n_empty.
    """
    same_shape(y, truth, ("output", "truth"))
    rng = dtype_range(truth)
    yf, tf = np.asarray(y, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    tissue, empty = tissue_planes(truth), empty_planes(truth)
    if len(tissue) == 0:
        raise InputError("the truth shows no tissue plane (standard deviation > 2 grey levels on none)")
    per_plane = np.full(y.shape[0], np.nan)
    for k in tissue:
        per_plane[k] = ssim(yf[k], tf[k], data_range=rng)
    (yxz, yyz), (txz, tyz) = _sections(yf, section_step), _sections(tf, section_step)
    return {
        "ssim_planes": float(np.nanmean(per_plane)),
        "ssim_xz": float(np.mean([ssim(a, b, data_range=rng) for a, b in zip(yxz, txz, strict=True)])),
        "ssim_yz": float(np.mean([ssim(a, b, data_range=rng) for a, b in zip(yyz, tyz, strict=True)])),
        "ssim_per_plane": per_plane.tolist(),
        "mae_empty": float(np.abs(yf[empty] - tf[empty]).mean()) if len(empty) else float("nan"),
        "n_tissue": int(len(tissue)),
        "n_empty": int(len(empty)),
    }


def real_scores(y: np.ndarray, x: np.ndarray, *, section_step: int = 8, fm_t: float = FM_T_PAPER) -> dict[str, Any]:
    """No-reference scores of an enhanced real stack y against its input x (same shape and dtype).

    Returns: focal (the input's sharpest plane by mean gradient), pearson_focal, lowpass_corr (σ 4 px,
    focal plane; < 0 = contrast inversion), noise_ratio (Immerkær σ, median over planes, y / x),
    fm_sections_ratio (mean FM of every `section_step`-th xz and yz section, y / x), axial_coverage_ratio
    (axial spectral coverage, both with the input's noise floor), fm_per_plane (Z values of y),
    fm_outer_over_focus (mean FM of planes 0–3 and Z−4…Z−1 over the FM of the focal plane).
    """
    same_shape(y, x, ("output", "input"))
    xf, yf = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    k = focal_plane(x)
    sx = noise_sigma_immerkaer(xf)
    ysec = [s for group in _sections(yf, section_step) for s in group]
    xsec = [s for group in _sections(xf, section_step) for s in group]
    fm_y = np.array([fm(p, fm_t) for p in yf])
    z = y.shape[0]
    outer = [i for i in (*range(4), *range(z - 4, z)) if 0 <= i < z]
    cov_y = spectral_coverage(yf, noise_sigma=max(sx, 1e-3)).axial
    cov_x = spectral_coverage(xf, noise_sigma=max(sx, 1e-3)).axial
    return {
        "focal": k,
        "pearson_focal": pearson(yf[k], xf[k]),
        "lowpass_corr": pearson(ndimage.gaussian_filter(yf[k], 4.0), ndimage.gaussian_filter(xf[k], 4.0)),
        "noise_ratio": noise_sigma_immerkaer(yf) / max(sx, 1e-9),
        "fm_sections_ratio": float(np.mean([fm(s, fm_t) for s in ysec])) / max(float(np.mean([fm(s, fm_t) for s in xsec])), 1e-12),
        "axial_coverage_ratio": cov_y / max(cov_x, 1e-12),
        "fm_per_plane": fm_y.tolist(),
        "fm_outer_over_focus": float(fm_y[outer].mean() / max(fm_y[k], 1e-12)),
    }


def nearest_focus_copy(x: np.ndarray, rel: float = 0.6) -> np.ndarray:
    """The no-learning answer to a flat focus curve: every plane outside the in-focus range (planes whose
    mean gradient is ≥ `rel` × the sharpest plane's) replaced by the nearest in-focus plane. (Z, Y, X)."""
    curve = focus_curve(x)
    inside = np.flatnonzero(curve >= rel * curve.max())
    out = np.array(x, copy=True)
    for k in range(x.shape[0]):
        if k < inside[0]:
            out[k] = x[inside[0]]
        elif k > inside[-1]:
            out[k] = x[inside[-1]]
    return out
