"""Helpers of scripts/device/gpu_bench.sh (issue 15, item 4): enhance defaults, slide sizing and writing,
timed commands, and the summary (JSON + Markdown) of one GPU benchmark call.

    python scripts/device/gpu_bench.py defaults --model M --device D          # JSON: tile, overlap, margin, block, batch
    python scripts/device/gpu_bench.py size --sweep S.json --batch B --overlap OV --left SECONDS [--target 30]
    python scripts/device/gpu_bench.py slide --side N --out IN.zarr [--base 2048] [--z 29]
    python scripts/device/gpu_bench.py timed --out T.json -- CMD ...          # wall, CPU-s and peak RSS of CMD's tree
    python scripts/device/gpu_bench.py summary --logs DIR --out DIR           # gpu_bench.json + gpu_bench.md

Units: seconds, bytes, tiles (128 × 128 × Z unless said), tiles/s. Shapes (Z, Y, X). The slide is
`zse.models.testing.make_slide` (the bench's synthetic slide, ~60 % tissue) of a `base` × `base` square,
tiled to `side` × `side` lazily (dask) and written by `zse.pipeline.io.write.write_volume` with one writer
thread per core, so no 29 × side² float array is ever held: `zse bench` itself can only write a slide it
first builds whole in memory (make_slide of 29 × 8192² takes minutes and ~30 GB), hence `--input`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TISSUE_GUESS = 0.7
"""Fraction of lattice tiles with tissue on the tiled make_slide, for sizing only (the bench reports the real one)."""


def defaults(model: str, device: str) -> dict[str, Any]:
    """The lattice and batch `zse enhance --model M --device D` uses with no other option."""
    from zse.pipeline.options import make_options
    from zse.pipeline.run import lattice_params, tile_for
    from zse.workflows.bench.config import make_factory

    factory = make_factory(model)
    opts = make_options(device=device)
    overlap, margin = lattice_params(factory, opts)
    return {"model": model, "device": device, "tile": tile_for(factory, opts), "overlap": overlap, "margin": margin,
            "block": opts.resolved_block(), "batch": opts.resolved_batch()}


def tile_counts(slide: Path, model: str, device: str) -> dict[str, Any]:
    """Lattice tiles and tissue tiles (each counted once) `zse enhance` runs on `slide` with its defaults (as
    zse.workflows.bench.stages.pipeline_stage counts them: zse.pipeline.run.plan_run's lattice and tissue map)."""
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.run import plan_run
    from zse.workflows.bench.config import make_factory

    plan = plan_run(open_image(slide), make_factory(model), make_options(device=device))
    lattice = sum(1 for _ in plan.lattice.all_tiles())
    tissue = sum(plan.tissue is None or plan.tissue.tile_has_tissue(plan.lattice, i, j) for i, j in plan.lattice.all_tiles())
    return {"lattice_tiles": lattice, "tiles_run_unique": tissue, "tissue_fraction": tissue / max(1, lattice)}


def model_rate(sweep: dict[str, Any], batch: int, amp: str = "bf16") -> float | None:
    """Model-only tiles/s of `amp` (None for fp32) at `batch`, channels-last off, from a `zse bench --sweep` JSON."""
    rows = [r for r in sweep.get("sweep", []) if "tiles_per_s" in r and r.get("amp") == amp and not r.get("compile")]
    exact = [r["tiles_per_s"] for r in rows if r["batch"] == batch and not r["channels_last"]]
    return exact[0] if exact else (max(r["tiles_per_s"] for r in rows) if rows else None)


def size(rate: float | None, tile: int, overlap: int, left_s: float, target_s: float, *, fixed_s: float = 190.0,
         per_t: float = 7.0, min_side: int = 2048, max_side: int = 16384, step: int = 1024) -> dict[str, Any]:
    """Slide side (px) whose tissue tiles take `target_s` at the model-only `rate`, shrunk so that the rest of
    the call fits `left_s`: the remaining steps cost about fixed_s + per_t · T (T: model-only seconds of the
    slide; in-process pipeline twice, local-cuda once, MONAI on every lattice tile, at ~0.6 × model-only)."""
    if not rate:
        return {"side": min_side, "reason": "no model-only rate measured: smallest slide", "rate": None}
    t = max(5.0, min(target_s, (left_s - fixed_s) / per_t))
    stride = tile - overlap
    tiles_needed = t * rate / TISSUE_GUESS
    side = math.ceil(math.sqrt(tiles_needed) * stride / step) * step
    side = max(min_side, min(max_side, side))
    expect = (side / stride) ** 2 * TISSUE_GUESS / rate
    reason = "target" if t >= target_s else f"budget: {left_s:.0f} s left allows T ≈ {t:.0f} s"
    if side == max_side and expect < t:
        reason = f"capped at {max_side} px"
    return {"side": side, "rate": rate, "target_s": target_s, "planned_T_s": t, "expected_model_s": expect, "reason": reason}


def write_slide(side: int, out: Path, base: int = 2048, nz: int = 29, seed: int = 0) -> dict[str, Any]:
    """make_slide((nz, b, b)) with b = min(base, side), tiled lazily to (nz, side, side) and written as OME-Zarr."""
    import dask.array as da
    import numpy as np

    from zse.models.testing import make_slide
    from zse.pipeline.io.write import write_volume

    t0 = time.perf_counter()
    b = min(base, side)
    tile = da.from_array(make_slide((nz, b, b), seed=seed), chunks=(nz, 1024, 1024))
    reps = -(-side // b)
    vol = da.tile(tile, (1, reps, reps))[:, :side, :side]
    t1 = time.perf_counter()
    write_volume(out, vol, voxel_size_um=(1.0, 1.0, 1.0), progress=False, overwrite=True, threads=os.cpu_count() or 2)
    return {"side": side, "shape": [nz, side, side], "base": b, "bytes": int(nz) * side * side * np.dtype(np.uint8).itemsize,
            "make_slide_s": t1 - t0, "write_s": time.perf_counter() - t1, "path": str(out)}


def timed(cmd: list[str], out: Path) -> int:
    """Run `cmd` (output passed through); write its wall time, children CPU-s and peak RSS to `out`."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    rc = subprocess.call(cmd)
    t1 = time.time()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(json.dumps({"cmd": cmd, "rc": rc, "start": t0, "end": t1, "wall_s": t1 - t0,
                               "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                               "peak_rss_bytes_one_process": r1.ru_maxrss * 1024}, indent=2))
    return rc


# ------------------------------------------------------------------------------------------------ summary


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _steps(logs: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    f = logs / "steps.tsv"
    if f.exists():
        for line in f.read_text().splitlines():
            p = line.split("\t")
            if len(p) >= 6:
                out[p[0]] = {"start": float(p[1]), "end": float(p[2]), "rc": int(p[3]), "timeout_s": int(p[4]), "note": p[5]}
    return out


def _samples(logs: Path) -> list[tuple[float, float, float]]:
    """(epoch s, GPU utilisation %, memory used MiB) from nvsmi.csv: nvidia-smi's 'YYYY/MM/DD HH:MM:SS.mmm, UTIL, MEM'
    lines (local time, as the step timestamps)."""
    from datetime import datetime

    out = []
    f = logs / "nvsmi.csv"
    if f.exists():
        for line in f.read_text(errors="replace").splitlines():
            try:
                stamp, u, m = (v.strip() for v in line.split(",")[:3])
                t = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
                out.append((t, float(u), float(m)))
            except ValueError:
                continue
    return out


def _line_time(logs: Path, step: str, needle: str) -> float | None:
    """Epoch of the first line of LOGS/STEP.log (lines 'EPOCH text') containing `needle`."""
    f = logs / f"{step}.log"
    if not f.exists():
        return None
    for line in f.read_text(errors="replace").splitlines():
        head, _, text = line.partition(" ")
        if needle in text:
            try:
                return float(head)
            except ValueError:
                return None
    return None


def gpu_window(samples: list[tuple[float, float, float]], t0: float | None, t1: float | None) -> dict[str, Any] | None:
    """Mean utilisation (nvidia-smi's 'percent of the sample period a kernel ran') over [t0, t1], over the
    active span inside it (first to last sample with a kernel), and the peak memory used."""
    if t0 is None or t1 is None:
        return None
    win = [s for s in samples if t0 <= s[0] <= t1]
    if not win:
        return None
    active = [i for i, s in enumerate(win) if s[1] > 0]
    span = win[active[0] : active[-1] + 1] if active else []
    return {"window_s": t1 - t0, "samples": len(win), "util_mean_pct": sum(s[1] for s in win) / len(win),
            "active_span_s": (span[-1][0] - span[0][0]) if span else 0.0,
            "util_mean_active_pct": sum(s[1] for s in span) / len(span) if span else 0.0,
            "samples_ge_85_pct": sum(s[1] >= 85 for s in win) / len(win), "mem_used_peak_MiB": max(s[2] for s in win)}


def _enhance_log(logs: Path, step: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    f = logs / f"{step}.log"
    if not f.exists():
        return out
    for line in f.read_text(errors="replace").splitlines():
        text = line.partition(" ")[2]
        if text.startswith("wall time "):
            out["job_wall_s"] = float(text.split()[2])
        elif text.startswith("tiles: "):
            out["tiles_evaluated"] = int(text.split()[1])
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarize(logs: Path, out_dir: Path) -> dict[str, Any]:
    """Merge the step JSONs and logs of one call into gpu_bench.json and gpu_bench.md under `out_dir`."""
    steps, samples = _steps(logs), _samples(logs)
    meta = _load(logs / "meta.json") or {}
    sweep, main, monai, naive = (_load(logs / f"{n}.json") for n in ("sweep", "bench-bf16", "bench-monai", "bench-naive"))
    cuda_t = _load(logs / "enhance-cluster.json")
    slide = _load(logs / "slide.json")
    res: dict[str, Any] = {"meta": meta, "steps": steps, "slide": slide, "gpu_samples": len(samples)}
    model_rate_bf16 = (main or {}).get("model_only_tiles_per_s") or model_rate(sweep or {}, int(meta.get("batch") or 16))
    flops = (main or sweep or {}).get("flops_per_tile")
    inproc = ((main or {}).get("stages") or {}).get("pipeline-inproc") or {}
    counts = _load(logs / "tiles.json") or {}
    unique = counts.get("tiles_run_unique") or inproc.get("tiles_run_unique")
    lattice = counts.get("lattice_tiles") or inproc.get("lattice_tiles")
    res["tiles"] = {"lattice_tiles": lattice, "tiles_run_unique": unique}
    rows: dict[str, dict[str, Any]] = {}
    if model_rate_bf16:
        st = ((main or {}).get("stages") or {}).get("model") or {"note": "bf16 row of the sweep (the bench-bf16 step gave none)"}
        rows["model only, bf16"] = {"note": st.get("note"),"tiles_per_s": model_rate_bf16, "cpu_s_per_tile": st.get("cpu_s_per_tile"),
                                    "peak_device_mem_bytes": st.get("peak_device_mem_bytes"),
                                    "gpu": gpu_window(samples, steps.get("bench-bf16", {}).get("start"), _line_time(logs, "bench-bf16", "(a) model only"))}
    if inproc:
        t_a, t_b = _line_time(logs, "bench-bf16", "(a) model only"), _line_time(logs, "bench-bf16", "(b) pipeline-inproc")
        rows["pipeline, in process"] = {"wall_s": inproc["wall_s"], "tiles_run_per_s": inproc["tiles_run_per_s"],
                                        "lattice_tiles_per_s": inproc["lattice_tiles_per_s"],
                                        "cpu_s_per_tile": inproc["cpu_s"] / unique if inproc.get("cpu_s") and unique else None,
                                        "peak_host_bytes": inproc.get("peak_rss_total_bytes"),
                                        "peak_device_mem_bytes": inproc.get("peak_device_mem_bytes"), "gpu": gpu_window(samples, t_a, t_b),
                                        "note": "best of 2 runs; the GPU window holds both runs"}
    if cuda_t and cuda_t.get("rc") == 0 and unique:
        log = _enhance_log(logs, "enhance-cluster")
        wall = log.get("job_wall_s") or cuda_t["wall_s"]
        rows[f"pipeline, --cluster {meta.get('cluster', 'local-cuda')}"] = {
            "wall_s": wall, "process_wall_s": cuda_t["wall_s"], "tiles_run_per_s": unique / wall,
            "lattice_tiles_per_s": lattice / wall if lattice else None, "cpu_s_per_tile": cuda_t["cpu_s"] / unique,
            "peak_host_bytes": cuda_t["peak_rss_bytes_one_process"], "tiles_evaluated": log.get("tiles_evaluated"),
            "gpu": gpu_window(samples, cuda_t["start"], cuda_t["end"]),
            "note": "one cold run (cluster start and model load outside the job's wall time; inside the process's)"}
    for key, js, stage in (("MONAI sliding window", monai, "monai"), ("naive tile loop", naive, "naive")):
        st = ((js or {}).get("stages") or {}).get(stage)
        if st:
            step = "bench-monai" if stage == "monai" else "bench-naive"
            rows[key] = {"wall_s": st["wall_s"], "lattice_tiles_per_s": st["lattice_tiles_per_s"],
                         "cpu_s_per_tile": st["cpu_s"] / st["lattice_tiles"] if st.get("cpu_s") else None,
                         "peak_host_bytes": st.get("peak_rss_total_bytes"), "peak_device_mem_bytes": st.get("peak_device_mem_bytes"),
                         "slide_shape": js.get("slide_shape"),
                         "gpu": gpu_window(samples, steps.get(step, {}).get("start"), steps.get(step, {}).get("end"))}
    for r in rows.values():
        if flops and (r.get("tiles_per_s") or r.get("tiles_run_per_s")):
            r["tflops"] = flops * (r.get("tiles_per_s") or r["tiles_run_per_s"]) / 1e12
    res["rows"] = rows
    res["model_only_seconds_of_slide"] = unique / model_rate_bf16 if unique and model_rate_bf16 else None
    best = next((rows[k] for k in rows if k.startswith("pipeline, --cluster")), rows.get("pipeline, in process"))
    best_name = next((k for k in rows if k.startswith("pipeline, --cluster")), "pipeline, in process")
    monai_rate = (rows.get("MONAI sliding window") or {}).get("lattice_tiles_per_s")
    naive_rate = (rows.get("naive tile loop") or {}).get("lattice_tiles_per_s")
    if best:
        gpu = best.get("gpu") or {}
        res["targets"] = {"pipeline": best_name,
                          "end_to_end_over_model_only": {"value": _ratio(best.get("tiles_run_per_s"), model_rate_bf16), "target": 0.9},
                          "over_naive": {"value": _ratio(best.get("lattice_tiles_per_s"), naive_rate), "target": 3.0},
                          "over_monai": {"value": _ratio(best.get("lattice_tiles_per_s"), monai_rate), "target": 1.0},
                          "gpu_busy_pct": {"value": gpu.get("util_mean_active_pct"), "target": 85.0}}
        proj = (main or {}).get("projection") or {}
        section = proj.get("lattice_tiles") or _section_tiles(meta)
        if section and best.get("tiles_run_per_s"):
            tissue = counts.get("tissue_fraction") or (main or {}).get("tissue_fraction") or 1.0
            proj = {**proj, "lattice_tiles": section}
            res["projection_100k_150k"] = {"lattice_tiles": proj["lattice_tiles"], "tissue_fraction": tissue,
                                           "hours_per_gpu": proj["lattice_tiles"] * tissue / best["tiles_run_per_s"] / 3600,
                                           "hours_per_gpu_model_only": proj["lattice_tiles"] * tissue / model_rate_bf16 / 3600 if model_rate_bf16 else None,
                                           "bench_projection": proj}
    res["sweep"] = (sweep or {}).get("sweep")
    res["matmul_peak_tflops"] = (sweep or {}).get("matmul_peak_tflops")
    res["flops_per_tile"] = flops
    res["tests"] = _tests(logs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_bench.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    from gpu_bench_report import render  # beside this file

    (out_dir / "gpu_bench.md").write_text(render(res))
    return res


def _section_tiles(meta: dict[str, Any]) -> int | None:
    """Lattice tiles of a 100,000 × 150,000 section with the run's tile and overlap (zse.workflows.bench.report.SECTION_YX)."""
    try:
        from zse.pipeline.geometry import Lattice
        from zse.workflows.bench.report import SECTION_YX

        lat = Lattice(shape_yx=SECTION_YX, tile=int(meta["tile"]), overlap=int(meta["overlap"]), margin=int(meta["margin"]))
        return int(math.prod(lat.counts()))
    except (ImportError, KeyError, ValueError):
        return None


def _tests(logs: Path) -> str | None:
    f = logs / "gpu-tests.log"
    if not f.exists():
        return None
    lines = [ln.partition(" ")[2] for ln in f.read_text(errors="replace").splitlines()]
    tail = [ln for ln in lines if " passed" in ln or " failed" in ln or " skipped" in ln or "error" in ln.lower()]
    return tail[-1] if tail else (lines[-1] if lines else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("defaults")
    p.add_argument("--model", required=True)
    p.add_argument("--device", required=True)
    p = sub.add_parser("size")
    p.add_argument("--sweep", type=Path, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--overlap", type=int, required=True)
    p.add_argument("--left", type=float, required=True, help="seconds left in the call")
    p.add_argument("--target", type=float, default=30.0, help="model-only seconds of the slide's tissue tiles")
    p.add_argument("--min-side", type=int, default=2048)
    p.add_argument("--max-side", type=int, default=16384)
    p = sub.add_parser("slide")
    p.add_argument("--side", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--base", type=int, default=2048)
    p.add_argument("--z", type=int, default=29)
    p.add_argument("--json", type=Path, default=None)
    p = sub.add_parser("tiles")
    p.add_argument("--slide", type=Path, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--device", required=True)
    p = sub.add_parser("timed")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("summary")
    p.add_argument("--logs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "defaults":
        print(json.dumps(defaults(a.model, a.device)))
    elif a.cmd == "size":
        sw = _load(a.sweep) or {}
        r = size(model_rate(sw, a.batch), a.tile, a.overlap, a.left, a.target, min_side=a.min_side, max_side=a.max_side)
        print(json.dumps(r))
    elif a.cmd == "slide":
        r = write_slide(a.side, a.out, a.base, a.z)
        if a.json:
            a.json.write_text(json.dumps(r, indent=2))
        print(json.dumps(r))
    elif a.cmd == "tiles":
        print(json.dumps(tile_counts(a.slide, a.model, a.device)))
    elif a.cmd == "timed":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        return timed(cmd, a.out)
    elif a.cmd == "summary":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        summarize(a.logs, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
