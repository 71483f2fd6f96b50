"""Markdown of one scripts/device/gpu_bench.sh call (the dict `gpu_bench.summarize` writes as gpu_bench.json)."""

from __future__ import annotations

from typing import Any


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _gib(v: Any) -> str:
    return "–" if v is None else f"{v / 2**30:.2f} GiB"


def render(res: dict[str, Any]) -> str:
    m = res.get("meta") or {}
    slide = res.get("slide") or {}
    out = [
        f"# GPU benchmark: {m.get('model', '?')} on {m.get('gpu') or m.get('device', '?')}", "",
        f"Date {m.get('date', '?')}; host {m.get('host', '?')}, {m.get('cpu_cores', '?')} CPU cores; {m.get('torch', '')}. "
        f"Mode: {'dry run on CPU (every step tiny; figures mean nothing)' if m.get('dry_run') else 'device'}. "
        f"Call: `{m.get('command', 'bash scripts/device/gpu_bench.sh')}`.", "",
        f"Slide: {' × '.join(map(str, slide.get('shape', []))) or '–'} uint8 (make_slide {slide.get('base', '–')}² tiled; "
        f"written in {_f(slide.get('write_s'))} s); tile {m.get('tile', '–')}, overlap {m.get('overlap', '–')} (zse enhance's "
        f"defaults for the model), batch {m.get('batch', '–')}, block {m.get('block', '–')}. Sizing: {m.get('sizing', '–')}. "
        f"Model-only time of its tissue tiles: {_f(res.get('model_only_seconds_of_slide'))} s (target ≥ 30 s).", "",
        "| stage | wall s | tiles run/s | lattice tiles/s | TFLOP/s | host CPU-s / tile | peak host | peak device | GPU util % (window / active span) | samples ≥ 85 % |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for name, r in (res.get("rows") or {}).items():
        g = r.get("gpu") or {}
        dev = r.get("peak_device_mem_bytes")
        dev_s = _gib(dev) if dev is not None else (f"{g['mem_used_peak_MiB'] / 1024:.2f} GiB (nvidia-smi)" if g.get("mem_used_peak_MiB") else "–")
        util = f"{g['util_mean_pct']:.0f} / {g['util_mean_active_pct']:.0f} ({g['active_span_s']:.0f} s)" if g else "–"
        out.append(f"| {name} | {_f(r.get('wall_s'))} | {_f(r.get('tiles_run_per_s') or r.get('tiles_per_s'))} | "
                   f"{_f(r.get('lattice_tiles_per_s'))} | {_f(r.get('tflops'))} | {_f(r.get('cpu_s_per_tile'))} | "
                   f"{_gib(r.get('peak_host_bytes'))} | {dev_s} | {util} | {_f(g.get('samples_ge_85_pct'))} |")
    notes = [f"{k}: {r['note']}" for k, r in (res.get("rows") or {}).items() if r.get("note")]
    notes += [f"{k}: slide {' × '.join(map(str, r['slide_shape']))}" for k, r in (res.get("rows") or {}).items() if r.get("slide_shape")]
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    t = res.get("targets")
    if t:
        out += ["", f"Targets (default model, bf16; pipeline = {t['pipeline']}):", "", "| ratio | value | target | met |", "|---|---:|---:|---|"]
        for key, label in (("end_to_end_over_model_only", "pipeline tiles run/s ÷ model-only"), ("over_naive", "pipeline ÷ naive loop (lattice tiles/s)"),
                           ("over_monai", "pipeline ÷ MONAI (lattice tiles/s)"), ("gpu_busy_pct", "GPU busy % of the pipeline's active span")):
            v, tgt = t[key]["value"], t[key]["target"]
            out.append(f"| {label} | {_f(v)} | ≥ {tgt:g} | {'–' if v is None else ('yes' if v >= tgt else '**no**')} |")
    p = res.get("projection_100k_150k")
    if p:
        out += ["", f"Projection, one 100,000 × 150,000 × 29 section per GPU ({p['lattice_tiles']:,} lattice tiles, tissue "
                f"{p['tissue_fraction']:.2f}): {_f(p['hours_per_gpu'])} h at the pipeline's rate, {_f(p['hours_per_gpu_model_only'])} h at "
                f"the model-only rate. The bench's own projection (in-process rate, codec and disk bounds): "
                f"{_f(((p.get('bench_projection') or {}).get('per_device') or {}).get('hours'))} h per device, limited by "
                f"{((p.get('bench_projection') or {}).get('per_device') or {}).get('limit', '–')}."]
    sweep = res.get("sweep") or []
    if sweep:
        out += ["", f"Model-only sweep (tiles/s; bf16 8192³ matmul peak {_f(res.get('matmul_peak_tflops'))} TFLOP/s; "
                f"{_f((res.get('flops_per_tile') or 0) / 1e9)} GFLOP/tile):", "",
                "| batch | amp | channels-last | tiles/s | TFLOP/s | peak device | rel. L2 vs fp32 | error |", "|---:|---|---|---:|---:|---|---:|---|"]
        for r in sweep:
            tf = (res.get("flops_per_tile") or 0) * (r.get("tiles_per_s") or 0) / 1e12 or None
            out.append(f"| {r['batch']} | {r.get('amp') or 'fp32'} | {r['channels_last']} | {_f(r.get('tiles_per_s'))} | {_f(tf)} | "
                       f"{_gib(r.get('peak_device_mem_bytes'))} | {_f(r.get('rel_l2'))} | {r.get('error', '')} |")
    out += ["", f"GPU tests: {res.get('tests') or 'not run'}", "", "Steps (seconds; rc 124 = stopped by its time guard):", "",
            "| step | s | rc | time guard s | note |", "|---|---:|---:|---:|---|"]
    for name, s in (res.get("steps") or {}).items():
        out.append(f"| {name} | {s['end'] - s['start']:.1f} | {s['rc']} | {s['timeout_s']} | {s['note']} |")
    cmds = m.get("commands") or []
    if cmds:
        out += ["", "Commands:", "", "```", *cmds, "```"]
    return "\n".join(out) + "\n"
