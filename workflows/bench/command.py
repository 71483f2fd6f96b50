"""`zse bench`: the click command, and `run_bench` / `run_sweep`, which run the stages and gather one result.

The stages are in zse.workflows.bench.stages and zse.workflows.bench.host (host work per tile), the
report (versions, projection, Markdown) in zse.workflows.bench.report, the JSON's keys in
zse.workflows.bench.keys. The JSON is rewritten after every stage (`complete` false until the end).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from zse.errors import ConfigError
from zse.models.testing import make_slide
from zse.pipeline.infer import check_device
from zse.workflows.bench.config import CLUSTERS, STAGES, BenchConfig, bench_lattice, make_factory
from zse.workflows.bench.host import host_line, host_work
from zse.workflows.bench.memory import device_peak, is_cuda, reset_device_peak
from zse.workflows.bench.report import projection, ratio, render_markdown, versions
from zse.workflows.bench.stages import (
    MONAI_MISSING,
    flops_per_tile,
    io_rates,
    matmul_peak_tflops,
    model_only,
    monai_stage,
    naive_stage,
    pipeline_stage,
    precision_error,
)
from zse.workflows.params import parse_list, parse_shape


def run_sweep(cfg: BenchConfig, nz: int, batches: list[int], precisions: list[str], compile_: bool = True) -> list[dict[str, Any]]:
    """Model-only over batch × precision × channels-last, plus torch.compile at the default batch size
    (convnet only); relative L2 error of each precision against fp32."""
    configs = [(amp, cl, False, b) for amp in precisions for cl in (False, True) for b in batches]
    if compile_ and cfg.model.startswith("convnet"):
        configs += [(amp, False, True, cfg.batch()) for amp in precisions]
    errors = {amp: 0.0 if amp == "fp32" else precision_error(cfg.model, amp, cfg.device, nz, cfg.tile) for amp in precisions}
    rows = []
    for amp, cl, comp, b in configs:
        row: dict[str, Any] = {"batch": b, "amp": None if amp == "fp32" else amp, "channels_last": cl, "compile": comp, "rel_l2": errors[amp]}
        try:
            reset_device_peak(cfg.device)
            f = make_factory(cfg.model, amp=amp, channels_last=cl, compile=comp)
            t0 = time.perf_counter()
            row.update(model_only(f, cfg.device, nz, cfg.tile, b, repeat=1, min_time=0.5 if is_cuda(cfg.device) else 1.0))
            row["incl_warmup_s"] = time.perf_counter() - t0
            row["peak_device_mem_bytes"] = device_peak(cfg.device)
        except Exception as exc:  # noqa: BLE001 - OOM or compile failure is a result of the sweep
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            if is_cuda(cfg.device):
                import torch

                torch.cuda.empty_cache()
        rows.append(row)
        click.echo(f"sweep {row}", err=True)
    return rows


def run_bench(cfg: BenchConfig, work: Path, *, sweep: dict[str, Any] | None = None, peak: bool | None = None,
              io: bool = True, log: Callable[[str], None] = print,
              on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Everything `zse bench` measures, as one JSON-able dict (keys: zse.workflows.bench.keys.JSON_DOC).

    `on_update(result)` is called after every stage with the result so far (`complete` false until the
    end), so that a run stopped part-way (a GPU call's time limit) still leaves what it measured."""
    import torch

    from zse.pipeline.io.write import write_volume

    load_before = [round(x, 2) for x in os.getloadavg()]
    if cfg.input is not None:
        in_path = Path(cfg.input)
        from zse.pipeline.io.ngff import open_image

        shape = tuple(int(s) for s in open_image(in_path).meta.shape_zyx)
    elif not [s for s in cfg.stages if s != "host"]:  # a model-only sweep (or the host stage alone) needs no slide
        in_path, shape = work / "none.zarr", cfg.shape
    else:
        in_path = work / "slide.zarr"
        log(f"bench: writing a synthetic slide {cfg.shape} to {in_path}")
        write_volume(in_path, make_slide(cfg.shape, cfg.seed), voxel_size_um=(1.0, 1.0, 1.0), progress=False, overwrite=True)
        shape = cfg.shape
    nz = shape[0]
    factory = make_factory(cfg.model, amp=cfg.amp, channels_last=cfg.channels_last, compile=cfg.compile)
    cfg = cfg.resolved(factory, (shape[1], shape[2]))  # tile and overlap as zse enhance sets them for the model
    batch = cfg.batch()
    result: dict[str, Any] = {
        "device": cfg.device, "model": cfg.model, "model_name": factory.name, "amp": cfg.amp or "fp32",
        "channels_last": cfg.channels_last, "compile": cfg.compile, "tile": cfg.tile, "overlap": cfg.overlap,
        "slide_shape": list(shape), "batch_size": batch, "block": cfg.block, "cluster": cfg.cluster,
        "gpu_tasks_per_worker": cfg.gpu_tasks_per_worker, "stages": {}, "complete": False, "load_before": load_before,
        "versions": versions(), "io": None, "host_ms_per_tile": None,
    }
    stages: dict[str, Any] = result["stages"]

    def update() -> None:
        summarise(result, cfg, factory, in_path)
        if on_update is not None:
            on_update(result)

    if is_cuda(cfg.device):
        if torch.device(cfg.device).index is not None:
            torch.cuda.set_device(torch.device(cfg.device))
        if peak is None or peak:
            result["matmul_peak_tflops"] = matmul_peak_tflops(cfg.device)
            log(f"bench: bf16 8192³ matmul {result['matmul_peak_tflops']:.0f} TFLOP/s")
    result["flops_per_tile"] = flops_per_tile(factory, cfg.device, nz, cfg.tile)
    if cfg.amp and cfg.amp != "fp32":
        result["amp_rel_l2"] = precision_error(cfg.model, cfg.amp, cfg.device, nz, cfg.tile)
    if sweep is not None:
        result["sweep"] = run_sweep(cfg, nz, sweep["batches"], sweep["precisions"])
        update()
    if "model" in cfg.stages:
        reset_device_peak(cfg.device)
        stages["model"] = model_only(factory, cfg.device, nz, cfg.tile, batch, repeat=cfg.repeat)
        stages["model"]["peak_device_mem_bytes"] = device_peak(cfg.device)
        log(f"bench: (a) model only {stages['model']['tiles_per_s']:.3g} tiles/s (batch {batch})")
        result["model_tflops"] = (stages["model"]["tiles_per_s"] * result["flops_per_tile"] / 1e12
                                  if result["flops_per_tile"] else None)
        update()
    for key, use_dask in (("pipeline", True), ("pipeline-inproc", False)):
        if key in cfg.stages:
            best: dict[str, Any] | None = None
            for _ in range(2 if is_cuda(cfg.device) else 1):
                reset_device_peak(cfg.device)
                r = pipeline_stage(in_path, work / f"{key}.zarr", factory, cfg, use_dask=use_dask)
                best = r if best is None or r["wall_s"] < best["wall_s"] else best
            assert best is not None
            stages[key] = best
            log(f"bench: (b) {key}: {best['wall_s']:.2f} s, {best['tiles_run_per_s']:.3g} tiles run/s, "
                f"{best['lattice_tiles_per_s']:.3g} lattice tiles/s")
            result.update(lattice_tiles=best["lattice_tiles"], tiles_run_unique=best["tiles_run_unique"],
                          tissue_fraction=best["tiles_run_unique"] / best["lattice_tiles"])
            update()
    if "naive" in cfg.stages:
        reset_device_peak(cfg.device)
        stages["naive"] = naive_stage(in_path, work / "naive.zarr", factory, cfg)
        stages["naive"]["peak_device_mem_bytes"] = device_peak(cfg.device)
        log(f"bench: (c) naive {stages['naive']['wall_s']:.2f} s, {stages['naive']['lattice_tiles_per_s']:.3g} tiles/s")
        update()
    if "monai" in cfg.stages:
        reset_device_peak(cfg.device)
        stages["monai"] = monai_stage(in_path, work / "monai.zarr", factory, cfg)
        stages["monai"]["peak_device_mem_bytes"] = device_peak(cfg.device)
        log(f"bench: (d) MONAI {stages['monai']['wall_s']:.2f} s, {stages['monai']['lattice_tiles_per_s']:.3g} tiles/s")
        update()
    if "host" in cfg.stages:
        host_in = in_path if cfg.input is not None or (in_path.exists() and tuple(shape) == tuple(cfg.host_shape)) else None
        if host_in is None:
            host_in = work / "host-slide.zarr"
            log(f"bench: writing a synthetic slide {cfg.host_shape} for the host stage to {host_in}")
            write_volume(host_in, make_slide(cfg.host_shape, cfg.seed), voxel_size_um=(1.0, 1.0, 1.0), progress=False, overwrite=True)
        host_yx = (cfg.host_shape[1], cfg.host_shape[2]) if cfg.input is None else (shape[1], shape[2])
        margin = bench_lattice(host_yx, cfg, factory).margin
        result["host"] = host_work(host_in, work / "host.zarr", tile=cfg.tile, overlap=cfg.overlap, margin=margin, block=cfg.block)
        result["host_ms_per_tile"] = result["host"]["host_ms_per_tile"]
        log(f"bench: (e) {host_line(result['host'])}")
        update()
    if io and [s for s in cfg.stages if s != "host"]:
        result["io"] = io_rates(in_path, work)
    result["complete"] = True
    update()
    return result


def summarise(result: dict[str, Any], cfg: BenchConfig, factory: Any, in_path: Path) -> None:
    """The keys derived from the stages measured so far (rates, ratios, memory, projection, commands), in place."""
    stages: dict[str, Any] = result["stages"]
    pipe = stages.get("pipeline") or stages.get("pipeline-inproc") or {}
    inproc = stages.get("pipeline-inproc") or {}
    result["model_only_tiles_per_s"] = (stages.get("model") or {}).get("tiles_per_s")
    result["pipeline_tiles_per_s"] = pipe.get("lattice_tiles_per_s")
    result["pipeline_tiles_run_per_s"] = pipe.get("tiles_run_per_s")
    result["pipeline_voxels_per_s"] = pipe.get("voxels_per_s")
    result["pipeline_voxels_per_s_processed"] = pipe.get("voxels_per_s_processed")
    result["naive_tiles_per_s"] = (stages.get("naive") or {}).get("lattice_tiles_per_s")
    result["monai_tiles_per_s"] = (stages.get("monai") or {}).get("lattice_tiles_per_s")
    result["ratios"] = {
        "pipeline_over_model": ratio(pipe.get("tiles_run_per_s"), result["model_only_tiles_per_s"]),
        "inproc_over_model": ratio(inproc.get("tiles_run_per_s"), result["model_only_tiles_per_s"]),
        "pipeline_over_naive": ratio(result["pipeline_tiles_per_s"], result["naive_tiles_per_s"]),
        "pipeline_over_monai": ratio(result["pipeline_tiles_per_s"], result["monai_tiles_per_s"]),
        "inproc_over_naive": ratio(inproc.get("lattice_tiles_per_s"), result["naive_tiles_per_s"]),
        "inproc_over_monai": ratio(inproc.get("lattice_tiles_per_s"), result["monai_tiles_per_s"]),
    }
    if not is_cuda(cfg.device):  # CPU seconds: robust to other processes sharing the cores
        m_cpu = (stages.get("model") or {}).get("cpu_s_per_tile")
        per_tile = pipe.get("cpu_s") / pipe["tiles_run_unique"] if pipe.get("cpu_s") else None
        result["ratios"]["cpu_s_pipeline_over_model"] = ratio(m_cpu, per_tile)
        result["ratios"]["cpu_s_inproc_over_model"] = ratio(m_cpu, inproc.get("cpu_s") / inproc["tiles_run_unique"] if inproc.get("cpu_s") else None)
        result["ratios"]["cpu_s_pipeline_over_naive"] = ratio((stages.get("naive") or {}).get("cpu_s"), pipe.get("cpu_s"))
        result["ratios"]["cpu_s_pipeline_over_monai"] = ratio((stages.get("monai") or {}).get("cpu_s"), pipe.get("cpu_s"))
    rss = [s.get("peak_rss_total_bytes") for s in stages.values() if s.get("peak_rss_total_bytes")]
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["peak_host_mem_bytes"] = max([*rss, ru])
    dev = [s.get("peak_device_mem_bytes") for s in stages.values() if s.get("peak_device_mem_bytes") is not None]
    result["peak_device_mem_bytes"] = max(dev) if dev else (0 if is_cuda(cfg.device) else None)
    result["projection"] = projection(result, factory, cfg)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    opt = f"--tile {cfg.tile} --overlap {cfg.overlap}" + (f" --block {cfg.block}" if cfg.block else "") + f" --batch-size {result['batch_size']}"
    model = cfg.model if not cfg.model.startswith("convnet") else "MODEL"
    note = "  (convnet is bench-only: zse enhance takes registry models)" if model == "MODEL" else ""
    dask = f" --cluster {cfg.cluster}" if cfg.cluster != "local" else ""
    gpu = f" --gpu-tasks {cfg.gpu_tasks_per_worker}" if is_cuda(cfg.device) else ""
    result["commands"] = [
        "zse " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name in ("zse", "cli.py", "__main__.py") else "zse bench (called from Python)",
        f"zse enhance {in_path} OUT.zarr --model {model} --device {cfg.device} {opt}{dask}{gpu} --overwrite   # (b), Dask{note}",
        f"zse enhance {in_path} OUT.zarr --model {model} --device {cfg.device} {opt} --workers 0 --overwrite   # (b'), in process",
    ]


@contextlib.contextmanager
def _workdir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="zse-bench-"))
    try:
        yield tmp
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_result(out: Path, result: dict[str, Any]) -> None:
    """The JSON result to `out`, replaced atomically (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out)


@click.command("bench")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--model", default="convnet", show_default=True,
              help="convnet[:WIDTH] (random-weight 3D conv stand-in, width 8 by default) or a registry name / model file.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results as JSON to FILE (rewritten after every stage) and as Markdown to FILE with suffix .md.")
@click.option("--shape", default="29,1024,1024", show_default=True, help="Z,Y,X of the synthetic slide.")
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Bench on this OME-Zarr instead of a synthetic slide (e.g. one written by `zse synth`).")
@click.option("--tile", type=int, default=None, help="Tile side (default: zse enhance's for the model, 128 for most).")
@click.option("--overlap", type=int, default=None, help="Tile overlap (default: zse enhance's for the model, from its receptive radius).")
@click.option("--block", type=int, default=None, help="Block side (default: zse enhance's, 1024 on CPU, 2048 on GPU).")
@click.option("--batch-size", type=int, default=None, help="Tiles per model call (default: zse enhance's, 4 on CPU, 16 on GPU).")
@click.option("--amp", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True, help="Autocast precision.")
@click.option("--channels-last", is_flag=True, help="channels_last_3d input/weights.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (convnet only).")
@click.option("--cluster", type=click.Choice(list(CLUSTERS)), default="local", show_default=True,
              help="Dask cluster of (b), as zse enhance --cluster builds it (local-cuda: dask-cuda, one worker per GPU).")
@click.option("--workers", type=int, default=None, help="Dask worker processes for (b) (default: open_client's).")
@click.option("--threads-per-worker", type=int, default=None, help="Dask threads per worker for (b) (default: open_client's).")
@click.option("--gpu-tasks-per-worker", type=int, default=None, help="Block tasks sharing one GPU at a time in (b) (default: zse enhance's --gpu-tasks, 3).")
@click.option("--stages", default=",".join(STAGES), show_default=True, help="Which stages to run.")
@click.option("--host-shape", default="29,2048,2048", show_default=True,
              help="Z,Y,X of the synthetic slide of the host stage (host work per tile; --input: the input).")
@click.option("--repeat", default=3, show_default=True, help="Timed repeats of the model-only stage (best kept).")
@click.option("--seed", default=0, show_default=True)
@click.option("--sweep", is_flag=True, help="Model-only sweep over --sweep-batches × --sweep-precisions × channels-last × compile.")
@click.option("--sweep-batches", default="1,2,4,8,16,32", show_default=True)
@click.option("--sweep-precisions", default="fp32,bf16,fp16", show_default=True)
@click.option("--peak/--no-peak", default=None, help="Measure the bf16 8192³ matmul peak (default: on cuda).")
@click.option("--io/--no-io", "io_", default=True, show_default=True, help="Measure decode/encode/file-read rates for the projection.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where to write slides and outputs (default: a temp dir).")
@click.option("--keep", is_flag=True, help="Keep the temporary work directory.")
def bench(device: str, model: str, out: Path | None, shape: str, input_path: Path | None, tile: int | None, overlap: int | None,
          block: int | None, batch_size: int | None, amp: str, channels_last: bool, compile_: bool, cluster: str, workers: int | None,
          threads_per_worker: int | None, gpu_tasks_per_worker: int | None, stages: str, host_shape: str, repeat: int, seed: int,
          sweep: bool, sweep_batches: str, sweep_precisions: str, peak: bool | None, io_: bool, workdir: Path | None,
          keep: bool) -> None:
    """Benchmark zse enhance against the model alone, a naive tile loop and MONAI's sliding window, and
    measure its host work per tile (identity model, one thread)."""
    check_device(device)
    stage_list = tuple(parse_list(stages, "--stages"))
    bad = [s for s in stage_list if s not in STAGES]
    if bad:
        raise ConfigError(f"--stages {','.join(bad)} unknown; valid: {', '.join(STAGES)}")
    if gpu_tasks_per_worker is not None and gpu_tasks_per_worker < 1:
        raise ConfigError(f"--gpu-tasks-per-worker {gpu_tasks_per_worker} is invalid; valid: 1 or more")
    ctx = click.get_current_context()
    if sweep and ctx.get_parameter_source("stages") is not click.core.ParameterSource.COMMANDLINE:
        stage_list = ()  # --sweep alone: only the sweep
    if "monai" in stage_list:
        try:
            import monai  # noqa: F401
        except ImportError:
            raise ConfigError(MONAI_MISSING) from None
    if cluster == "local-cuda" and "pipeline" in stage_list:
        try:
            import dask_cuda  # noqa: F401
        except ImportError:
            raise ConfigError('--cluster local-cuda needs dask-cuda, which is not installed: pip install "zse[gpu]" '
                              "(or --cluster local, or leave pipeline out of --stages)") from None
    extra = {} if gpu_tasks_per_worker is None else {"gpu_tasks_per_worker": gpu_tasks_per_worker}
    cfg = BenchConfig(device=device, model=model, shape=parse_shape(shape), tile=tile, overlap=overlap, block=block,
                      batch_size=batch_size, amp=None if amp == "fp32" else amp, channels_last=channels_last, compile=compile_,
                      seed=seed, cluster=cluster, workers=workers, threads_per_worker=threads_per_worker, repeat=repeat,
                      stages=stage_list, input=input_path, host_shape=parse_shape(host_shape, "--host-shape"), **extra)
    cfg.options()  # tile, overlap, block, batch size: zse enhance's rules (zse.pipeline.options.make_options)
    sweep_cfg = None
    if sweep:
        sweep_cfg = {"batches": [int(b) for b in parse_list(sweep_batches, "--sweep-batches")],
                     "precisions": parse_list(sweep_precisions, "--sweep-precisions")}
    make_factory(model, amp=cfg.amp)  # fail early on an unknown model
    with _workdir(workdir, keep) as work:
        result = run_bench(cfg, work, sweep=sweep_cfg, peak=peak, io=io_ and not sweep,
                           log=lambda m: click.echo(m, err=True),
                           on_update=None if out is None else lambda r: _write_result(out, r))
    text = render_markdown(result)
    click.echo(text)
    if out is not None:
        _write_result(out, result)
        out.with_suffix(".md").write_text(text)
        click.echo(f"bench: wrote {out} and {out.with_suffix('.md')}", err=True)
