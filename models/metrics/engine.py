"""The metrics engine of `zse evaluate`: every metric of this package on a list of ROIs, with the
tables averaged over ROIs (definitions in docs/metrics.md; numpy/scipy only).

A `Roi` holds the input x, and optionally the output y and the ground truth gt, as (Z, Y, X) arrays of
one shape and integer dtype (uint8 or uint16: the data range L is the dtype's maximum unless given).
Loading ROIs from OME-Zarr or .npz datasets and applying a model: `zse.models.evaluation`; writing the
report: `zse.workflows.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zse.errors import ConfigError, InputError

from .focus import delta_dom, gradient_histogram
from .information import hellinger, mutual_information
from .reference import pearson, psnr, rmse
from .seams import lattice_lines, seam_score
from .spectral import spectral_coverage
from .stack import focal_plane, focus_curve, plane_table, reference_table, section_table
from .summary import summary_rows


@dataclass
class Roi:
    """One evaluated region: (Z, Y, X) arrays of the same shape and dtype; origin (y0, x0) in level-0
    pixels of the volume (None for dataset stacks)."""

    name: str
    x: np.ndarray
    y: np.ndarray | None = None
    gt: np.ndarray | None = None
    origin: tuple[int, int] | None = None


def _seam_lines(origin: tuple[int, int] | None, shape_yx: tuple[int, int], tile: int, overlap: int,
                margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Lattice lines (anchored at the volume origin) falling inside a ROI, in ROI coordinates."""
    oy, ox = origin or (0, 0)
    ly = lattice_lines(oy + shape_yx[0], tile, overlap, margin) - oy
    lx = lattice_lines(ox + shape_yx[1], tile, overlap, margin) - ox
    return ly[ly > 0], lx[lx > 0]


def _nanmean(values: Any, axis: int | None = None) -> Any:
    """Mean ignoring NaN; NaN (without a warning) where every value is NaN."""
    a = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(a)
    n = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, a, 0.0).sum(axis=axis) / np.where(n > 0, n, np.nan)


def _mean_table(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = tables[0].keys()
    return {k: _nanmean(np.stack([t[k] for t in tables]), axis=0) for k in keys}


def _col_means(table: dict[str, np.ndarray], skip: tuple[str, ...] = ("plane", "plane_1based", "index")) -> dict[str, float]:
    return {k: float(_nanmean(v)) for k, v in table.items() if k not in skip}


REF_COLUMNS = ("ssim", "psnr", "rmse", "pearson")


def _reference_pair(x: np.ndarray, y: np.ndarray, gt: np.ndarray, L: float, orientation: str,
                    step: int) -> dict[str, np.ndarray]:
    """Input vs truth beside output vs truth per plane or section: index, then for each of SSIM, PSNR,
    RMSE, Pearson the columns <m>_x_gt (input) and <m>_y_gt (output)."""
    tx = reference_table(x, gt, data_range=L, orientation=orientation, step=step)
    ty = reference_table(y, gt, data_range=L, orientation=orientation, step=step)
    out = {"index": ty["index"]}
    for m in REF_COLUMNS:
        out[f"{m}_x_gt"] = tx[m]
        out[f"{m}_y_gt"] = ty[m]
    return out


def _summary_values(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The values of `zse.models.metrics.summary.SUMMARY_METRICS` from the engine's summary means."""
    pm, om, rm = s["planes_mean"], s["outer_planes_mean"], s["per_roi_mean"]

    def trio(src: dict[str, float], name: str) -> dict[str, Any]:
        return {"input": src.get(name.format("x")), "output": src.get(name.format("y")), "truth": src.get(name.format("gt"))}

    values = {"sharpness": trio(pm, "grad_{}"), "sharpness_outer": trio(om, "grad_{}"), "fm": trio(pm, "fm_{}"),
              "piqe": trio(pm, "piqe_{}"), "dom": trio(pm, "dom_{}"), "spectral": trio(rm, "spectral_{}_total"),
              "seam": trio(rm, "seam_{}")}
    if "reference_mean" in s:
        ref = s["reference_mean"]
        for key, o in (("ssim_truth", "xy"), ("ssim_truth_xz", "xz"), ("ssim_truth_yz", "yz")):
            values[key] = {"input": ref[o]["ssim_x_gt"], "output": ref[o]["ssim_y_gt"]}
        for m in ("psnr", "rmse", "pearson"):
            values[f"{m}_truth"] = {"input": rm[f"{m}_x_gt"], "output": rm[f"{m}_y_gt"]}
    return values


def evaluate_rois(rois: list[Roi], *, focal: int | None = None, fm_t: float = 1000.0, section_step: int = 4,
                  tile: int = 128, overlap: int = 32, margin: int = 0, data_range: float | None = None) -> dict[str, Any]:
    """Every metric on every ROI; tables averaged over ROIs.

    rois: same shape (Z, Y, X) and dtype; y (and gt) set on all or none. focal: the in-focus plane x_f
    (0-based; default `focal_plane` of the input ROIs: the sharpest plane of their mean `focus_curve`,
    the definition `zse demo` uses too). fm_t: FM threshold divisor;
    section_step: every n-th xz/yz section; tile, overlap, margin: the tile lattice of the seam score
    (lines anchored at the volume origin); data_range: L (default the dtype's maximum).

    Returns a JSON-ready dict of numpy values with keys focal_plane, focus_curve_x, planes (with gt:
    also the truth's fm_gt, piqe_gt, grad_gt, dom_gt), sections, reference (with gt: per xy plane and
    xz/yz section, input vs truth <m>_x_gt beside output vs truth <m>_y_gt; else None), summary (its
    `table`: the rows of `zse.models.metrics.summary`), gradient_histograms, per_roi, parameters. InputError without ROIs, or with y or
    gt set on some ROIs only, or gt without y; ConfigError for a focal plane outside the stack.
    """
    if not rois:
        raise InputError("no ROIs to evaluate")
    x0 = rois[0].x
    L = float(data_range) if data_range is not None else float(np.iinfo(x0.dtype).max)
    has_y = rois[0].y is not None
    has_gt = rois[0].gt is not None
    if any((r.y is not None) != has_y or (r.gt is not None) != has_gt for r in rois):
        raise InputError("the ROIs differ in holding an output y or a ground truth gt; set each on all ROIs or on none")
    if has_gt and not has_y:
        raise InputError("the ROIs hold a ground truth gt but no output y; gt is compared with y: set y too")
    nz = x0.shape[0]
    curve = np.mean([focus_curve(r.x) for r in rois], axis=0)
    f = focal_plane([r.x for r in rois]) if focal is None else int(focal)
    if not 0 <= f < nz:
        raise ConfigError(f"--focal {focal} is outside the stack's planes; valid: 0..{nz - 1}")

    plane_tabs: list[dict[str, np.ndarray]] = []
    sec_tabs: dict[str, list[dict[str, np.ndarray]]] = {"xz": [], "yz": []}
    ref_tabs: dict[str, list[dict[str, np.ndarray]]] = {"xy": [], "xz": [], "yz": []}
    per_roi: list[dict[str, Any]] = []
    hmax = 0.5 * L
    hist_keys = ["x (all planes)", f"x (in-focus plane {f})"] + (["y (all planes)"] if has_y else []) + (
        ["ground truth (all planes)"] if has_gt else [])
    hists: dict[str, list[np.ndarray]] = {k: [] for k in hist_keys}
    edges = None
    for r in rois:
        y, gt = r.y, r.gt  # y is set on every ROI when has_y, gt (and y) on every ROI when has_gt (checked above)
        t = plane_table(r.x, y, focal=f, fm_t=fm_t, data_range=L)
        t["plane_1based"] = t["plane"] + 1
        t["dom_x"] = np.array([delta_dom(p, data_range=L) for p in r.x])
        if y is not None:
            t["dom_y"] = np.array([delta_dom(p, data_range=L) for p in y])
        if gt is not None:
            tg = plane_table(gt, focal=f, fm_t=fm_t, data_range=L)
            t.update({"fm_gt": tg["fm_x"], "piqe_gt": tg["piqe_x"], "grad_gt": tg["grad_x"],
                      "dom_gt": np.array([delta_dom(p, data_range=L) for p in gt])})
        plane_tabs.append(t)
        for o in ("xz", "yz"):
            sec_tabs[o].append(section_table(r.x, y, orientation=o, fm_t=fm_t, data_range=L, step=section_step))
        if y is not None and gt is not None:
            ref_tabs["xy"].append(_reference_pair(r.x, y, gt, L, "xy", 1))
            for o in ("xz", "yz"):
                ref_tabs[o].append(_reference_pair(r.x, y, gt, L, o, section_step))
        for key, vol in (("x (all planes)", r.x), (f"x (in-focus plane {f})", r.x[f:f + 1]), ("y (all planes)", y),
                         ("ground truth (all planes)", gt)):
            if key in hists and vol is not None:
                hs = [gradient_histogram(p, bins=64, max_value=hmax) for p in vol]
                edges = hs[0][1]
                hists[key].append(np.mean([h[0] for h in hs], axis=0))
        ly, lx = _seam_lines(r.origin, r.x.shape[1:], tile, overlap, margin)
        sx = spectral_coverage(r.x)
        row: dict[str, Any] = {
            "name": r.name,
            "origin_y": r.origin[0] if r.origin else None,
            "origin_x": r.origin[1] if r.origin else None,
            "focal_plane_own": int(np.argmax(focus_curve(r.x))),
            "fm_x_focal": float(t["fm_x"][f]),
            "piqe_x_focal": float(t["piqe_x"][f]),
            "seam_x": seam_score(r.x, ly, lx) if (len(ly) or len(lx)) else float("nan"),
            "spectral_x_total": sx.total, "spectral_x_lateral": sx.lateral, "spectral_x_axial": sx.axial,
            "noise_sigma_x": sx.noise_sigma,
        }
        if y is not None:
            sy = spectral_coverage(y, noise_sigma=sx.noise_sigma)
            row.update({
                "ssim_x_y_mean": float(np.mean(t["ssim_x_y"])),
                "ssim_y_xf_mean": float(np.mean(t["ssim_y_xf"])),
                "fm_y_mean": float(np.mean(t["fm_y"])),
                "piqe_y_mean": float(np.mean(t["piqe_y"])),
                "mutual_information": mutual_information(r.x, y),
                "hellinger": hellinger(r.x, y),
                "seam_y": seam_score(y, ly, lx) if (len(ly) or len(lx)) else float("nan"),
                "spectral_y_total": sy.total, "spectral_y_lateral": sy.lateral, "spectral_y_axial": sy.axial,
            })
        if y is not None and gt is not None:
            sg = spectral_coverage(gt, noise_sigma=sx.noise_sigma)
            for v, vol in (("x", r.x), ("y", y)):
                row.update({f"ssim_{v}_gt_mean": float(np.mean(ref_tabs["xy"][-1][f"ssim_{v}_gt"])),
                            f"psnr_{v}_gt": psnr(vol, gt, data_range=L), f"rmse_{v}_gt": rmse(vol, gt),
                            f"pearson_{v}_gt": pearson(vol, gt)})
            row.update({"spectral_gt_total": sg.total, "spectral_gt_lateral": sg.lateral, "spectral_gt_axial": sg.axial})
        per_roi.append(row)

    planes = _mean_table(plane_tabs)
    order = ["plane", "plane_1based", "ssim_x_xf", "ssim_x_y", "ssim_y_xf", "fm_x", "fm_y", "fm_gt", "piqe_x", "piqe_y",
             "piqe_gt", "grad_x", "grad_y", "grad_gt", "dom_x", "dom_y", "dom_gt"]
    planes = {k: planes[k] for k in order if k in planes}
    sections = {o: _mean_table(v) for o, v in sec_tabs.items()}
    reference = {o: _mean_table(v) for o, v in ref_tabs.items()} if has_gt else None
    pr_keys = [k for k in per_roi[0] if k not in ("name",)]
    summary: dict[str, Any] = {
        "n_rois": len(rois),
        "focal_plane": f,
        "focal_plane_1based": f + 1,
        "planes_mean": _col_means(planes),
        "at_focal_plane": {k: float(v[f]) for k, v in planes.items() if k not in ("plane", "plane_1based")},
        "outer_planes_mean": {k: float((v[0] + v[-1]) / 2) for k, v in planes.items() if k not in ("plane", "plane_1based")},
        "sections_mean": {o: _col_means(t) for o, t in sections.items()},
        "per_roi_mean": {k: float(_nanmean([float(p[k]) if p[k] is not None else np.nan for p in per_roi]))
                         for k in pr_keys if not k.startswith("origin")},
    }
    if reference is not None:
        summary["reference_mean"] = {o: _col_means(t) for o, t in reference.items()}
    summary["table"] = summary_rows(_summary_values(summary))
    return {
        "focal_plane": f,
        "focus_curve_x": curve,
        "planes": planes,
        "sections": sections,
        "reference": reference,
        "summary": summary,
        "gradient_histograms": {"edges": edges, **{k: np.mean(v, axis=0) for k, v in hists.items()}},
        "per_roi": per_roi,
        "parameters": {"fm_t": fm_t, "section_step": section_step, "data_range": L,
                       "ssim": "MATLAB ssim (Gaussian σ=1.5, 11 taps, replicate borders)",
                       "seam_lattice": {"tile": tile, "overlap": overlap, "margin": margin, "lines": "all"},
                       "spectral_floor": "3·σ_x·√Σw², σ_x Immerkær estimate on the input ROI, shared with y"},
    }
