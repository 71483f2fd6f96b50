"""z super-resolution (×sz in z) of widefield z-scans: `dualgan-3d` against interpolation, on held-out simulator
phantoms with a fine-step truth (issue 16).

    python benchmarks/zsr.py --out benchmarks/results/zsr.md [--model models/weights/dualgan-3d.pt]

Scenes (`zse.models.zsr_data.scene_pair`, the imaging of the dualgan-3d-cpu preset: NA 0.75, 1 µm focal
step, 29 planes, 20 000 e⁻ shot noise + 0.5 grey-level read noise, 8 bits): phantom seeds 1…n (training
uses seeds ≥ 300000, validation 299999). Input: the noisy LR z-scan (Z planes); truth: the noise-free
widefield z-scan of the same phantom at the fine step dz/sz (sz·Z planes), imaged at exactly the
positions where the generator's output planes lie (plane j at z0 + dz·((j + 0.5)/sz − 0.5)).
Methods, all at those positions:
- nearest: each LR plane repeated sz times (a floor);
- linear: `torch.nn.functional.interpolate(trilinear, align_corners=False)` (edge planes clamped);
- cubic spline: `scipy.ndimage.zoom(order=3, grid_mode=True, mode="nearest")` along z;
- sinc: trigonometric (FFT zero-padding) interpolation of the mirror-extended z-profile (period 2Z, so the
  ends do not wrap), evaluated at the output positions;
- dualgan-3d: the checkpoint's generator on the whole volume (output clamped to [−1, 1]).
Metrics against the truth (grey levels, range 255): PSNR over the volume; SSIM (Gaussian σ 1.5) mean over
x-z slices (every 4th row: where z resolution shows); z-profile error: relative L2 error of the per-plane
sharpness curve (mean forward-gradient magnitude, `zse.models.simulator.sharpness_curve`) ‖s − s_t‖/‖s_t‖;
and the RMS error of single-column z-profiles (grey levels). Means over scenes. One thread unless the
environment says otherwise.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def nearest(v: np.ndarray, sz: int) -> np.ndarray:
    return np.repeat(v, sz, axis=0)


def linear(v: np.ndarray, sz: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, scale_factor=(sz, 1, 1), mode="trilinear", align_corners=False)[0, 0].numpy()


def spline(v: np.ndarray, sz: int) -> np.ndarray:
    return ndi.zoom(v.astype(np.float64), (sz, 1, 1), order=3, grid_mode=True, mode="nearest").astype(np.float32)


def sinc_matrix(z: int, sz: int) -> np.ndarray:
    """(sz·Z, Z) weights of trigonometric interpolation of the even extension (period N = 2Z) at positions
    t_j = (j + 0.5)/sz − 0.5 (input-plane units): the periodic Dirichlet kernel with the Nyquist term as a cosine."""
    n = 2 * z
    t = (np.arange(sz * z) + 0.5) / sz - 0.5
    u = t[:, None] - np.arange(n)[None, :]
    k = np.arange(1, n // 2)
    d = (1.0 + 2.0 * np.cos(2 * np.pi * k[None, None, :] * u[..., None] / n).sum(-1) + np.cos(np.pi * u)) / n
    w = d[:, :z] + d[:, n - 1 - np.arange(z)]  # fold the mirror half back onto the planes it copies
    return w


def sinc(v: np.ndarray, sz: int) -> np.ndarray:
    w = sinc_matrix(v.shape[0], sz)
    return np.tensordot(w, v.astype(np.float64), axes=(1, 0)).astype(np.float32)


def model_method(path: Path) -> Callable[[np.ndarray, int], np.ndarray]:
    from zse.models.checkpoint import CheckpointFactory

    f = CheckpointFactory(path)
    pred = f.build("cpu")

    def run(v: np.ndarray, sz: int) -> np.ndarray:
        if f.scale_zyx != (sz, 1, 1):
            raise SystemExit(f"{path}: scale_zyx {f.scale_zyx} is not ({sz}, 1, 1)")
        x = torch.from_numpy(v.astype(np.float32) / 127.5 - 1.0)[None, None]
        y = pred(x)[0, 0].clamp(-1, 1).numpy()
        return (y + 1.0) * 127.5

    return run


def scores(y: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from zse.models.metrics.reference import psnr, ssim
    from zse.models.simulator import sharpness_curve

    y = np.clip(y, 0.0, 255.0).astype(np.float64)
    t = truth.astype(np.float64)
    xz = [ssim(y[:, r, :], t[:, r, :], data_range=255.0) for r in range(0, t.shape[1], 4)]
    s, st = sharpness_curve(y), sharpness_curve(t)
    col = np.sqrt(((y - t) ** 2).mean(axis=0))  # RMS error of each (y, x) column's z-profile
    return {"psnr_db": psnr(y, t, data_range=255.0), "ssim_xz": float(np.mean(xz)),
            "zprofile_sharpness_rel_err": float(np.linalg.norm(s - st) / np.linalg.norm(st)),
            "zprofile_rms_grey": float(col.mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "weights" / "dualgan-3d.pt"))
    ap.add_argument("--seeds", type=int, default=4, help="held-out phantoms (seeds 1..n)")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--preset", default="dualgan-3d-cpu", help="imaging parameters: this preset's dualgan section")
    ap.add_argument("--out", default=None, help="Markdown result (JSON beside it)")
    a = ap.parse_args(argv)

    from zse.models.config import load_config
    from zse.models.zsr_data import scene_pair

    cfg = load_config(a.preset)
    dc, sz = cfg.dualgan, int(cfg.arch.wdsr.scale_zyx[0])
    methods: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "nearest": nearest, "linear": linear, "cubic spline": spline, "sinc": sinc}
    if a.model and Path(a.model).is_file():
        methods["dualgan-3d"] = model_method(Path(a.model))
    per: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    secs: dict[str, float] = {m: 0.0 for m in methods}
    t0 = time.time()
    for seed in range(1, a.seeds + 1):
        lr, hr = scene_pair(seed, dc, sz, a.side)
        for name, fn in methods.items():
            t = time.perf_counter()
            y = fn(lr, sz)
            secs[name] += time.perf_counter() - t
            assert y.shape == hr.shape, (name, y.shape, hr.shape)
            per[name].append(scores(y, hr))
        print(f"seed {seed}: " + ", ".join(f"{m} {per[m][-1]['psnr_db']:.2f} dB" for m in methods), file=sys.stderr)
    keys = ["psnr_db", "ssim_xz", "zprofile_sharpness_rel_err", "zprofile_rms_grey"]
    summary = {m: {k: float(np.mean([r[k] for r in per[m]])) for k in keys} for m in methods}
    for m in methods:
        summary[m]["seconds_per_volume"] = secs[m] / a.seeds
    record = {
        "command": "python benchmarks/zsr.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.platform()}", "threads": os.environ.get("OMP_NUM_THREADS"),
        "model": a.model if "dualgan-3d" in methods else None, "preset": a.preset,
        "imaging": {"na": dc.na, "z_step_um": dc.z_step_um, "lr_planes": dc.lr_planes, "scale_z": sz,
                    "photons": dc.photons, "read_noise": dc.read_noise, "side": a.side, "seeds": list(range(1, a.seeds + 1))},
        "summary": summary, "per_seed": per, "wall_s": round(time.time() - t0, 1),
    }
    lines = ["| method | PSNR dB ↑ | SSIM x-z ↑ | sharpness-curve rel. error ↓ | column z-profile RMS (grey) ↓ | s / volume |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m, s in summary.items():
        lines.append(f"| {m} | {s['psnr_db']:.2f} | {s['ssim_xz']:.4f} | {s['zprofile_sharpness_rel_err']:.4f} | "
                     f"{s['zprofile_rms_grey']:.3f} | {s['seconds_per_volume']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(record, indent=1))
        im = record["imaging"]
        head = [f"# z super-resolution ×{sz}: dualgan-3d vs interpolation (benchmarks/zsr.py)", "",
                f"Command: `{record['command']}`  ", f"Date (UTC): {record['date_utc']}  ",
                f"Machine: {record['machine']}, {record['threads']} thread(s)  ",
                f"Model: {record['model']}  ",
                f"Scenes: held-out simulator phantoms, seeds {im['seeds']}, {im['lr_planes']} LR planes at "
                f"{im['z_step_um']} µm → {sz * im['lr_planes']} at {im['z_step_um'] / sz} µm, {a.side}×{a.side} px, NA "
                f"{im['na']}, noisy 8-bit input, noise-free truth ({record['wall_s']} s in all).", ""]
        out.write_text("\n".join(head) + "\n" + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
