"""`zse evaluate INPUT [OUTPUT] --report DIR`: image-quality report of a z-stack enhancement.

INPUT, OUTPUT and --ground-truth are OME-Zarr z-scans (axes zyx or czyx, same shape). INPUT may
instead be a ZSE-GAN dataset folder of `.npz` stacks (key `arr_0`, (Y, X, Z), z last; or its parent
with a `trainB/` folder): each stack is one ROI. The output volume y comes from OUTPUT, or from
applying `--model M` (`zse.models.registry.resolve`) to each ROI; with neither, only the input is
measured (the paper's input curves). Metrics: `zse.models.metrics` (definitions in docs/metrics.md).

Written into DIR: metrics.json (every number), planes.csv/.md (paper Tables 1–3 per xy plane,
averaged over ROIs), sections_xz.csv/.md and sections_yz.csv/.md (per vertical section),
reference_{xy,xz,yz}.csv/.md with --ground-truth, per_roi.csv/.md, curves.png, sections.png,
gradient_hist.png, roi_NNN.png (orthogonal views), reference.png (with --ground-truth), index.html.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from zse.errors import ConfigError, InputError, OutputError

DEFAULT_ROI = 128


@dataclass
class Roi:
    """One evaluated region: (Z, Y, X) arrays of the same shape and dtype; origin (y0, x0) in level-0
    pixels of the volume (None for dataset stacks)."""

    name: str
    x: np.ndarray
    y: np.ndarray | None = None
    gt: np.ndarray | None = None
    origin: tuple[int, int] | None = None


# ------------------------------------------------------------------------------------------ loading


def is_npz_dataset(path: Path) -> bool:
    """True for a folder holding .npz stacks directly or in trainB/."""
    return path.is_dir() and (any(path.glob("*.npz")) or any((path / "trainB").glob("*.npz")))


def input_data_dir(path: Path) -> Path:
    """What INPUT reads: the image itself, or for a .npz dataset the folder holding the stacks (INPUT,
    or INPUT/trainB/ when INPUT holds none itself, as `zse.models.metrics.paper.npz_files` reads them)."""
    if is_npz_dataset(path) and not any(path.glob("*.npz")):
        return path / "trainB"
    return path


def _open(path: Path, what: str) -> Any:
    from zse.pipeline.io.ngff import open_image

    try:
        return open_image(path)
    except InputError as exc:
        raise InputError(f"{what}: {exc.message}") from None


def _level0_zyx(img: Any, channel: int) -> Any:
    """Level 0 as an indexable (Z, Y, X) view (the chosen channel of czyx)."""
    arr = img.levels[0]
    if img.meta.axes == "czyx":
        nc = arr.shape[0]
        if not 0 <= channel < nc:
            raise ConfigError(f"--channel {channel} is invalid for {img.path} with {nc} channels; valid: 0..{nc - 1}")

        class _C:
            shape = arr.shape[1:]

            def __getitem__(self, key: Any) -> Any:
                return arr[(channel, *key)]

        return _C()
    return arr


def sample_roi_origins(img: Any, n: int, size: int, seed: int, tissue_threshold: float = 0.08,
                       min_tissue: float = 0.5) -> list[tuple[int, int]]:
    """N seeded ROI corners (y0, x0) whose size×size footprint is ≥ `min_tissue` tissue.

    Tissue: `zse.pipeline.plan.tissue_map` (brightfield: a low-resolution z-mean darker than
    (1 − threshold) × the background level, the 99.5th percentile). Positions are drawn uniformly
    with `numpy.random.default_rng(seed)`, without repeats; InputError when fewer than N are found.
    """
    from zse.pipeline.plan import tissue_map

    nz, ny, nx = img.meta.shape_zyx
    if size > ny or size > nx:
        raise ConfigError(f"--roi-size {size} is larger than the volume's y, x size ({ny}, {nx}); valid: ≤ {min(ny, nx)}")
    positions = (ny - size + 1) * (nx - size + 1)
    if n > positions:
        raise ConfigError(f"--rois {n} is more than the {positions} distinct {size}×{size} px ROI positions in "
                          f"{img.path} ({ny}×{nx} px in y, x); valid: 1..{positions}")
    tm = tissue_map(img, threshold=tissue_threshold)
    fy, fx = tm.factor_yx
    rng = np.random.default_rng(seed)
    found: list[tuple[int, int]] = []
    tried = 0
    while len(found) < n and tried < 500 * n:
        tried += 1
        y0 = int(rng.integers(0, ny - size + 1))
        x0 = int(rng.integers(0, nx - size + 1))
        ly0, ly1 = int(np.floor(y0 / fy)), max(int(np.floor(y0 / fy)) + 1, int(np.ceil((y0 + size) / fy)))
        lx0, lx1 = int(np.floor(x0 / fx)), max(int(np.floor(x0 / fx)) + 1, int(np.ceil((x0 + size) / fx)))
        frac = float(tm.mask[ly0:ly1, lx0:lx1].mean()) if tm.mask[ly0:ly1, lx0:lx1].size else 0.0
        if frac >= min_tissue and (y0, x0) not in found:
            found.append((y0, x0))
    if len(found) < n:
        raise InputError(
            f"{img.path}: found {len(found)} of {n} ROIs of {size}×{size} px with ≥ {min_tissue:.0%} tissue "
            f"after {tried} draws; lower --rois or --roi-size, or check that tissue is darker than the background"
        )
    return found


def load_ngff_rois(input_path: Path, output_path: Path | None, gt_path: Path | None, *, rois: int | None,
                   roi_size: int, seed: int, channel: int = 0, max_whole_px: int = 2048 * 2048) -> tuple[list[Roi], dict[str, Any]]:
    """ROIs from OME-Zarr images (see module doc). Without `rois` the whole stack is one ROI."""
    src = _open(input_path, "INPUT")
    x_arr = _level0_zyx(src, channel)
    shape = tuple(x_arr.shape)
    others: dict[str, Any] = {}
    for key, p in (("y", output_path), ("gt", gt_path)):
        if p is None:
            continue
        img = _open(p, "OUTPUT" if key == "y" else "--ground-truth")
        arr = _level0_zyx(img, channel)
        if tuple(arr.shape) != shape:
            raise InputError(f"{p}: (Z, Y, X) shape {tuple(arr.shape)} differs from INPUT's {shape}; they must be equal")
        if np.dtype(img.meta.dtype) != np.dtype(src.meta.dtype):
            raise InputError(f"{p}: dtype {img.meta.dtype} differs from INPUT's {src.meta.dtype}; they must be equal")
        others[key] = arr
    if rois is None:
        if shape[1] * shape[2] > max_whole_px:
            raise ConfigError(f"INPUT is {shape[1]}×{shape[2]} px in y, x: too large to evaluate whole; pass --rois N")
        origins = [(0, 0)]
        size_y, size_x = shape[1], shape[2]
    else:
        origins = sample_roi_origins(src, rois, roi_size, seed)
        size_y = size_x = roi_size
    out = []
    for k, (y0, x0) in enumerate(origins):
        sl = (slice(None), slice(y0, y0 + size_y), slice(x0, x0 + size_x))
        out.append(Roi(
            name=f"roi_{k:03d}",
            x=np.asarray(x_arr[sl]),
            y=np.asarray(others["y"][sl]) if "y" in others else None,
            gt=np.asarray(others["gt"][sl]) if "gt" in others else None,
            origin=(y0, x0),
        ))
    info = {"layout": "ome-zarr", "shape_zyx": shape, "dtype": src.meta.dtype, "voxel_size_um": src.meta.voxel_size_um,
            "channel": channel if src.meta.axes == "czyx" else None}
    return out, info


def load_npz_rois(folder: Path, *, rois: int | None, seed: int) -> tuple[list[Roi], dict[str, Any]]:
    """ROIs from a ZSE-GAN dataset folder: every stack, or `rois` of them chosen with
    `default_rng(seed).choice` (without replacement, in file order)."""
    from zse.models.metrics.paper import load_npz_stack, npz_files

    files = npz_files(folder)
    if rois is not None:
        if rois > len(files):
            raise ConfigError(f"--rois {rois}: {folder} holds only {len(files)} stacks; valid: 1..{len(files)}")
        idx = np.sort(np.random.default_rng(seed).choice(len(files), size=rois, replace=False))
        files = [files[i] for i in idx]
    out = [Roi(name=f.stem, x=load_npz_stack(f)) for f in files]
    shapes = {r.x.shape for r in out}
    dtypes = {r.x.dtype.name for r in out}
    if len(shapes) != 1 or len(dtypes) != 1:
        raise InputError(f"{folder}: stacks differ in shape {sorted(shapes)} or dtype {sorted(dtypes)}; they must be equal")
    info = {"layout": "npz", "shape_zyx": out[0].x.shape, "dtype": out[0].x.dtype.name, "voxel_size_um": (1.0, 1.0, 1.0),
            "files": [f.name for f in files]}
    return out, info


def apply_model(rois: list[Roi], model: str, device: str = "cpu") -> dict[str, Any]:
    """Set each ROI's y to the model's output: uint → [-1, 1] (`zse.pipeline.intensity.to_unit`),
    predictor on (1, 1, Z, Y, X), back with `from_unit`. Returns the model's provenance."""
    import torch

    from zse.models.registry import resolve
    from zse.pipeline.intensity import from_unit, to_unit

    factory = resolve(model)
    predictor = factory.build(device)
    for r in rois:
        t = to_unit(torch.from_numpy(np.ascontiguousarray(r.x)), r.x.dtype)[None, None].to(device)
        with torch.inference_mode():
            out = predictor(t)
        if tuple(out.shape) != tuple(t.shape):
            raise InputError(f"model {model!r} returned shape {tuple(out.shape)} for input {tuple(t.shape)}; it must keep the shape")
        y = from_unit(out[0, 0].cpu(), r.x.dtype).numpy()
        r.y = y.astype(r.x.dtype)
    return {"spec": model, "name": getattr(factory, "name", model), "checksum": getattr(factory, "checksum", None),
            "device": device}


# ------------------------------------------------------------------------------------------ metrics


def _seam_lines(origin: tuple[int, int] | None, shape_yx: tuple[int, int], tile: int, overlap: int,
                margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Lattice lines (anchored at the volume origin) falling inside a ROI, in ROI coordinates."""
    from zse.models.metrics import lattice_lines

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


def evaluate_rois(rois: list[Roi], *, focal: int | None = None, fm_t: float = 1000.0, section_step: int = 4,
                  tile: int = 128, overlap: int = 32, margin: int = 0, data_range: float | None = None) -> dict[str, Any]:
    """Every metric on every ROI; tables averaged over ROIs. Returns a JSON-ready dict of numpy values
    with keys focal_plane, planes, sections, reference, summary, gradient_histograms, per_roi."""
    from zse.models import metrics as M

    if not rois:
        raise InputError("no ROIs to evaluate")
    x0 = rois[0].x
    L = float(data_range) if data_range is not None else float(np.iinfo(x0.dtype).max)
    has_y = rois[0].y is not None
    has_gt = rois[0].gt is not None
    nz = x0.shape[0]
    curve = np.mean([M.focus_curve(r.x) for r in rois], axis=0)
    f = int(np.argmax(curve)) if focal is None else int(focal)
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
        t = M.plane_table(r.x, r.y, focal=f, fm_t=fm_t, data_range=L)
        t["plane_1based"] = t["plane"] + 1
        t["dom_x"] = np.array([M.delta_dom(p, data_range=L) for p in r.x])
        if r.y is not None:
            t["dom_y"] = np.array([M.delta_dom(p, data_range=L) for p in r.y])
        plane_tabs.append(t)
        for o in ("xz", "yz"):
            sec_tabs[o].append(M.section_table(r.x, r.y, orientation=o, fm_t=fm_t, data_range=L, step=section_step))
        if has_gt:
            ref_tabs["xy"].append(M.reference_table(r.y, r.gt, data_range=L, orientation="xy"))
            for o in ("xz", "yz"):
                ref_tabs[o].append(M.reference_table(r.y, r.gt, data_range=L, orientation=o, step=section_step))
        for key, vol in (("x (all planes)", r.x), (f"x (in-focus plane {f})", r.x[f:f + 1]), ("y (all planes)", r.y),
                         ("ground truth (all planes)", r.gt)):
            if key in hists and vol is not None:
                hs = [M.gradient_histogram(p, bins=64, max_value=hmax) for p in vol]
                edges = hs[0][1]
                hists[key].append(np.mean([h[0] for h in hs], axis=0))
        ly, lx = _seam_lines(r.origin, r.x.shape[1:], tile, overlap, margin)
        sx = M.spectral_coverage(r.x)
        row: dict[str, Any] = {
            "name": r.name,
            "origin_y": r.origin[0] if r.origin else None,
            "origin_x": r.origin[1] if r.origin else None,
            "focal_plane_own": int(np.argmax(M.focus_curve(r.x))),
            "fm_x_focal": float(t["fm_x"][f]),
            "piqe_x_focal": float(t["piqe_x"][f]),
            "seam_x": M.seam_score(r.x, ly, lx) if (len(ly) or len(lx)) else float("nan"),
            "spectral_x_total": sx.total, "spectral_x_lateral": sx.lateral, "spectral_x_axial": sx.axial,
            "noise_sigma_x": sx.noise_sigma,
        }
        if has_y:
            sy = M.spectral_coverage(r.y, noise_sigma=sx.noise_sigma)
            row.update({
                "ssim_x_y_mean": float(np.mean(t["ssim_x_y"])),
                "ssim_y_xf_mean": float(np.mean(t["ssim_y_xf"])),
                "fm_y_mean": float(np.mean(t["fm_y"])),
                "piqe_y_mean": float(np.mean(t["piqe_y"])),
                "mutual_information": M.mutual_information(r.x, r.y),
                "hellinger": M.hellinger(r.x, r.y),
                "seam_y": M.seam_score(r.y, ly, lx) if (len(ly) or len(lx)) else float("nan"),
                "spectral_y_total": sy.total, "spectral_y_lateral": sy.lateral, "spectral_y_axial": sy.axial,
            })
        if has_gt:
            row.update({"ssim_gt_mean": float(np.mean(ref_tabs["xy"][-1]["ssim"])),
                        "psnr_gt": M.psnr(r.y, r.gt, data_range=L), "rmse_gt": M.rmse(r.y, r.gt),
                        "pearson_gt": M.pearson(r.y, r.gt)})
        per_roi.append(row)

    planes = _mean_table(plane_tabs)
    order = ["plane", "plane_1based", "ssim_x_xf", "ssim_x_y", "ssim_y_xf", "fm_x", "fm_y", "piqe_x", "piqe_y",
             "grad_x", "grad_y", "dom_x", "dom_y"]
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


# ------------------------------------------------------------------------------------------ report


def check_report_dir(report_dir: Path, inputs: dict[str, Path | None]) -> None:
    """Refuse a --report folder that is a file, or that is, holds or lies inside one of `inputs`
    ({label: path}, e.g. INPUT, OUTPUT, --ground-truth, --model; None entries skipped): the report must
    never write into (or around) what is measured. Paths are compared resolved, so through symbolic
    links. Raises `ConfigError` with one line; nothing is written.
    """
    if report_dir.exists() and not report_dir.is_dir():
        raise ConfigError(f"--report {report_dir} exists and is not a folder; give a new or existing folder for the report")
    rep = report_dir.resolve()
    for label, path in inputs.items():
        if path is None or not path.exists():
            continue
        src = path.resolve()
        if rep == src:
            how = "is"
        elif src in rep.parents:
            how = "lies inside"
        elif rep in src.parents:
            how = "holds"
        else:
            continue
        raise ConfigError(
            f"--report {report_dir} {how} {label} {path}; the report would be written among the inputs: "
            "give a folder of its own, outside INPUT, OUTPUT and --ground-truth (e.g. --report report/)"
        )


def write_report(results: dict[str, Any], rois: list[Roi], report_dir: Path, info: dict[str, Any], *,
                 max_views: int = 3) -> list[Path]:
    """Write every report file (see module doc) into `report_dir`; returns their paths."""
    from zse.workflows import report as R

    report_dir.mkdir(parents=True, exist_ok=True)
    f = results["focal_plane"]
    files: list[Path] = []
    images: list[tuple[str, str]] = []
    tables: list[tuple[str, str]] = []
    files += R.write_table(report_dir / "planes", results["planes"],
                           f"Per xy plane, mean of {len(rois)} ROI(s); in-focus plane x_f = {f} (0-based)")
    tables.append(("Per xy plane (paper Tables 1–3)", "planes.md"))
    for o, t in results["sections"].items():
        files += R.write_table(report_dir / f"sections_{o}", t, f"Per {o} section, mean of {len(rois)} ROI(s)")
        tables.append((f"Per {o} section", f"sections_{o}.md"))
    if results["reference"] is not None:
        for o, t in results["reference"].items():
            files += R.write_table(report_dir / f"reference_{o}", t, f"Full-reference metrics per {o} {'plane' if o == 'xy' else 'section'}")
            tables.append((f"Output vs ground truth per {o}", f"reference_{o}.md"))
    per = results["per_roi"]
    num_keys = [k for k in per[0] if k != "name"]
    per_tab = {"roi": np.arange(len(per), dtype=float)}
    per_tab.update({k: np.array([np.nan if p[k] is None else float(p[k]) for p in per]) for k in num_keys})
    files += R.write_table(report_dir / "per_roi", per_tab, "Per ROI (roi = index into metrics.json per_roi)")
    tables.append(("Per ROI", "per_roi.md"))

    planes = results["planes"]
    files.append(R.plot_curves(report_dir / "curves.png", planes,
                               [("SSIM", ["ssim_x_xf", "ssim_y_xf", "ssim_x_y"]), ("FM", ["fm_x", "fm_y"]),
                                ("PIQE (lower is better)", ["piqe_x", "piqe_y"]), ("mean |∇I|", ["grad_x", "grad_y"]),
                                ("ΔDoM", ["dom_x", "dom_y"])],
                               xkey="plane", focal=f, title="input x vs output y per plane (dashed: x at the in-focus plane)"))
    images.append(("Per-plane curves", "curves.png"))
    sec = results["sections"]
    for o in ("xz", "yz"):
        files.append(R.plot_curves(report_dir / f"sections_{o}.png", sec[o],
                                   [("SSIM(x, y)", ["ssim_x_y"]), ("FM", ["fm_x", "fm_y"]), ("PIQE", ["piqe_x", "piqe_y"]),
                                    ("mean |∇I|", ["grad_x", "grad_y"])],
                                   xkey="index", xlabel=f"{o} section index", title=f"{o} sections"))
        images.append((f"{o} sections", f"sections_{o}.png"))
    gh = results["gradient_histograms"]
    files.append(R.plot_histograms(report_dir / "gradient_hist.png", gh["edges"], {k: v for k, v in gh.items() if k != "edges"}))
    images.append(("Gradient-magnitude histograms", "gradient_hist.png"))
    if results["reference"] is not None:
        ref = results["reference"]["xy"]
        files.append(R.plot_curves(report_dir / "reference.png", ref,
                                   [("SSIM", ["ssim"]), ("PSNR (dB)", ["psnr"]), ("RMSE", ["rmse"]), ("Pearson r", ["pearson"])],
                                   xkey="index", focal=f, title="output vs ground truth per plane"))
        images.append(("Output vs ground truth", "reference.png"))
    vmax = float(np.iinfo(rois[0].x.dtype).max)
    for k, r in enumerate(rois[:max_views]):
        vols = {"input x": r.x}
        if r.y is not None:
            vols["output y"] = r.y
        if r.gt is not None:
            vols["ground truth"] = r.gt
        name = f"roi_{k:03d}.png"
        files.append(R.plot_orthoviews(report_dir / name, vols, f, voxel_size_um=tuple(info.get("voxel_size_um") or (1, 1, 1)),
                                       vmax=vmax, title=f"{r.name} origin {r.origin}"))
        images.append((f"Orthogonal views: {r.name}", name))

    json_path = report_dir / "metrics.json"
    listed = sorted({p.name for p in files} | {"metrics.json", "index.html"})
    doc = {"info": info, **results, "files": listed}
    R.write_json(json_path, doc)
    files.append(json_path)
    files.append(R.write_index(report_dir / "index.html", title="zse evaluate", info=info, summary=results["summary"],
                               images=images, tables=tables, files=listed))
    return files


# ------------------------------------------------------------------------------------------ CLI


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="[OUTPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path), help="Folder to write the report into.")
@click.option("--ground-truth", "gt_path", type=click.Path(path_type=Path), default=None,
              help="OME-Zarr ground truth: adds SSIM, PSNR, RMSE, Pearson of OUTPUT against it.")
@click.option("--rois", type=int, default=None, help="Sample N tissue ROIs (default: whole stacks; every .npz stack).")
@click.option("--roi-size", type=int, default=DEFAULT_ROI, show_default=True, help="ROI side in y, x (pixels).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the ROI sampling.")
@click.option("--model", "model", default=None, help="Apply this model (registry name or file) to each ROI of INPUT to get the output.")
@click.option("--device", default="cpu", show_default=True, help="Device for --model.")
@click.option("--focal", type=int, default=None, help="In-focus plane (0-based); default: the sharpest by mean |∇I|.")
@click.option("--fm-t", type=float, default=1000.0, show_default=True, help="FM threshold divisor T (paper 1000; ≈150 matches its values).")
@click.option("--section-step", type=int, default=4, show_default=True, help="Evaluate every n-th xz/yz section.")
@click.option("--channel", type=int, default=0, show_default=True, help="Channel of czyx images.")
@click.option("--tile", type=int, default=128, show_default=True, help="Tile lattice of the seam score: tile side.")
@click.option("--overlap", type=int, default=32, show_default=True, help="Tile lattice of the seam score: overlap.")
@click.option("--margin", type=int, default=0, show_default=True, help="Tile lattice of the seam score: margin.")
def evaluate(input_path: Path, output_path: Path | None, report_dir: Path, gt_path: Path | None, rois: int | None,
             roi_size: int, seed: int, model: str | None, device: str, focal: int | None, fm_t: float, section_step: int,
             channel: int, tile: int, overlap: int, margin: int) -> None:
    """Measure INPUT (and OUTPUT or --model's output) with the zse metric library; write a report to --report."""
    t0 = time.time()
    if rois is not None and rois < 1:
        raise ConfigError(f"--rois {rois} is invalid; valid: an integer ≥ 1")
    if roi_size < 16:
        raise ConfigError(f"--roi-size {roi_size} is invalid; valid: an integer ≥ 16")
    if section_step < 1:
        raise ConfigError(f"--section-step {section_step} is invalid; valid: an integer ≥ 1")
    if output_path is not None and model is not None:
        raise ConfigError("give either OUTPUT or --model, not both")
    check_report_dir(report_dir, {"INPUT": input_data_dir(input_path), "OUTPUT": output_path,
                                  "--ground-truth": gt_path, "--model": Path(model) if model is not None else None})
    if not input_path.exists():
        raise InputError(f"INPUT {input_path}: no such file or directory")
    if is_npz_dataset(input_path):
        if output_path is not None or gt_path is not None:
            raise ConfigError("with a .npz dataset INPUT, pass --model M (OUTPUT and --ground-truth are for OME-Zarr inputs)")
        roi_list, info = load_npz_rois(input_path, rois=rois, seed=seed)
    else:
        roi_list, info = load_ngff_rois(input_path, output_path, gt_path, rois=rois, roi_size=roi_size, seed=seed,
                                        channel=channel)
    if gt_path is not None and output_path is None and model is None:
        raise ConfigError("--ground-truth needs an output to compare: pass OUTPUT or --model")
    if model is not None:
        info["model"] = apply_model(roi_list, model, device)
    info.update({"input": str(input_path), "output": str(output_path) if output_path else None,
                 "ground_truth": str(gt_path) if gt_path else None, "rois_requested": rois, "roi_size": roi_size,
                 "seed": seed, "command": " ".join(sys.argv)})
    results = evaluate_rois(roi_list, focal=focal, fm_t=fm_t, section_step=section_step, tile=tile, overlap=overlap,
                            margin=margin)
    info["seconds"] = round(time.time() - t0, 2)
    try:
        write_report(results, roi_list, report_dir, info)
    except OSError as exc:
        raise OutputError(f"cannot write the report into {report_dir}: {exc.strerror or exc}"
                          f"{f' ({exc.filename})' if exc.filename else ''}") from None
    s = results["summary"]
    click.echo(f"zse evaluate: {len(roi_list)} ROI(s), in-focus plane {s['focal_plane']} → {report_dir / 'index.html'}", err=True)
