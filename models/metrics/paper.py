"""Reproduction of the ZSE-GAN paper's per-plane input curves (Table 3: FM(x), PIQE(x)) on the real ROIs.

Data: the ZSE-GAN Huron training split, trainB/*.npz, key `arr_0`, uint8 (Y, X, Z) = (128, 128, 29);
converted to zse's (Z, Y, X) on loading. Published anchors (paper Table 3, input x): FM(x) = 0.024 at
the focal plane x_15 (0-based 14) and 0.0074 at the outer planes, with the authors' code using T = 1000.

Run: `python -m zse.models.metrics.paper HURON_DIR [N]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from zse.errors import InputError
from zse.models.npz import load_npz_stack  # noqa: F401  (re-exported: callers import it from here)

from .focus import fm
from .piqe import piqe

PAPER_FM_FOCUS = 0.024
PAPER_FM_ENDS = 0.0074
PAPER_FOCAL_INDEX = 14


def npz_files(folder: str | Path) -> list[Path]:
    """The .npz stacks of a ZSE-GAN dataset folder (the folder itself or its trainB/), sorted."""
    f = Path(folder)
    files = sorted(f.glob("*.npz")) or sorted((f / "trainB").glob("*.npz"))
    if not files:
        raise InputError(f"{f}: no .npz stacks found (looked in {f} and {f / 'trainB'})")
    return files


def input_curves(huron_dir: str | Path, n: int = 40, ts: tuple[float, ...] = (1000.0, 150.0)) -> dict[str, np.ndarray]:
    """Mean per-plane FM(x) (for each divisor in `ts`) and PIQE(x) over `n` stacks (every k-th file,
    k = ⌊#files / n⌋, deterministic). Returns {"fm_T1000": (Z,), "fm_T150": (Z,), "piqe": (Z,),
    "n": ()} as float64."""
    files = npz_files(huron_dir)
    step = max(1, len(files) // max(1, int(n)))
    chosen = files[::step][: int(n)]
    fms: dict[float, list[list[float]]] = {t: [] for t in ts}
    pq: list[list[float]] = []
    for f in chosen:
        v = load_npz_stack(f)
        for t in ts:
            fms[t].append([fm(p, t) for p in v])
        pq.append([piqe(p) for p in v])
    out = {f"fm_T{t:g}": np.mean(np.asarray(fms[t]), axis=0) for t in ts}
    out["piqe"] = np.mean(np.asarray(pq), axis=0)
    out["n"] = np.asarray(float(len(chosen)))
    return out


def compare_with_paper(curves: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """For every FM curve: value at the paper's focal plane and mean of the two outer planes, their
    ratios to the published 0.024 / 0.0074 (scale factors) and the focus/ends contrast (paper: 3.24)."""
    res: dict[str, dict[str, float]] = {}
    for key, c in curves.items():
        if not key.startswith("fm_"):
            continue
        focus = float(c[PAPER_FOCAL_INDEX])
        ends = float((c[0] + c[-1]) / 2)
        res[key] = {
            "focus": focus,
            "ends": ends,
            "scale_focus": focus / PAPER_FM_FOCUS,
            "scale_ends": ends / PAPER_FM_ENDS,
            "contrast": focus / ends,
            "paper_contrast": PAPER_FM_FOCUS / PAPER_FM_ENDS,
        }
    return res


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual script
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m zse.models.metrics.paper HURON_DIR [N]")
        return
    curves = input_curves(args[0], int(args[1]) if len(args) > 1 else 40)
    np.set_printoptions(precision=4, suppress=True, linewidth=150)
    for k, v in curves.items():
        print(k, v)
    for key, res in compare_with_paper(curves).items():
        print(key, {a: round(b, 4) for a, b in res.items()})


if __name__ == "__main__":  # pragma: no cover
    main()
