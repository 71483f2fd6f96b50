"""`zse evaluate INPUT [OUTPUT] --report DIR`: image-quality report of a z-stack enhancement.

INPUT, OUTPUT and --ground-truth are OME-Zarr z-scans (axes zyx or czyx, same shape). INPUT may
instead be a ZSE-GAN dataset folder of `.npz` stacks (key `arr_0`, (Y, X, Z), z last; or its parent
with a `trainB/` folder): each stack is one ROI. The output volume y comes from OUTPUT, or from
applying `--model M` (`zse.models.registry.resolve`) to each ROI; with neither, only the input is
measured (the paper's input curves). Metrics: `zse.models.metrics` (definitions in docs/metrics.md).

This module is the command and its job (`evaluate`): it checks the options and the report folder, then
loads the ROIs (`zse.models.evaluation`), measures them (`zse.models.metrics.engine.evaluate_rois`) and
writes the report (`write_report`, with the tables and figures of `zse.workflows.report`).

Written into DIR: index.html (first the summary table of `zse.models.metrics.summary`: each metric in
words, its direction, input, output, truth, the change and a verdict; its glossary and a link to
docs/metrics.md; then the figures and the long tables), metrics.json (every number; the summary rows
under summary.table), planes.csv/.md (paper Tables 1–3 per xy plane, averaged over ROIs),
sections_xz.csv/.md and sections_yz.csv/.md (per vertical section), reference_{xy,xz,yz}.csv/.md with
--ground-truth (input vs truth beside output vs truth), per_roi.csv/.md, curves.png,
sections_{xz,yz}.png, gradient_hist.png, roi_NNN.png (orthogonal views, z at the physical aspect),
reference.png (with --ground-truth). The summary table is also printed to stderr at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from zse.errors import ConfigError, InputError, OutputError
from zse.models.evaluation import apply_model, input_data_dir, is_npz_dataset, load_ngff_rois, load_npz_rois
from zse.models.metrics.engine import Roi, evaluate_rois
from zse.models.metrics.summary import format_summary

DEFAULT_ROI = 128


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
            files += R.write_table(report_dir / f"reference_{o}", t, f"Input x and output y vs ground truth gt per {o} "
                                   f"{'plane' if o == 'xy' else 'section'}, mean of {len(rois)} ROI(s)")
            tables.append((f"Input and output vs ground truth per {o}", f"reference_{o}.md"))
    per = results["per_roi"]
    num_keys = [k for k in per[0] if k != "name"]
    per_tab = {"roi": np.arange(len(per), dtype=float)}
    per_tab.update({k: np.array([np.nan if p[k] is None else float(p[k]) for p in per]) for k in num_keys})
    files += R.write_table(report_dir / "per_roi", per_tab, "Per ROI (roi = index into metrics.json per_roi)")
    tables.append(("Per ROI", "per_roi.md"))

    planes = results["planes"]
    files.append(R.plot_curves(report_dir / "curves.png", planes,
                               [("SSIM", ["ssim_x_xf", "ssim_y_xf", "ssim_x_y"]), ("FM (higher: sharper)", ["fm_x", "fm_y", "fm_gt"]),
                                ("PIQE (lower is better)", ["piqe_x", "piqe_y", "piqe_gt"]),
                                ("mean |∇I| (higher: sharper)", ["grad_x", "grad_y", "grad_gt"]),
                                ("ΔDoM (higher: sharper)", ["dom_x", "dom_y", "dom_gt"])],
                               xkey="plane", focal=f,
                               title="input x, output y (and truth gt) per plane (dashed: x at the in-focus plane)"))
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
                                   [("SSIM (higher is better)", ["ssim_x_gt", "ssim_y_gt"]),
                                    ("PSNR dB (higher is better)", ["psnr_x_gt", "psnr_y_gt"]),
                                    ("RMSE (lower is better)", ["rmse_x_gt", "rmse_y_gt"]),
                                    ("Pearson r (higher is better)", ["pearson_x_gt", "pearson_y_gt"])],
                                   xkey="index", focal=f, title="input x and output y vs ground truth gt per plane"))
        images.append(("Input and output vs ground truth", "reference.png"))
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
    out = info.get("output") or (f"--model {info['model']['spec']}" if info.get("model") else None)
    lead = (f"{len(rois)} ROI(s) of {info.get('input')}; output: {out or 'none (input only)'}; ground truth: "
            f"{info.get('ground_truth') or 'none'}; in-focus plane {f} (0-based, the input's sharpest).")
    files.append(R.write_index(report_dir / "index.html", title="zse evaluate", info=info, summary=results["summary"],
                               images=images, tables=tables, files=listed, lead=lead))
    return files


# ------------------------------------------------------------------------------------------ job


def evaluate(input_path: Path, output_path: Path | None, report_dir: Path, *, gt_path: Path | None = None,
             rois: int | None = None, roi_size: int = DEFAULT_ROI, seed: int = 0, model: str | None = None,
             device: str = "cpu", focal: int | None = None, fm_t: float = 1000.0, section_step: int = 4,
             channel: int = 0, tile: int = 128, overlap: int = 32, margin: int = 0) -> dict[str, Any]:
    """Measure INPUT (and OUTPUT or `model`'s output on INPUT's ROIs) and write the report into
    `report_dir` (see module doc; the arguments are the command's options). Returns the engine's
    results (`evaluate_rois`). ConfigError / InputError for invalid options or inputs (nothing written),
    OutputError when the report cannot be written."""
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
    return results


# ------------------------------------------------------------------------------------------ CLI


@click.command("evaluate")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="[OUTPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path), help="Folder to write the report into.")
@click.option("--ground-truth", "gt_path", type=click.Path(path_type=Path), default=None,
              help="OME-Zarr ground truth: adds SSIM, PSNR, RMSE, Pearson of INPUT and of OUTPUT against it.")
@click.option("--rois", type=int, default=None, help="Sample N tissue ROIs (default: whole stacks; every .npz stack).")
@click.option("--roi-size", type=int, default=DEFAULT_ROI, show_default=True, help="ROI side in y, x (pixels).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the ROI sampling.")
@click.option("--model", "model", default=None, help="Apply this model (registry name or file) to each ROI of INPUT to get the output.")
@click.option("--device", default="cpu", show_default=True, help="Device for --model.")
@click.option("--focal", type=int, default=None,
              help="In-focus plane (0-based); default: the input's sharpest by mean |∇I| (as zse demo).")
@click.option("--fm-t", type=float, default=1000.0, show_default=True, help="FM threshold divisor T (paper 1000; ≈150 matches its values).")
@click.option("--section-step", type=int, default=4, show_default=True, help="Evaluate every n-th xz/yz section.")
@click.option("--channel", type=int, default=0, show_default=True, help="Channel of czyx images.")
@click.option("--tile", type=int, default=128, show_default=True, help="Tile lattice of the seam score: tile side.")
@click.option("--overlap", type=int, default=32, show_default=True, help="Tile lattice of the seam score: overlap.")
@click.option("--margin", type=int, default=0, show_default=True, help="Tile lattice of the seam score: margin.")
def evaluate_command(input_path: Path, output_path: Path | None, report_dir: Path, gt_path: Path | None,
                     rois: int | None, roi_size: int, seed: int, model: str | None, device: str, focal: int | None,
                     fm_t: float, section_step: int, channel: int, tile: int, overlap: int, margin: int) -> None:
    """Measure INPUT (and OUTPUT or --model's output) with the zse metric library; write a report to --report."""
    results = evaluate(input_path, output_path, report_dir, gt_path=gt_path, rois=rois, roi_size=roi_size, seed=seed,
                       model=model, device=device, focal=focal, fm_t=fm_t, section_step=section_step, channel=channel,
                       tile=tile, overlap=overlap, margin=margin)
    s = results["summary"]
    click.echo(format_summary(s["table"]), err=True)
    click.echo(f"zse evaluate: {s['n_rois']} ROI(s), in-focus plane {s['focal_plane']} (0-based); metrics explained in "
               f"docs/metrics.md → {report_dir / 'index.html'}", err=True)
