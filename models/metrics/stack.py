"""Per-plane and per-section evaluation of z-stacks, as in the ZSE-GAN paper's Tables 1–3.

Volumes are (Z, Y, X) numpy arrays (uint8 in the paper's data). "x" is the input (blurred) stack, "y"
the enhanced one, x_f the input's in-focus plane (plane 14 of 29 in the paper, "x_15" 1-based).
Vertical sections: xz section at row j is V[:, j, :] (Z, X); yz section at column i is V[:, :, i] (Z, Y).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from zse.errors import ConfigError, InputError

from ._common import as_image, same_shape
from .focus import FM_T_PAPER, average_gradient, fm, forward_gradient
from .piqe import piqe
from .reference import pearson, psnr, rmse, ssim

FocusFn = Callable[[np.ndarray], float]


def focus_curve(volume: np.ndarray, measure: str = "gradient") -> np.ndarray:
    """Focus measure of every plane of a (Z, Y, X) stack, shape (Z,) float64.

    measure: "gradient" (mean |∇I| of the plane, `average_gradient`), "forward-gradient" (mean |∇I|
    with forward differences in float32, `forward_gradient`: the synthetic-vs-real comparison's curve),
    "variance" (normalised variance σ²/μ, Groen et al. 1985) or "fm" (De & Masilamani FM at T = 1000)."""
    vol = as_image(volume, "volume", (3,))
    fns: dict[str, FocusFn] = {
        "gradient": average_gradient,
        "forward-gradient": forward_gradient,
        "variance": lambda p: float(np.var(p.astype(np.float64)) / max(float(np.mean(p)), 1e-12)),
        "fm": fm,
    }
    if measure not in fns:
        raise ConfigError(f"focus measure {measure!r} is unknown; valid: {', '.join(fns)}")
    return np.array([fns[measure](p) for p in vol], dtype=np.float64)


def focal_plane(volumes: np.ndarray | Sequence[np.ndarray], measure: str = "gradient") -> int:
    """The in-focus plane (0-based): the argmax of `focus_curve` of a (Z, Y, X) stack, or of the mean
    curve of several stacks with the same Z (the ROIs of one slide); the first plane on ties.

    The one definition of zse: `zse evaluate` (the input's ROIs, or its whole stack) and `zse demo` (the
    whole synthetic input slide) both call it (docs/metrics.md, "In-focus plane")."""
    vols = [volumes] if isinstance(volumes, np.ndarray) else list(volumes)
    if not vols:
        raise InputError("focal_plane needs at least one (Z, Y, X) stack; got none")
    curves = [focus_curve(v, measure) for v in vols]
    if len({c.shape for c in curves}) != 1:
        raise InputError(f"focal_plane: the stacks have different plane counts {sorted({len(c) for c in curves})}; they must be equal")
    return int(np.argmax(np.mean(curves, axis=0)))


def _data_range(vol: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    if vol.dtype.kind in "ui":
        return float(np.iinfo(vol.dtype).max)
    raise ConfigError(f"data_range is required for {vol.dtype} volumes; valid: a positive number (255 for 8-bit)")


def plane_table(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    focal: int | None = None,
    fm_t: float = FM_T_PAPER,
    data_range: float | None = None,
) -> dict[str, np.ndarray]:
    """Paper Tables 1–3 per xy plane: columns (each shape (Z,), float64)

    plane; ssim_x_xf = SSIM(x_k, x_focal); fm_x; piqe_x; grad_x; and when y is given also
    ssim_x_y = SSIM(x_k, y_k), ssim_y_xf = SSIM(y_k, x_focal), fm_y, piqe_y, grad_y.
    SSIM is MATLAB's (`ssim`, replicate borders); focal defaults to `focal_plane(x)`.
    """
    xv = as_image(x, "x", (3,))
    L = _data_range(xv, data_range)
    if y is not None:
        yv = as_image(y, "y", (3,))
        same_shape(xv, yv)
    f = focal_plane(xv) if focal is None else int(focal)
    if not 0 <= f < xv.shape[0]:
        raise ConfigError(f"focal plane {focal} is outside 0..{xv.shape[0] - 1}")
    t: dict[str, list[float]] = {"plane": [], "ssim_x_xf": [], "fm_x": [], "piqe_x": [], "grad_x": []}
    if y is not None:
        t.update({"ssim_x_y": [], "ssim_y_xf": [], "fm_y": [], "piqe_y": [], "grad_y": []})
    for k in range(xv.shape[0]):
        t["plane"].append(k)
        t["ssim_x_xf"].append(ssim(xv[k], xv[f], data_range=L))
        t["fm_x"].append(fm(xv[k], fm_t))
        t["piqe_x"].append(piqe(xv[k]))
        t["grad_x"].append(average_gradient(xv[k]))
        if y is not None:
            t["ssim_x_y"].append(ssim(xv[k], yv[k], data_range=L))
            t["ssim_y_xf"].append(ssim(yv[k], xv[f], data_range=L))
            t["fm_y"].append(fm(yv[k], fm_t))
            t["piqe_y"].append(piqe(yv[k]))
            t["grad_y"].append(average_gradient(yv[k]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in t.items()}


def sections(volume: np.ndarray, orientation: str) -> np.ndarray:
    """Vertical sections of a (Z, Y, X) stack: "xz" → (Y, Z, X) (one (Z, X) section per row j);
    "yz" → (X, Z, Y) (one (Z, Y) section per column i)."""
    vol = as_image(volume, "volume", (3,))
    if orientation == "xz":
        return np.moveaxis(vol, 1, 0)
    if orientation == "yz":
        return np.moveaxis(vol, 2, 0)
    raise ConfigError(f"orientation={orientation!r} is invalid; valid: 'xz', 'yz'")


def section_table(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    orientation: str = "xz",
    fm_t: float = FM_T_PAPER,
    data_range: float | None = None,
    step: int = 1,
) -> dict[str, np.ndarray]:
    """Per vertical section (every `step`-th): index; fm_x; piqe_x; grad_x; with y also ssim_x_y,
    fm_y, piqe_y, grad_y. Sections are (Z, X) or (Z, Y) images (see `sections`)."""
    xs = sections(x, orientation)
    L = _data_range(np.asarray(x), data_range)
    ys = None
    if y is not None:
        same_shape(np.asarray(x), np.asarray(y))
        ys = sections(y, orientation)
    if int(step) < 1:
        raise ConfigError(f"step={step!r} is invalid; valid: an integer ≥ 1")
    t: dict[str, list[float]] = {"index": [], "fm_x": [], "piqe_x": [], "grad_x": []}
    if ys is not None:
        t.update({"ssim_x_y": [], "fm_y": [], "piqe_y": [], "grad_y": []})
    for j in range(0, xs.shape[0], int(step)):
        t["index"].append(j)
        t["fm_x"].append(fm(xs[j], fm_t))
        t["piqe_x"].append(piqe(xs[j]))
        t["grad_x"].append(average_gradient(xs[j]))
        if ys is not None:
            t["ssim_x_y"].append(ssim(xs[j], ys[j], data_range=L))
            t["fm_y"].append(fm(ys[j], fm_t))
            t["piqe_y"].append(piqe(ys[j]))
            t["grad_y"].append(average_gradient(ys[j]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in t.items()}


def reference_table(
    y: np.ndarray, gt: np.ndarray, *, data_range: float | None = None, orientation: str = "xy", step: int = 1
) -> dict[str, np.ndarray]:
    """Full-reference metrics of y against ground truth gt (both (Z, Y, X)) per xy plane
    (orientation "xy") or per vertical section ("xz", "yz"): index, ssim, psnr, rmse, pearson."""
    yv = as_image(y, "y", (3,))
    gv = as_image(gt, "ground truth", (3,))
    same_shape(yv, gv, ("output", "ground truth"))
    L = _data_range(gv, data_range)
    if orientation == "xy":
        ys, gs = yv, gv
    elif orientation in ("xz", "yz"):
        ys, gs = sections(yv, orientation), sections(gv, orientation)
    else:
        raise InputError(f"orientation={orientation!r} is invalid; valid: 'xy', 'xz', 'yz'")
    t: dict[str, list[float]] = {"index": [], "ssim": [], "psnr": [], "rmse": [], "pearson": []}
    for j in range(0, ys.shape[0], max(1, int(step))):
        t["index"].append(j)
        t["ssim"].append(ssim(ys[j], gs[j], data_range=L))
        t["psnr"].append(psnr(ys[j], gs[j], data_range=L))
        t["rmse"].append(rmse(ys[j], gs[j]))
        t["pearson"].append(pearson(ys[j], gs[j]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in t.items()}
