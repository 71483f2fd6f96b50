"""Plot a `zse train` loss log (train_log.csv) as PNG: generator terms and discriminator terms over steps.

Usage: python scripts/plot_losses.py RUN/train_log.csv OUT.png [--title TEXT]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    rows = list(csv.DictReader(a.log.open()))
    keys = [k for k in rows[0] if k not in ("step", "time_s", "lr_g")]
    panels = {"generator losses": [k for k in keys if not k.startswith(("d_", "val_"))],
              "discriminator losses": [k for k in keys if k.startswith("d_")],
              "validation": [k for k in keys if k.startswith("val_")]}
    panels = {t: ks for t, ks in panels.items() if any(r[k] not in ("", None) for r in rows for k in ks)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, ks) in zip(axes[0], panels.items(), strict=True):
        for key in ks:
            pts = [(int(r["step"]), float(r[key])) for r in rows if r[key] not in ("", None)]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key, lw=1, marker="." if len(pts) < 60 else None)
        ax.set_xlabel("step")
        if title != "validation":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(title)
    if a.title:
        fig.suptitle(a.title, fontsize=9)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)


if __name__ == "__main__":
    main()
