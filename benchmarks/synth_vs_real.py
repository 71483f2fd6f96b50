"""Real vs synthetic z-scans, plane by plane (docs/synth.md): focus, noise and brightness curves, and the
headroom of the optical-section truth.

    python benchmarks/synth_vs_real.py --out docs/synth

Real: the 200 Huron trainB ROIs (128 × 128 × 29). Synthetic: `synthesize((29, 512, 512), seed)` for seeds
0–3 (`huron` blur: NA 0.75, 1.4 µm), cut into 64 ROIs of 128 × 128; and 64 training pairs of the
`unet3d-gan-cpu` pair synthesiser at 128 px (the imaging ranges it trains on). Per plane: mean gradient
(focus), Immerkær noise σ, mean intensity; the truth's headroom: the input's SSIM to the truth on the
truth's tissue planes and on xz / yz sections. Writes real_vs_synth.png and numbers.json into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from zse.models import metrics as M
from zse.models.config import load_config
from zse.models.data import RoiDataset
from zse.models.npz import load_npz_stack
from zse.models.pairs import PairSynthesiser, content_pool
from zse.models.simulator import sharpness_curve, synthesize

REPO = Path(__file__).resolve().parents[1]
HURON = REPO.parent / "shared" / "data" / "zse-gan-huron"


def curves(vols: list[np.ndarray]) -> dict[str, list[float]]:
    return {
        "focus": np.mean([sharpness_curve(v) for v in vols], axis=0).round(2).tolist(),
        "noise": np.mean([[M.noise_sigma_immerkaer(p[None]) for p in v] for v in vols], axis=0).round(2).tolist(),
        "mean": np.mean([v.reshape(v.shape[0], -1).mean(axis=1) for v in vols], axis=0).round(1).tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "synth")
    args = ap.parse_args()
    t0 = time.time()
    real = [load_npz_stack(p) for p in sorted((HURON / "trainB").glob("*.npz"))]
    xs, gts = [], []
    for seed in range(4):
        x, gt = synthesize((29, 512, 512), seed, na=0.75, z_step_um=1.4)
        for y in range(0, 512, 128):
            for xx in range(0, 512, 128):
                xs.append(x[:, y : y + 128, xx : xx + 128])
                gts.append(gt[:, y : y + 128, xx : xx + 128])
    cfg = load_config("unet3d-gan-cpu")
    ds = RoiDataset.load(HURON, z_planes=29, val_fraction=0.2)
    pool = content_pool(ds.with_sharpest_plane_reals().sharp2d.numpy(), ds.sharp2d.numpy())
    # the pairs at 64 px (the content is 128 px; the synthesiser images a window twice the crop)
    ps = PairSynthesiser(cfg.data.pairs, 29, 64, pool).build(0)
    px, _ = ps.sample(np.random.default_rng(0), 64)
    pairs = [((p[0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8) for p in px]
    res = {"real": curves(real), "synth_huron": curves(xs), "pairs": curves(pairs), "truth_huron": curves(gts)}
    head = []
    for x, gt in zip(xs[:16], gts[:16], strict=True):
        s = M.synthetic_scores(x, gt, section_step=16)
        head.append([s["ssim_planes"], s["ssim_xz"], s["ssim_yz"]])
    res["headroom"] = dict(zip(["ssim_planes", "ssim_xz", "ssim_yz"], np.mean(head, axis=0).round(3).tolist(), strict=True))
    res["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "numbers.json").write_text(json.dumps(res, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    labels = {"real": "real Huron ROIs (200)", "synth_huron": "zse synth, huron blur (64 ROIs)",
              "pairs": "training pairs, input (64)", "truth_huron": "optical-section truth (huron)"}
    for ax, (key, title) in zip(axes, [("focus", "focus: mean gradient per plane"), ("noise", "Immerkær noise σ per plane"),
                                        ("mean", "mean intensity per plane")], strict=True):
        for name, c in res.items():
            if isinstance(c, dict) and key in c:
                ax.plot(c[key], marker=".", label=labels[name], ls="--" if name == "truth_huron" else "-")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("plane (0-based)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "real_vs_synth.png", dpi=80)
    print(json.dumps(res["headroom"]), res["seconds"], "s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
