"""Report helpers for `zse evaluate`: tables (CSV, Markdown), PNG plots, JSON and an index.html.

Tables are dicts of equal-length 1D numpy arrays (column name → values). Plots use matplotlib's Agg
backend (no display needed). Non-finite numbers are written as empty CSV cells, "–" in Markdown and
null in JSON. index.html opens with the summary table of `zse.models.metrics.summary` (the first
screen), a glossary of its rows and a link to docs/metrics.md; the figures and long tables follow.
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
    "fm_gt": "FM(gt)",
    "piqe_gt": "PIQE(gt)",
    "grad_gt": "mean ∇gt",
    "dom_gt": "ΔDoM(gt)",
    "ssim_x_gt": "SSIM(x, gt)",
    "ssim_y_gt": "SSIM(y, gt)",
    "psnr_x_gt": "PSNR(x, gt) dB",
    "psnr_y_gt": "PSNR(y, gt) dB",
    "rmse_x_gt": "RMSE(x, gt)",
    "rmse_y_gt": "RMSE(y, gt)",
    "pearson_x_gt": "r(x, gt)",
    "pearson_y_gt": "r(y, gt)",
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


def histogram_lines(edges: np.ndarray, hists: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The points `plot_histograms` draws: {name: (bin centres, densities)} with the empty bins (density
    ≤ 0 or not finite) dropped, so a log axis shows only what was observed. edges: (B + 1,), hists: (B,)."""
    e = np.asarray(edges, dtype=np.float64)
    centres = 0.5 * (e[1:] + e[:-1])
    out = {}
    for name, h in hists.items():
        hv = np.asarray(h, dtype=np.float64)
        keep = np.isfinite(hv) & (hv > 0)
        out[name] = (centres[keep], hv[keep])
    return out


def plot_histograms(path: Path, edges: np.ndarray, hists: Mapping[str, np.ndarray], title: str = "") -> Path:
    """Gradient-magnitude histograms (density) on a log y axis, one line per entry; empty bins are not
    drawn (`histogram_lines`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, (cx, hv) in histogram_lines(edges, hists).items():
        ax.plot(cx, hv, marker=".", ms=3, label=name)
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
    max_px: int = 256,
    section_px: int = 128,
) -> Path:
    """The report's orthogonal views: one column per volume (Z, Y, X) (input, output, truth); rows: xy
    at the in-focus plane, at the first and at the last plane, the xz section at the centre row and the
    yz section at the centre column, with z stretched to the physical aspect voxel z / voxel y (µm/µm,
    from the input's metadata). Volumes larger than `max_px` in y or x are shown by their central
    max_px × max_px window, and the vertical sections by their central `section_px` along x (xz) or y
    (yz), so that a stack a few dozen planes deep is not a thin strip."""
    first = np.asarray(next(iter(volumes.values())))
    nz, ny, nx = first.shape
    cy, cx = min(ny, max_px), min(nx, max_px)
    y0, x0 = (ny - cy) // 2, (nx - cx) // 2
    crop = {k: np.asarray(v)[:, y0:y0 + cy, x0:x0 + cx] for k, v in volumes.items()}
    if (cy, cx) != (ny, nx):
        title = f"{title}; central {cy}×{cx} px (y {y0}:{y0 + cy}, x {x0}:{x0 + cx})".lstrip("; ")
    vz, vy, _ = voxel_size_um
    return plot_orthoview_columns(path, crop, focal, z_aspect=float(vz) / float(vy), vmax=vmax, title=title,
                                  xy_planes=((0, "first plane"), (nz - 1, "last plane")), section_px=section_px)


def plot_orthoview_columns(
    path: Path,
    volumes: Mapping[str, np.ndarray],
    focal: int,
    *,
    z_aspect: float = 1.0,
    vmax: float = 255.0,
    title: str = "",
    xy_planes: Sequence[tuple[int, str]] = ((0, "above the tissue"),),
    section_px: int | None = None,
) -> Path:
    """One column per volume (Z, Y, X) (e.g. input, output, truth), rows: xy at the in-focus plane, xy at
    each of `xy_planes` ((plane, note); default plane 0, above the tissue), the xz section at the centre
    row and the yz section at the centre column, with z stretched by `z_aspect` (z step / pixel,
    µm/µm) so vertical sections have their physical proportions; `section_px`: show only the central
    section_px pixels of the sections' horizontal axis (None: all)."""
    plt = _plt()
    names = list(volumes)
    first = np.asarray(volumes[names[0]])
    nz, ny, nx = first.shape
    hz = nz * z_aspect
    sx = min(nx, section_px or nx)
    sy = min(ny, section_px or ny)
    x0, y0 = (nx - sx) // 2, (ny - sy) // 2
    rx = f", x {x0}:{x0 + sx}" if sx < nx else ""
    ry = f", y {y0}:{y0 + sy}" if sy < ny else ""
    ratios = [ny / nx] * (1 + len(xy_planes)) + [hz / sx, hz / sy]
    fig_h = 3.4 * sum(ratios) + 0.8
    fig, axes = plt.subplots(len(ratios), len(names), figsize=(3.4 * len(names), fig_h),
                             squeeze=False, gridspec_kw={"height_ratios": ratios})
    for c, name in enumerate(names):
        v = np.asarray(volumes[name])
        views = [(v[focal], f"xy z={focal} (in focus)", 1.0)]
        views += [(v[k], f"xy z={k} ({note})", 1.0) for k, note in xy_planes]
        views += [(v[:, ny // 2, x0:x0 + sx], f"xz y={ny // 2}{rx} (z ×{z_aspect:g})", z_aspect),
                  (v[:, y0:y0 + sy, nx // 2], f"yz x={nx // 2}{ry} (z ×{z_aspect:g})", z_aspect)]
        for r, (img, lab, aspect) in enumerate(views):
            _grey_view(axes[r, c], img, f"{name}: {lab}", aspect, vmax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.3 / fig_h) if title else None)
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


def metrics_docs() -> tuple[str, str | None]:
    """(name, file URI or None) of docs/metrics.md, the glossary of every metric: the URI when zse runs
    from a source checkout that holds it."""
    import zse

    doc = Path(zse.__file__).resolve().parents[1] / "docs" / "metrics.md"
    return "docs/metrics.md", (doc.as_uri() if doc.is_file() else None)


def summary_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary table of `zse.models.metrics.summary` as an HTML table (header: metric, better if,
    input, output, truth, change, verdict), verdicts coloured."""
    from zse.models.metrics.summary import table_cells

    header, cells = table_cells([dict(r) for r in rows])
    colour = {"better": "#d6f5d6", "worse": "#f8d0d0"}
    out = ["<table class='summary'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r, cell in zip(rows, cells, strict=True):
        bg = colour.get(str(r.get("verdict")), "")
        tds = [f"<td style='text-align:left' title='{html.escape(str(r['meaning']))}'>{html.escape(cell[0])}</td>"]
        tds += [f"<td>{html.escape(c)}</td>" for c in cell[1:-1]]
        tds.append(f"<td style='text-align:left;background:{bg}'>{html.escape(cell[-1])}</td>" if bg
                   else f"<td style='text-align:left'>{html.escape(cell[-1])}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def glossary_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per summary row: the metric in words, what it measures, its direction and unit, with a
    link to docs/metrics.md (the full definitions)."""
    name, href = metrics_docs()
    link = f"<a href='{html.escape(href)}'>{name}</a>" if href else f"{name} in the zse source"
    items = [f"<li><b>{html.escape(str(r['metric']))}</b> (<code>{html.escape(str(r['key']))}</code>, "
             f"{html.escape(str(r['unit']))}, {html.escape(str(r['direction']))}): {html.escape(str(r['meaning']))}</li>"
             for r in rows]
    return (f"<h2>What the rows mean</h2><p>Full definitions: {link}, section “The summary table”. Input and output "
            "are the ROIs' means; for the rows “… truth” they are input vs truth and output vs truth. With a truth, an "
            "image measure is judged by which of input and output lies closer to the truth's value.</p><ul>"
            + "".join(items) + "</ul>")


def write_index(
    path: Path,
    *,
    title: str,
    info: Mapping[str, Any],
    summary: Mapping[str, Any],
    images: Sequence[tuple[str, str]],
    tables: Sequence[tuple[str, str]],
    files: Sequence[str],
    lead: str = "",
) -> Path:
    """index.html: first the summary table (`summary["table"]`, rows of `zse.models.metrics.summary`)
    under a one-line `lead`, its glossary and the link to docs/metrics.md; then the images (caption,
    file), the tables (caption, Markdown file: shown as a link plus the matching CSV's content as an
    HTML table), the run information, every other summary number and the files."""
    rows = list(summary.get("table") or [])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "h2{margin-top:1.5em}table.summary{font-size:14px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if lead:
        parts.append(f"<p>{html.escape(lead)}</p>")
    if rows:
        parts += ["<h2>Summary</h2>", summary_html(rows), glossary_html(rows)]
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
                table_rows = list(csv.reader(f))
            if table_rows:
                parts.append("<tr>" + "".join(f"<th>{html.escape(COLUMN_TITLES.get(c, c))}</th>" for c in table_rows[0]) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table_rows[1:]]
        parts.append("</table>")
    parts.append("<h2>Run</h2><table>")
    parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _summary_rows(info)]
    parts.append("</table><h2>All summary numbers (metrics.json “summary”)</h2><table>")
    parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _summary_rows(summary)]
    parts.append("</table><h2>Files</h2><ul>")
    parts += [f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files]
    parts.append("</ul></body></html>")
    path.write_text("\n".join(parts) + "\n")
    return path
