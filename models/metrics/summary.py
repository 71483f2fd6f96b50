"""The summary table of `zse evaluate`: the few metrics a biologist reads first, declared in one place.

`SUMMARY_METRICS` names each metric in words, with its direction ("higher is better" or "lower is
better"), unit and the change below which input and output count as unchanged. `summary_rows` turns
the values of the input x, the output y and the ground truth gt into rows (JSON-ready dicts) with the
change and a one-line verdict; `format_summary` renders them as the text table printed at the end of
`zse evaluate`; the report's index.html and metrics.json (`summary.table`) show the same rows. Every
key is explained in docs/metrics.md ("The summary table").

Two kinds of rows:
- image measures (sharpness, PIQE, …): the value of each volume. With a ground truth, the direction of
  the sharpness and detail rows is "closer to truth": the output is better when its value is nearer
  the truth's than the input's is (a sharper-than-truth output is over-sharpened, not better). PIQE
  and the seam score keep their direction: PIQE rates a blank plane 100 (worst), so the truth's planes
  above the tissue make its value no target, and the truth has no tile lattice;
- comparisons with the truth (`reference=True`: SSIM, PSNR, RMSE, Pearson to gt): "input" is input vs
  truth and "output" is output vs truth, so a model that made things worse shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher is better", "lower is better"]
CLOSER = "closer to truth"


@dataclass(frozen=True)
class SummaryMetric:
    """One row of the summary table.

    key: the row's name in metrics.json and docs/metrics.md; words: the metric named for a reader;
    meaning: one line on what it measures; direction: without a truth (see module doc); unit: of the
    values; tol: the change within which the verdict is "unchanged" (absolute, in `unit`, or a
    fraction of the input's value when `relative`); reference: a comparison with the ground truth;
    truth_target: an image measure judged "closer to truth" when the truth's value is known (False:
    always by `direction`).
    """

    key: str
    words: str
    meaning: str
    direction: Direction
    unit: str
    tol: float
    relative: bool = False
    reference: bool = False
    truth_target: bool = True

    def tolerance(self, input_value: float) -> float:
        """The absolute change within which the verdict is "unchanged"."""
        return self.tol * abs(input_value) if self.relative else self.tol

    def tolerance_text(self) -> str:
        return f"±{self.tol:.0%}" if self.relative else f"±{self.tol:g}"


SUMMARY_METRICS: tuple[SummaryMetric, ...] = (
    SummaryMetric("sharpness", "Sharpness, all planes", "mean gradient magnitude |∇I| over every xy plane; blur lowers it",
                  "higher is better", "grey levels/px", 0.02, relative=True),
    SummaryMetric("sharpness_outer", "Sharpness, first and last plane",
                  "mean |∇I| of the outermost planes, the most out of focus: where enhancement should help most",
                  "higher is better", "grey levels/px", 0.02, relative=True),
    SummaryMetric("fm", "High spatial frequencies (FM)",
                  "share of Fourier coefficients above max/T per plane (De & Masilamani 2013), mean over planes",
                  "higher is better", "fraction", 0.02, relative=True),
    SummaryMetric("piqe", "Visible distortion (PIQE)",
                  "blockiness and noise in salient 16×16 blocks (Venkatanath et al. 2015), mean over planes; 0 best, 100 worst",
                  "lower is better", "score 0-100", 1.0, truth_target=False),
    SummaryMetric("dom", "Edge sharpness (ΔDoM)",
                  "√(Rx² + Ry²), Rx, Ry the shares of edge pixels sharp by the difference of medians (Kumar et al. 2012), mean over planes",
                  "higher is better", "0 to 1.41", 0.01),
    SummaryMetric("spectral", "3-D detail above noise",
                  "share of 3-D Fourier coefficients above the input's noise floor (lateral and axial detail)",
                  "higher is better", "fraction", 0.005),
    SummaryMetric("seam", "Tile seams (1 = none)",
                  "gradient across the tile lattice's lines ÷ gradient elsewhere; steps at tile borders raise it",
                  "lower is better", "ratio", 0.02, truth_target=False),
    SummaryMetric("ssim_truth", "Similarity to truth, xy planes (SSIM)",
                  "SSIM to the ground truth per xy plane, mean; 1 = identical", "higher is better", "0 to 1", 0.005,
                  reference=True),
    SummaryMetric("ssim_truth_xz", "Similarity to truth, xz sections (SSIM)",
                  "SSIM to the ground truth per vertical xz section, mean: the depth profile", "higher is better", "0 to 1",
                  0.005, reference=True),
    SummaryMetric("ssim_truth_yz", "Similarity to truth, yz sections (SSIM)",
                  "SSIM to the ground truth per vertical yz section, mean: the depth profile", "higher is better", "0 to 1",
                  0.005, reference=True),
    SummaryMetric("psnr_truth", "Signal-to-noise vs truth (PSNR)", "10·log10(L²/MSE) of the whole ROI against the truth",
                  "higher is better", "dB", 0.1, reference=True),
    SummaryMetric("rmse_truth", "Difference from truth (RMSE)", "root mean squared difference from the truth",
                  "lower is better", "grey levels", 0.01, relative=True, reference=True),
    SummaryMetric("pearson_truth", "Correlation with truth (Pearson r)", "linear correlation with the truth over all voxels",
                  "higher is better", "-1 to 1", 0.005, reference=True),
)

BY_KEY: dict[str, SummaryMetric] = {m.key: m for m in SUMMARY_METRICS}


def _value(v: Any) -> float | None:
    """A finite or infinite float; None for missing or NaN."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def verdict(metric: SummaryMetric, x: float, y: float, truth: float | None = None) -> tuple[str, str]:
    """(direction, verdict) of output value y against input value x: "better", "worse" or
    "unchanged within ±tol". Image measures with a `truth` value are judged by the distance to it."""
    tol = metric.tolerance(x)
    if truth is not None and metric.truth_target and not metric.reference:
        direction, gain = CLOSER, abs(x - truth) - abs(y - truth)
    elif metric.direction == "higher is better":
        direction, gain = metric.direction, (y - x if x != y else 0.0)
    else:
        direction, gain = metric.direction, (x - y if x != y else 0.0)
    if gain > tol:
        return direction, "better"
    if gain < -tol:
        return direction, "worse"
    return direction, f"unchanged within {metric.tolerance_text()}"


def summary_rows(values: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the summary table in `SUMMARY_METRICS` order.

    values: {key: {"input": x, "output": y or None, "truth": gt or None}} (for reference rows input and
    output are their comparisons with the truth, and truth is None). Keys not in `values`, and rows
    without an input or output value, are left out. Each row: key, metric (words), meaning, direction,
    unit, input, output, truth, change (output − input), change_pct (% of the input; relative rows),
    verdict (None without an output).
    """
    rows: list[dict[str, Any]] = []
    for m in SUMMARY_METRICS:
        if m.key not in values:
            continue
        v = values[m.key]
        x, y, t = _value(v.get("input")), _value(v.get("output")), _value(v.get("truth"))
        if x is None and y is None:
            continue
        direction: str = m.direction
        text = None
        change = change_pct = None
        if x is not None and y is not None:
            direction, text = verdict(m, x, y, t)
            change = 0.0 if x == y else y - x
            if m.relative and x != 0 and math.isfinite(change):
                change_pct = 100.0 * change / abs(x)
        elif t is not None and m.truth_target and not m.reference:
            direction = CLOSER
        rows.append({"key": m.key, "metric": m.words, "meaning": m.meaning, "direction": direction, "unit": m.unit,
                     "input": x, "output": y, "truth": t, "change": change, "change_pct": change_pct, "verdict": text})
    return rows


def fmt_value(v: float | None) -> str:
    """A value for the table: 4 significant digits, "∞" for infinity, "–" for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:.4g}"


def fmt_change(row: Mapping[str, Any]) -> str:
    """The change column: signed difference, with the percentage for relative rows."""
    c = row.get("change")
    if c is None or (isinstance(c, float) and not math.isfinite(c)):
        return "–"
    if c == 0:
        return "0"
    text = f"{c:+.3g}"
    if row.get("change_pct") is not None:
        text += f" ({row['change_pct']:+.1f}%)"
    return text


COLUMNS = ("metric", "better if", "input", "output", "truth", "change", "verdict")


def table_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of the summary table as strings; the truth column only when a row has a truth
    value or compares with the truth."""
    with_truth = any(r["truth"] is not None or BY_KEY[r["key"]].reference for r in rows)
    header = [c for c in COLUMNS if c != "truth" or with_truth]
    cells = []
    for r in rows:
        d = {"metric": f"{r['metric']} [{r['unit']}]", "better if": str(r["direction"]).replace(" is better", ""),
             "input": fmt_value(r["input"]), "output": fmt_value(r["output"]), "truth": fmt_value(r["truth"]),
             "change": fmt_change(r), "verdict": r["verdict"] or "–"}
        cells.append([d[c] for c in header])
    return header, cells


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The summary table as aligned plain text (one line per row, header first)."""
    header, cells = table_cells(rows)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    return "\n".join(lines)
