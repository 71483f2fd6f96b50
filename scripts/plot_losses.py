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
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, prefix in zip(axes, ("g_", "d_"), strict=True):
        for key in rows[0]:
            if key.startswith(prefix):
                ax.plot(steps, [float(r[key]) for r in rows], label=key, lw=1)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_title("generator losses")
    axes[1].set_title("discriminator losses")
    if a.title:
        fig.suptitle(a.title, fontsize=9)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)


if __name__ == "__main__":
    main()
