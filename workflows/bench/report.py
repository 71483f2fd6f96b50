"""The bench's report: the machine and library versions, the projection to a full section, and the
result as Markdown."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zse.workflows.bench.config import BenchConfig, bench_lattice

if TYPE_CHECKING:
    from zse.pipeline.infer import PredictorFactory

SECTION_YX = (100_000, 150_000)  # a full coronal section at level 0, for the projection


def versions() -> dict[str, Any]:
    """Versions of zse and the libraries it runs on, and the machine (CPU, cores, GPU, CUDA)."""
    import dask
    import distributed
    import numcodecs
    import torch
    import zarr

    import zse

    out: dict[str, Any] = {"zse": zse.__version__, "python": platform.python_version(), "torch": torch.__version__,
                           "zarr": zarr.__version__, "numcodecs": numcodecs.__version__, "dask": dask.__version__,
                           "distributed": distributed.__version__, "numpy": np.__version__}
    try:
        import monai

        out["monai"] = monai.__version__
    except ImportError:
        out["monai"] = None
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    out["cpu"] = cpu
    out["cpu_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out["torch_threads"] = torch.get_num_threads()
    out["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None where either is missing or zero."""
    return a / b if a and b else None


def projection(result: dict[str, Any], factory: PredictorFactory, cfg: BenchConfig, n_gpus_node: int = 4) -> dict[str, Any]:
    """Hours for one section of 100k × 150k × Z per device and per node, from measured rates, and what limits it."""
    lat = bench_lattice(SECTION_YX, cfg, factory)
    tiles = int(np.prod(lat.counts()))
    nz = result["slide_shape"][0]
    nbytes = SECTION_YX[0] * SECTION_YX[1] * nz  # uint8
    tissue = result.get("tissue_fraction") or 1.0
    rate = result.get("pipeline_tiles_run_per_s") or result.get("model_only_tiles_per_s")
    io = result.get("io") or {}
    cores = result["versions"].get("cpu_cores") or 1
    out: dict[str, Any] = {"section_yx": list(SECTION_YX), "z": nz, "lattice_tiles": tiles, "tissue_fraction": tissue,
                           "bytes": nbytes, "gpus_per_node": n_gpus_node, "cpu_cores_used": cores}
    if not rate:
        return out
    compute_s = tiles * tissue / rate
    # decode input + encode output (+ pyramid ≈ 1/3 more encode) spread over this machine's cores
    dec = io.get("decode_MBps_per_thread")
    enc = io.get("encode_MBps_per_thread")
    codec_s = (nbytes / 1e6 / dec + nbytes * 4 / 3 / 1e6 / enc) / cores if dec and enc else None
    disk_s = nbytes * (1 + 4 / 3) / max(1.0, io.get("compression_ratio", 1.0)) / 1e6 / io["file_read_MBps"] if io.get("file_read_MBps") else None
    per_dev = {"compute_h": compute_s / 3600, "codec_h": codec_s / 3600 if codec_s else None, "disk_h": disk_s / 3600 if disk_s else None}
    node = {"compute_h": compute_s / n_gpus_node / 3600, "codec_h": codec_s / 3600 if codec_s else None,
            "disk_h": disk_s / 3600 if disk_s else None}  # codec and disk are shared by the node's GPUs
    for d in (per_dev, node):
        known = {k: v for k, v in d.items() if v is not None}
        d["limit"] = max(known, key=known.__getitem__).removesuffix("_h") if known else None
        d["hours"] = max(known.values()) if known else None
    out["per_device"] = per_dev
    out["per_node"] = node
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _gib(v: int | None) -> str:
    return "–" if v is None else f"{v / 2**30:.2f} GiB"


def render_markdown(r: dict[str, Any]) -> str:
    """The result of `run_bench` as a Markdown report (tables of stages and ratios, memory, I/O, projection)."""
    v = r["versions"]
    st = r["stages"]
    lines = [
        f"# zse bench: {r['model']} on {r['device']}",
        "",
        f"Slide {r['slide_shape']} (Z, Y, X) uint8, tile {r['tile']}, overlap {r['overlap']} (stride {r['tile'] - r['overlap']}), "
        f"{r.get('lattice_tiles')} lattice tiles, {r.get('tiles_run_unique')} with tissue "
        f"({100 * (r.get('tissue_fraction') or 0):.0f} %). Load average before/after: {r['load_before']} / {r['load_after']}.",
        "",
        "| stage | wall s | CPU s | tiles run/s | lattice tiles/s | Mvoxel/s | peak RSS (main / worker) | peak device mem |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    names = {"model": "(a) model only", "pipeline": f"(b) zse enhance, Dask (--cluster {r.get('cluster', 'local')})",
             "pipeline-inproc": "(b') zse enhance, in process",
             "naive": "(c) naive tile loop", "monai": "(d) MONAI sliding window"}
    for key, label in names.items():
        s = st.get(key)
        if not s:
            continue
        if key == "model":
            lines.append(f"| {label} (batch {s['batch']}) | – | {_fmt(s.get('cpu_s_per_tile'))}/tile | {_fmt(s['tiles_per_s'])} | – | "
                         f"{_fmt(s['tiles_per_s'] * r['slide_shape'][0] * r['tile'] ** 2 / 1e6)} | – | {_gib(s.get('peak_device_mem_bytes'))} |")
            continue
        run = s.get("tiles_run_per_s", s.get("lattice_tiles_per_s"))
        lines.append(f"| {label} | {_fmt(s['wall_s'])} | {_fmt(s.get('cpu_s'))} | {_fmt(run)} | {_fmt(s['lattice_tiles_per_s'])} | "
                     f"{_fmt(s['voxels_per_s'] / 1e6)} | {_gib(s.get('peak_rss_main_bytes'))} / {_gib(s.get('peak_rss_worker_bytes'))} | "
                     f"{_gib(s.get('peak_device_mem_bytes'))} |")
    h = r.get("host")
    if h:
        ms = h["stages_ms_per_tile"]
        lines += ["", f"Host work per tile (zse.workflows.bench.host: zse enhance in process, identity model, one torch and one "
                  f"zarr thread; slide {tuple(h['slide_shape'])}, tile {h['tile']}, overlap {h['overlap']}, block {h['block']}; "
                  f"{h['tiles_run']} tiles run of {h['lattice_tiles']}): **{h['host_ms_per_tile']:.2f} ms per tile run** "
                  f"({h['host_ms_per_lattice_tile']:.2f} per lattice tile; target ≤ 2.5), run {_fmt(h['wall_s'])} s wall, "
                  f"{_fmt(h['cpu_s'])} CPU-s.", "",
                  "| stage | " + " | ".join(ms) + " |", "|---" * (len(ms) + 1) + "|",
                  "| ms per tile run | " + " | ".join(f"{v:.2f}" for v in ms.values()) + " |",
                  "| of which system CPU, ms | " + " | ".join(
                      f"{1000 * h.get('stages_sys_s', {}).get(k, 0.0) / max(1, h['tiles_run']):.2f}" if k != "other" else "–"
                      for k in ms) + " |", "",
                  "Host work = tissue + read + write + pyramid + markers + output; unit, blend and quantise run on the device "
                  "on a GPU; other = the rest of the wall time."
                  + (f" Timers not found: {', '.join(h['missing_timers'])}." if h.get("missing_timers") else "")]
    for key in ("pipeline-inproc", "pipeline"):
        s = st.get(key) or {}
        mb = s.get("block_memory_bound")
        if mb:
            lines += ["", f"Memory of one block task ({key}, block side {mb['write_side']}, read side {mb['read_side']}): formula "
                      f"{_gib(mb['peak'])} (input {_gib(mb['input'])}, unit {_gib(mb['unit'])}, merger {_gib(mb['merger'])}, "
                      f"batch {_gib(mb['batch'])}, model {_gib(mb['model'])}, finish {_gib(mb['finish'])}); measured RSS increase "
                      f"during the run {_gib(s.get('peak_rss_increase_bytes'))}, device peak {_gib(s.get('peak_device_mem_bytes'))}."]
            break
    rt = r["ratios"]
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        f"| (b)/(a) pipeline tiles run/s ÷ model-only tiles/s | {_fmt(rt.get('pipeline_over_model'))} | ≥ 0.9 |",
        f"| (b')/(a) same, in process | {_fmt(rt.get('inproc_over_model'))} | |",
        f"| (b)/(c) pipeline ÷ naive loop (lattice tiles/s) | {_fmt(rt.get('pipeline_over_naive'))} | ≥ 3 |",
        f"| (b)/(d) pipeline ÷ MONAI (lattice tiles/s) | {_fmt(rt.get('pipeline_over_monai'))} | ≥ 1 |",
    ]
    if "cpu_s_pipeline_over_model" in rt:
        lines += [
            f"| (b)/(a) from CPU seconds (model CPU-s/tile ÷ pipeline CPU-s/tile run) | {_fmt(rt.get('cpu_s_pipeline_over_model'))} | ≥ 0.9 |",
            f"| (b')/(a) from CPU seconds, in process | {_fmt(rt.get('cpu_s_inproc_over_model'))} | |",
            f"| (b)/(c) from CPU seconds | {_fmt(rt.get('cpu_s_pipeline_over_naive'))} | ≥ 3 |",
            f"| (b)/(d) from CPU seconds | {_fmt(rt.get('cpu_s_pipeline_over_monai'))} | ≥ 1 |",
            "",
            "CPU-second ratios do not depend on other processes sharing the cores (wall-time ratios do).",
        ]
    if r.get("flops_per_tile"):
        lines += ["", f"Model FLOP per tile: {r['flops_per_tile'] / 1e9:.2f} GFLOP; model-only achieved "
                  f"{_fmt(r.get('model_tflops'))} TFLOP/s" + (f" of a measured bf16 matmul peak {_fmt(r.get('matmul_peak_tflops'))} TFLOP/s "
                  f"({_fmt(100 * (r.get('model_tflops') or 0) / r['matmul_peak_tflops'])} %)" if r.get("matmul_peak_tflops") else "") + "."]
    if r.get("amp_rel_l2") is not None:
        lines += ["", f"--amp {r['amp']}: relative L2 error against fp32 {r['amp_rel_l2']:.2e}."]
    if r.get("io"):
        io = r["io"]
        lines += ["", f"I/O (one thread): decode {_fmt(io['decode_MBps_per_thread'])} MB/s, encode {_fmt(io['encode_MBps_per_thread'])} MB/s, "
                  f"stored-file read {_fmt(io['file_read_MBps'])} MB/s (page cache), compression ratio {_fmt(io['compression_ratio'])}."]
    p = r.get("projection") or {}
    if p.get("per_device"):
        d, n = p["per_device"], p["per_node"]
        lines += ["", f"Projection for a section {p['section_yx'][0]:,} × {p['section_yx'][1]:,} × {p['z']} ({p['lattice_tiles']:,} lattice tiles, "
                  f"tissue fraction {p['tissue_fraction']:.2f}): per device {_fmt(d['hours'])} h (compute {_fmt(d['compute_h'])} h, "
                  f"codec {_fmt(d['codec_h'])} h on {p['cpu_cores_used']} cores, disk {_fmt(d['disk_h'])} h; limit: {d['limit']}); "
                  f"per {p['gpus_per_node']}-device node {_fmt(n['hours'])} h (limit: {n['limit']})."]
    if r.get("sweep"):
        lines += ["", "| batch | precision | channels-last | compile | tiles/s | rel. L2 vs fp32 | peak device mem |", "|---:|---|---|---|---:|---:|---|"]
        for s in r["sweep"]:
            lines.append(f"| {s['batch']} | {s['amp'] or 'fp32'} | {s['channels_last']} | {s['compile']} | {_fmt(s.get('tiles_per_s'))} | "
                         f"{_fmt(s.get('rel_l2'))} | {_gib(s.get('peak_device_mem_bytes'))} |" + (f" {s['error']}" if s.get("error") else ""))
    lines += ["", "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None) + ".", "", "Commands:", ""]
    lines += [f"    {c}" for c in r["commands"]]
    return "\n".join(lines) + "\n"
