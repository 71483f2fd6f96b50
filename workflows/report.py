"""Report helpers for `zse evaluate`: tables (CSV, Markdown), PNG plots, JSON and an index.html.

Tables are dicts of equal-length 1D numpy arrays (column name → values). Plots use matplotlib's Agg
backend (no display needed). Non-finite numbers are written as empty CSV cells, "–" in Markdown and
null in JSON.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Table = Mapping[str, np.ndarray]

#: Human-readable column titles (paper notation: x input, y output, x_f the in-focus input plane).
COLUMN_TITLES: dict[str, str] = {
    "plane": "plane (0-based)",
    "plane_1based": "plane k",
    "index": "section",
    "ssim_x_xf": "SSIM(x_k, x_f)",
    "ssim_x_y": "SSIM(x_k, y_k)",
    "ssim_y_xf": "SSIM(y_k, x_f)",
    "fm_x": "FM(x)",
    "fm_y": "FM(y)",
    "piqe_x": "PIQE(x)",
    "piqe_y": "PIQE(y)",
    "grad_x": "mean ∇x",
    "grad_y": "mean ∇y",
    "dom_x": "ΔDoM(x)",
    "dom_y": "ΔDoM(y)",
    "ssim": "SSIM(y, gt)",
    "psnr": "PSNR(y, gt) dB",
    "rmse": "RMSE(y, gt)",
    "pearson": "r(y, gt)",
}


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and Paths to JSON types; NaN and ±inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as strict JSON (no NaN tokens), indented."""
    path.write_text(json.dumps(jsonable(data), indent=1, allow_nan=False) + "\n")
    return path


def _fmt(v: float) -> str:
    if not math.isfinite(float(v)):
        return ""
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.6g}"


def write_table(stem: Path, table: Table, title: str = "") -> list[Path]:
    """Write `table` as `stem`.csv (raw column names) and `stem`.md (titled columns). Returns both paths."""
    cols = list(table)
    n = len(next(iter(table.values()))) if cols else 0
    csv_path = stem.with_suffix(".csv")
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for i in range(n):
            w.writerow([_fmt(table[c][i]) for c in cols])
    md_path = stem.with_suffix(".md")
    lines = [f"# {title}", ""] if title else []
    lines.append("| " + " | ".join(COLUMN_TITLES.get(c, c) for c in cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for i in range(n):
        lines.append("| " + " | ".join(_fmt(table[c][i]) or "–" for c in cols) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


_SAVE = {"pil_kwargs": {"compress_level": 1}}  # fast PNG encoding: the report is written once, read rarely


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    path: Path,
    table: Table,
    panels: Sequence[tuple[str, Sequence[str]]],
    *,
    xkey: str,
    focal: int | None = None,
    xlabel: str = "plane",
    title: str = "",
) -> Path:
    """One subplot per (ylabel, columns) panel, curves against `xkey`; a vertical dotted line at the
    in-focus plane and, for each x-curve, a dashed horizontal line at its value there."""
    plt = _plt()
    panels = [(lab, [c for c in cols if c in table]) for lab, cols in panels]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.4), squeeze=False)
    xs = np.asarray(table[xkey])
    for ax, (label, cols) in zip(axes[0], panels, strict=False):
        for c in cols:
            line = ax.plot(xs, table[c], marker=".", label=COLUMN_TITLES.get(c, c))[0]
            if focal is not None and c.endswith("_x") and focal in set(xs.tolist()):
                v = float(np.asarray(table[c])[list(xs).index(focal)])
                ax.axhline(v, ls="--", lw=0.8, color=line.get_color(), alpha=0.7)
        if focal is not None:
            ax.axvline(focal, ls=":", color="gray", label=f"in-focus plane {focal}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.85, wspace=0.32)
    fig.savefig(path, dpi=90, **_SAVE)
    plt.close(fig)
    return path


def plot_histograms(path: Path, edges: np.ndarray, hists: Mapping[str, np.ndarray], title: str = "") -> Path:
    """Gradient-magnitude histograms (density) on a log y axis, one line per entry."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    centres = 0.5 * (edges[1:] + edges[:-1])
    for name, h in hists.items():
        ax.plot(centres, np.maximum(h, 1e-12), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("|∇I| (intensity / pixel)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title or "gradient-magnitude histograms")
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.14, top=0.9)
    fig.savefig(path, dpi=90, **_SAVE)
    plt.close(fig)
    return path


def _grey_view(ax: Any, img: np.ndarray, title: str, aspect: float, vmax: float) -> None:
    """One grey-level view of a volume: no ticks, nearest-neighbour pixels, `aspect` = z / x scale."""
    ax.imshow(img, cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_orthoviews(
    path: Path,
    volumes: Mapping[str, np.ndarray],
    focal: int,
    *,
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0),
    vmax: float = 255.0,
    title: str = "",
) -> Path:
    """One row per volume (Z, Y, X): xy at the in-focus plane, the first and the last plane, the xz
    section at the centre row and the yz section at the centre column (z scaled by the voxel size)."""
    plt = _plt()
    names = list(volumes)
    fig, axes = plt.subplots(len(names), 5, figsize=(14, 2.9 * len(names)), squeeze=False)
    vz, vy, vx = voxel_size_um
    for r, name in enumerate(names):
        v = np.asarray(volumes[name])
        nz, ny, nx = v.shape
        views = [
            (v[focal], f"xy z={focal} (focus)", vy / vx),
            (v[0], "xy z=0", vy / vx),
            (v[-1], f"xy z={nz - 1}", vy / vx),
            (v[:, ny // 2, :], f"xz y={ny // 2}", vz / vx),
            (v[:, :, nx // 2], f"yz x={nx // 2}", vz / vy),
        ]
        for c, (img, lab, aspect) in enumerate(views):
            _grey_view(axes[r, c], img, f"{name}: {lab}", aspect, vmax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.9, wspace=0.05, hspace=0.2)
    fig.savefig(path, dpi=72, **_SAVE)
    plt.close(fig)
    return path


def plot_orthoview_columns(
    path: Path,
    volumes: Mapping[str, np.ndarray],
    focal: int,
    *,
    z_aspect: float = 1.0,
    vmax: float = 255.0,
    title: str = "",
) -> Path:
    """One column per volume (Z, Y, X) (e.g. input, output, truth), rows: xy at the in-focus plane, xy at
    plane 0 (above the tissue), the xz section at the centre row and the yz section at the centre
    column, with z stretched by `z_aspect` (z step / pixel, µm/µm) so vertical sections have their
    physical proportions."""
    plt = _plt()
    names = list(volumes)
    first = np.asarray(volumes[names[0]])
    nz, ny, nx = first.shape
    hz = nz * z_aspect
    fig, axes = plt.subplots(4, len(names), figsize=(3.4 * len(names), 3.4 * (2 + 2 * hz / max(ny, nx)) + 0.8),
                             squeeze=False, gridspec_kw={"height_ratios": [1, 1, hz / ny, hz / nx]})
    for c, name in enumerate(names):
        v = np.asarray(volumes[name])
        views = [(v[focal], f"xy z={focal} (in focus)", 1.0), (v[0], "xy z=0 (above the tissue)", 1.0),
                 (v[:, ny // 2, :], f"xz y={ny // 2} (z ×{z_aspect:g})", z_aspect),
                 (v[:, :, nx // 2], f"yz x={nx // 2} (z ×{z_aspect:g})", z_aspect)]
        for r, (img, lab, aspect) in enumerate(views):
            _grey_view(axes[r, c], img, f"{name}: {lab}", aspect, vmax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72, **_SAVE)
    plt.close(fig)
    return path


def plot_plane_curves(path: Path, curves: Mapping[str, Mapping[str, Any]], *, title: str = "") -> Path:
    """Side-by-side per-plane curves: `curves` = {panel title: {label: sequence over planes}} (NaN gaps allowed)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.3), squeeze=False)
    for ax, (panel, series) in zip(axes[0], curves.items(), strict=True):
        for label, values in series.items():
            ax.plot(np.asarray(values, dtype=float), marker=".", label=label)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("plane (0-based)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, **_SAVE)
    plt.close(fig)
    return path


def _summary_rows(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows += _summary_rows(v, key + ".")
        elif isinstance(v, float | int | np.floating | np.integer) and not isinstance(v, bool):
            rows.append((key, _fmt(float(v)) or "–"))
        elif isinstance(v, str | bool) or v is None:
            rows.append((key, html.escape(str(v))))
    return rows


def write_index(
    path: Path,
    *,
    title: str,
    info: Mapping[str, Any],
    summary: Mapping[str, Any],
    images: Sequence[tuple[str, str]],
    tables: Sequence[tuple[str, str]],
    files: Sequence[str],
) -> Path:
    """index.html: run information, the summary numbers, the images (caption, file) and the tables
    (caption, Markdown file: shown as a link plus the matching CSV's content as an HTML table)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "h2{margin-top:1.5em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Run</h2><table>",
    ]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _summary_rows(info)]
    parts.append("</table><h2>Summary</h2><table>")
    parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _summary_rows(summary)]
    parts.append("</table>")
    for caption, fname in images:
        parts.append(f"<h2>{html.escape(caption)}</h2><img src='{html.escape(fname)}' alt='{html.escape(caption)}'>")
    base = path.parent
    for caption, fname in tables:
        csv_name = Path(fname).with_suffix(".csv").name
        parts.append(f"<h2>{html.escape(caption)}</h2><p><a href='{html.escape(fname)}'>{html.escape(fname)}</a> · "
                     f"<a href='{html.escape(csv_name)}'>{html.escape(csv_name)}</a></p><table>")
        csv_path = base / csv_name
        if csv_path.exists():
            with csv_path.open() as f:
                rows = list(csv.reader(f))
            if rows:
                parts.append("<tr>" + "".join(f"<th>{html.escape(COLUMN_TITLES.get(c, c))}</th>" for c in rows[0]) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]]
        parts.append("</table>")
    parts.append("<h2>Files</h2><ul>")
    parts += [f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files]
    parts.append("</ul></body></html>")
    path.write_text("\n".join(parts) + "\n")
    return path
