"""`zse bench`: how fast zse enhance is, against the model alone, a naive tile loop and MONAI.

One process, one synthetic slide (or `--input` OME-Zarr), one tile lattice (tile, stride = tile − overlap)
for every stage:

    (a) model-only      batches already on the device, after warm-up (device synchronised on cuda)
    (b) pipeline        `zse.pipeline.run.run_enhance` on a local Dask client (`open_client`) and in
                        process (`client=None`); "tiles run" (model inputs, unique lattice tiles with
                        tissue) and "lattice tiles" (incl. skipped background) per second
    (c) naive           a Python loop over lattice tiles: read each tile from the input Zarr, run the
                        model on it, write its centre crop into an output Zarr (no blending)
    (d) monai           `monai.inferers.sliding_window_inference` (Gaussian blending) over zse's blocks

Ratios (b)/(a) use tiles run per second (does the pipeline keep the model busy?); (b)/(c) and (b)/(d)
use lattice tiles per second, i.e. the inverse of the wall time to cover the same slide.

`--sweep` runs only the model-only stage over batch sizes, precisions (fp32, bf16, fp16), channels-last
and torch.compile, with the relative L2 error of each precision against fp32.

The bench-only stand-in model `convnet[:WIDTH]` (4 random 3×3×3 convolutions, receptive radius 4) is
picklable, so Dask workers build it like any registry model; other names go through
`zse.models.registry.resolve`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from zse.errors import ConfigError

SECTION_YX = (100_000, 150_000)  # a full coronal section at level 0, for the projection
JSON_KEYS = (
    "device", "model", "tile", "overlap", "slide_shape", "model_only_tiles_per_s", "pipeline_tiles_per_s",
    "naive_tiles_per_s", "monai_tiles_per_s", "peak_host_mem_bytes", "peak_device_mem_bytes", "versions",
)
STAGES = ("model", "pipeline", "pipeline-inproc", "naive", "monai")


# --------------------------------------------------------------------------------------------- models
def _make_convnet(width: int, layers: int, seed: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    mods: list[Any] = []
    chans = [1] + [width] * (layers - 1) + [1]
    for k in range(layers):
        conv = torch.nn.Conv3d(chans[k], chans[k + 1], 3, padding=1)
        with torch.no_grad():
            fan_in = chans[k] * 27
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            assert conv.bias is not None
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.01)
        mods.append(conv)
        mods.append(torch.nn.ReLU() if k < layers - 1 else torch.nn.Tanh())
    return torch.nn.Sequential(*mods).eval()


@dataclass(frozen=True)
class ConvNetFactory:
    """Random-weight 3D conv net (stand-in for zse-gan): `layers` 3×3×3 convs of `width` channels.

    Output = clamp(x + 0.25·net(x), −1, 1). Receptive radius = `layers` pixels, so with margin ≥ layers
    tiled inference equals whole-volume inference. Options: autocast precision `amp` (None, "bf16",
    "fp16"), `channels_last` (channels_last_3d memory format), `compile` (torch.compile).
    """

    width: int = 8
    layers: int = 4
    seed: int = 0
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        return f"convnet:{self.width}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(f"zse-bench-convnet-v1:{self.width}:{self.layers}:{self.seed}:{self.amp}".encode()).hexdigest()

    @property
    def margin_px(self) -> int:
        return self.layers

    def flops_per_voxel(self) -> int:
        chans = [1] + [self.width] * (self.layers - 1) + [1]
        return sum(2 * 27 * chans[k] * chans[k + 1] for k in range(self.layers))

    def build(self, device: str) -> Callable[[Any], Any]:
        import torch

        net = _make_convnet(self.width, self.layers, self.seed).to(device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last_3d)
        if self.compile:
            net = torch.compile(net)
        def convnet_predictor(x: Any) -> Any:
            return torch.clamp(x + 0.25 * net(x), -1.0, 1.0)

        return _wrap(convnet_predictor, device, self.amp, self.channels_last)


@dataclass(frozen=True)
class WrappedFactory:
    """A registry factory with bench options (autocast `amp`, channels-last input) applied."""

    inner: Any
    amp: str | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(f"{self.inner.checksum}:{self.amp}:{self.channels_last}".encode()).hexdigest()

    @property
    def margin_px(self) -> int | None:
        return getattr(self.inner, "margin_px", None)

    def build(self, device: str) -> Callable[[Any], Any]:
        return _wrap(self.inner.build(device), device, self.amp, self.channels_last)


def _wrap(fn: Callable[[Any], Any], device: str, amp: str | None, channels_last: bool) -> Callable[[Any], Any]:
    import torch

    if not amp and not channels_last:
        return fn
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
    dev_type = torch.device(device).type

    def predictor(batch: Any) -> Any:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        ctx = torch.autocast(dev_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            out = fn(batch)
        return out.float().contiguous()

    return predictor


def make_factory(spec: str, *, amp: str | None = None, channels_last: bool = False, compile: bool = False) -> Any:
    """`convnet[:WIDTH]` (bench stand-in) or anything `zse.models.registry.resolve` accepts."""
    if amp not in (None, "fp32", "bf16", "fp16"):
        raise ConfigError(f"--amp {amp!r} is invalid; valid: fp32, bf16, fp16")
    amp = None if amp == "fp32" else amp
    if spec == "convnet" or spec.startswith("convnet:"):
        try:
            width = int(spec.split(":", 1)[1]) if ":" in spec else 8
        except ValueError:
            raise ConfigError(f"--model {spec!r}: expected convnet or convnet:WIDTH (e.g. convnet:16)") from None
        return ConvNetFactory(width=width, amp=amp, channels_last=channels_last, compile=compile)
    from zse.models.registry import resolve

    inner = resolve(spec)
    if compile:
        raise ConfigError("--compile is only implemented for the bench stand-in convnet")
    return WrappedFactory(inner, amp, channels_last) if (amp or channels_last) else inner


# --------------------------------------------------------------------------------------------- slide
def make_slide(shape_zyx: tuple[int, int, int], seed: int = 0, tissue_fraction: float = 0.6) -> np.ndarray:
    """Synthetic brightfield z-stack, uint8 (Z, Y, X): dark blurred blobs (cells) on a light background.

    The tissue is an ellipse covering about `tissue_fraction` of the slide; the rest is empty background
    (~235 ± 2), so tissue skipping has something to skip. Each cell is in focus at its own z and blurs
    with |z − z0|.
    """
    from scipy import ndimage

    nz, ny, nx = shape_zyx
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    # ellipse of area tissue_fraction·Y·X: π·a·b = f·Y·X with a/b = Y/X
    a = math.sqrt(tissue_fraction / math.pi) * ny
    b = math.sqrt(tissue_fraction / math.pi) * nx
    inside = ((yy - ny / 2) / a) ** 2 + ((xx - nx / 2) / b) ** 2 <= 1.0
    texture = ndimage.gaussian_filter(rng.standard_normal((ny, nx)).astype(np.float32), 6) * 6
    od = np.zeros((nz, ny, nx), dtype=np.float32)
    n_cells = int(inside.sum() / 300)
    cy = rng.integers(0, ny, n_cells)
    cx = rng.integers(0, nx, n_cells)
    keep = inside[cy, cx]
    cy, cx = cy[keep], cx[keep]
    cz = rng.integers(0, nz, cy.size)
    amp = rng.uniform(0.5, 1.5, cy.size).astype(np.float32)
    np.add.at(od, (cz, cy, cx), amp * 60.0)
    od = ndimage.gaussian_filter(od, sigma=(2.5, 2.5, 2.5), truncate=3.0)
    out = 235.0 - (inside * (40.0 + texture))[None] - od * 40.0
    out += rng.normal(0.0, 2.0, size=out.shape).astype(np.float32)
    return np.round(out).clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- memory
class MemorySampler:
    """Samples RSS of this process and its children (Dask workers) every `interval` s in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak_self = 0
        self.peak_total = 0
        self.peak_child = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            own = self.proc.memory_info().rss
            kids = 0
            for c in self.proc.children(recursive=True):
                try:
                    r = c.memory_info().rss
                except self._psutil.Error:
                    continue
                kids += r
                self.peak_child = max(self.peak_child, r)
        except self._psutil.Error:
            return
        self.peak_self = max(self.peak_self, own)
        self.peak_total = max(self.peak_total, own + kids)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self.base_self, self.base_total = self.peak_self, self.peak_total
        self._thread = threading.Thread(target=self._loop, daemon=True, name="zse-bench-mem")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def as_dict(self) -> dict[str, int | None]:
        return {"peak_rss_main_bytes": self.peak_self, "peak_rss_worker_bytes": self.peak_child,
                "peak_rss_total_bytes": self.peak_total, "rss_total_before_bytes": getattr(self, "base_total", None),
                "peak_rss_increase_bytes": self.peak_total - getattr(self, "base_total", 0)}


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _sync(device: str) -> None:
    if _cuda(device):
        import torch

        torch.cuda.synchronize(device)


def _reset_device_peak(device: str) -> None:
    if _cuda(device):
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _device_peak(device: str) -> int | None:
    if _cuda(device):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return None


# --------------------------------------------------------------------------------------------- stages
@dataclass
class BenchConfig:
    device: str = "cpu"
    model: str = "convnet"
    shape: tuple[int, int, int] = (29, 1024, 1024)
    tile: int = 128
    overlap: int = 32
    block: int | None = None
    batch_size: int | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    workers: int | None = None
    threads_per_worker: int | None = None
    gpu_tasks_per_worker: int = 1
    repeat: int = 3
    stages: tuple[str, ...] = STAGES
    input: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _batch(cfg: BenchConfig) -> int:
    from zse.pipeline.options import DEFAULT_BATCH

    return cfg.batch_size or DEFAULT_BATCH["cuda" if _cuda(cfg.device) else "cpu"]


def _tiles_input(n: int, nz: int, tile: int, device: str, seed: int = 0) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, nz, tile, tile), generator=gen) * 2 - 1).to(device)


def model_only(factory: Any, device: str, nz: int, tile: int, batch: int, *, repeat: int = 3,
               min_time: float = 1.0, warmup: int = 2) -> dict[str, Any]:
    """Tiles per second of the predictor alone on `batch` random tiles already on `device`."""
    import torch

    predictor = factory.build(device)
    x = _tiles_input(batch, nz, tile, device)
    with torch.inference_mode():
        for _ in range(warmup):
            predictor(x)
        _sync(device)
        rates = []
        cpu0, n_total = _cpu_seconds([os.getpid()]), 0
        for _ in range(max(1, repeat)):
            n = 0
            t0 = time.perf_counter()
            while True:
                predictor(x)
                n += 1
                _sync(device)
                dt = time.perf_counter() - t0
                if dt >= min_time:
                    break
            rates.append(n * batch / dt)
            n_total += n * batch
        cpu_per_tile = (_cpu_seconds([os.getpid()]) - cpu0) / n_total
    return {"tiles_per_s": max(rates), "tiles_per_s_runs": rates, "batch": batch, "cpu_s_per_tile": cpu_per_tile}


def rel_l2(a: Any, b: Any) -> float:
    import torch

    return float(torch.linalg.vector_norm(a.double() - b.double()) / torch.linalg.vector_norm(b.double()).clamp_min(1e-30))


def precision_error(spec: str, amp: str, device: str, nz: int, tile: int, n: int = 2) -> float:
    """Relative L2 error of the `amp` predictor's output against fp32 on random tiles."""
    import torch

    x = _tiles_input(n, nz, tile, device, seed=1)
    with torch.inference_mode():
        ref = make_factory(spec).build(device)(x)
        out = make_factory(spec, amp=amp).build(device)(x)
    return rel_l2(out, ref)


def flops_per_tile(factory: Any, device: str, nz: int, tile: int) -> float | None:
    """FLOPs of one tile through the predictor (torch.utils.flop_counter; convs and matmuls only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        predictor = factory.build(device)
        x = _tiles_input(1, nz, tile, device)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            predictor(x)
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - an unsupported op must not stop the bench
        return None


def matmul_peak_tflops(device: str, n: int = 8192, iters: int = 10) -> float:
    """Measured bf16 n×n×n matmul rate (TFLOP/s) on `device`: the practical peak of the GPU."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def _warm_worker(factory: Any, device: str, nz: int, tile: int, batch: int) -> int:
    """Build (and cache) the predictor in a Dask worker and run one batch; returns the worker pid."""
    import torch

    from zse.pipeline.infer import get_predictor

    predictor = get_predictor(factory, device)
    with torch.inference_mode():
        predictor(_tiles_input(batch, nz, tile, device))
    _reset_device_peak(device)
    return os.getpid()


def _worker_device_peak(device: str) -> int | None:
    return _device_peak(device)


def pipeline_stage(in_path: Path, out_path: Path, factory: Any, cfg: BenchConfig, *, use_dask: bool) -> dict[str, Any]:
    """Run zse enhance (run_enhance) once, timed, after warming the model where it will run."""
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.plan import tissue_map
    from zse.pipeline.run import plan_run, run_enhance

    opts = make_options(tile=cfg.tile, overlap=cfg.overlap, block=cfg.block, batch_size=cfg.batch_size, device=cfg.device)
    source = open_image(in_path)
    lattice, blocks, _ = plan_run(source, factory, opts)
    tmap = tissue_map(source, opts.tissue_threshold)
    lattice_tiles = int(np.prod(lattice.counts()))
    unique_tissue = sum(tmap.tile_has_tissue(lattice, i, j) for i, j in lattice.all_tiles())
    nz = source.meta.shape_zyx[0]
    batch = opts.resolved_batch()
    res: dict[str, Any] = {"block": opts.resolved_block(), "batch": batch, "margin": lattice.margin, "blocks": len(blocks),
                           "lattice_tiles": lattice_tiles, "tiles_run_unique": unique_tissue}
    res["block_memory_bound"] = block_memory_bound(nz, opts.resolved_block(), lattice, batch, np.dtype(source.meta.dtype).itemsize,
                                                   getattr(factory, "width", None), tuple(source.meta.shape[-2:]))
    device_peak: int | None = None
    with contextlib.ExitStack() as stack:
        client = None
        if use_dask:
            from zse.workflows.cluster import open_client, task_resources

            client = stack.enter_context(open_client(device=cfg.device, workers=cfg.workers, threads_per_worker=cfg.threads_per_worker,
                                                     gpu_tasks_per_worker=cfg.gpu_tasks_per_worker, dashboard_address="none",
                                                     run_dir=str(out_path.parent / "dask")))
            pids = client.run(_warm_worker, factory, cfg.device, nz, cfg.tile, batch)
            info = client.scheduler_info()
            res["dask_workers"] = len(pids)
            res["dask_threads_per_worker"] = sorted({w.get("nthreads") for w in info.get("workers", {}).values()})
            resources = task_resources(client)
        else:
            _warm_worker(factory, cfg.device, nz, cfg.tile, batch)
            resources = None
        pids = [os.getpid(), *(client.run(os.getpid).values() if client is not None else [])]
        cpu0 = _cpu_seconds(pids)
        with MemorySampler() as mem:
            t0 = time.perf_counter()
            summary = run_enhance(source, out_path, factory, opts, client=client, overwrite=True, progress=False, resources=resources)
            wall = time.perf_counter() - t0
        res["cpu_s"] = _cpu_seconds(pids) - cpu0
        if client is not None:
            peaks = [p for p in client.run(_worker_device_peak, cfg.device).values() if p is not None]
            device_peak = max(peaks) if peaks else None
        else:
            device_peak = _device_peak(cfg.device)
    voxels = summary.voxels
    res.update({
        "wall_s": wall,
        "tiles_evaluated": summary.tiles_run,  # model inputs incl. tiles run by two blocks (block halos)
        "tiles_skipped": summary.tiles_skipped,
        "blocks_enhanced": summary.blocks_done,
        "blocks_skipped": summary.blocks_skipped,
        "tiles_run_per_s": unique_tissue / wall,
        "tiles_evaluated_per_s": summary.tiles_run / wall,
        "lattice_tiles_per_s": lattice_tiles / wall,
        "voxels_per_s": voxels / wall,
        "voxels_per_s_processed": voxels * unique_tissue / max(1, lattice_tiles) / wall,
        "peak_device_mem_bytes": device_peak,
        **mem.as_dict(),
    })
    return res


def _cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (this one and the Dask workers); robust to machine load."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def block_memory_bound(nz: int, block: int, lattice: Any, batch: int, in_bytes: int = 1, act_channels: int | None = None,
                       shape_yx: tuple[int, int] | None = None) -> dict[str, int | None]:
    """Bytes one block task holds at its peak (see BENCHMARKS.md, "Memory"), from pipeline/block.py's arrays.

    W = write side (block, clipped to the slide), R = read side (union of the tiles touching the block):
      input      Z·R²·(2·b_in)   zarr read + reflect copy (uint16: + Z·R²·4 for the int32 view)
      unit       Z·R²·4·2        to_unit float32 (and one temporary of the same size)
      merger     Z·W²·4 + W²·4   numerator and denominator: 4 B × (Z + 1) per output pixel
      batch      B·Z·T²·4·3      stacked tiles, model output, weighted tile
      model      B·Z·T²·4·2·C    activations of the widest layer (in + out), C channels
      finish     Z·W²·(4·3 + 1)  finalize values, torch.where copy, from_unit temporaries, uint8 result
    Peak ≈ input + unit + max(merger + batch + model, finish) (merger is freed before finish).
    """
    W = min(block, *(shape_yx or (block, block)))
    R = W + 2 * (lattice.tile - lattice.margin)
    T = lattice.tile
    inp = nz * R * R * 2 * in_bytes
    unit = nz * R * R * 4 * 2
    merger = nz * W * W * 4 + W * W * 4
    bat = batch * nz * T * T * 4 * 3
    model = batch * nz * T * T * 4 * 2 * act_channels if act_channels else 0
    finish = nz * W * W * 13
    return {"write_side": W, "read_side": R, "input": inp, "unit": unit, "merger": merger, "batch": bat,
            "model": model if act_channels else None, "finish": finish,
            "peak": inp + unit + max(merger + bat + model, finish)}


def _lattice_for(shape_yx: tuple[int, int], tile: int, overlap: int, factory: Any) -> Any:
    from zse.pipeline.geometry import Lattice
    from zse.pipeline.run import default_margin

    return Lattice(shape_yx=shape_yx, tile=tile, overlap=overlap, margin=default_margin(factory, overlap))


def naive_stage(in_path: Path, out_path: Path, factory: Any, cfg: BenchConfig) -> dict[str, Any]:
    """What a scientist would write: for every lattice tile, read it, run the model, paste its centre.

    Same lattice as zse (tile, stride, anchor −margin), one tile per model call, the stride × stride cell
    at the tile's centre pasted straight into a Zarr array (read-modify-write of its chunks), no blending,
    no tissue skipping. Edge tiles are reflect-padded with numpy.
    """
    import torch
    import zarr

    from zse.pipeline.io.ngff import open_image

    src = open_image(in_path).levels[0]
    nz, ny, nx = src.shape
    lat = _lattice_for((ny, nx), cfg.tile, cfg.overlap, factory)
    s, core = lat.stride, cfg.tile - 2 * lat.margin
    dst = zarr.create_array(str(out_path), shape=src.shape, chunks=(nz, 256, 256), dtype="uint8", overwrite=True)
    predictor = factory.build(cfg.device)
    with torch.inference_mode():
        predictor(_tiles_input(1, nz, cfg.tile, cfg.device))  # warm-up
    cy, cx = lat.counts()
    cpu0 = _cpu_seconds([os.getpid()])
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        for i in range(cy):
            for j in range(cx):
                b = lat.tile_box(i, j)
                y0, y1, x0, x1 = max(b.y0, 0), min(b.y1, ny), max(b.x0, 0), min(b.x1, nx)
                t = np.asarray(src[:, y0:y1, x0:x1])
                t = np.pad(t, ((0, 0), (y0 - b.y0, b.y1 - y1), (x0 - b.x0, b.x1 - x1)), mode="reflect")
                x = torch.from_numpy(t).to(cfg.device).float().div(127.5).sub(1.0)[None, None]
                with torch.inference_mode():
                    y = predictor(x)[0, 0]
                y = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
                # centre cell [i·s, (i+1)·s) (the last tile keeps its whole core), clipped to the volume
                py0, px0 = i * s, j * s
                py1 = min(ny, py0 + (core if i == cy - 1 else s))
                px1 = min(nx, px0 + (core if j == cx - 1 else s))
                dst[:, py0:py1, px0:px1] = y[:, py0 - b.y0 : py1 - b.y0, px0 - b.x0 : px1 - b.x0]
        _sync(cfg.device)
        wall = time.perf_counter() - t0
    n = cy * cx
    return {"wall_s": wall, "cpu_s": _cpu_seconds([os.getpid()]) - cpu0, "lattice_tiles": n, "tiles_evaluated": n, "lattice_tiles_per_s": n / wall,
            "voxels_per_s": nz * ny * nx / wall, **mem.as_dict()}


def monai_stage(in_path: Path, out_path: Path, factory: Any, cfg: BenchConfig) -> dict[str, Any]:
    """MONAI's sliding window (Gaussian blending, same tile and overlap) over zse's blocks, into Zarr."""
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        raise ConfigError('the MONAI comparison needs MONAI, which is not installed: pip install "zse[bench]" '
                          "(or leave monai out of --stages)") from None
    import torch
    import zarr

    from zse.pipeline.block import read_region
    from zse.pipeline.geometry import make_blocks
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import DEFAULT_BLOCK

    src = open_image(in_path).levels[0]
    nz, ny, nx = src.shape
    lat = _lattice_for((ny, nx), cfg.tile, cfg.overlap, factory)
    block = cfg.block or DEFAULT_BLOCK["cuda" if _cuda(cfg.device) else "cpu"]
    blocks = make_blocks(lat, block)
    dst = zarr.create_array(str(out_path), shape=src.shape, chunks=(nz, 256, 256), dtype="uint8", overwrite=True)
    predictor = factory.build(cfg.device)
    batch = _batch(cfg)
    evaluated = [0]

    def counted(x: Any) -> Any:
        evaluated[0] += x.shape[0]
        return predictor(x)

    with torch.inference_mode():
        predictor(_tiles_input(batch, nz, cfg.tile, cfg.device))  # warm-up
    frac = cfg.overlap / cfg.tile
    cpu0 = _cpu_seconds([os.getpid()])
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        for blk in blocks:
            raw = read_region(src, blk.read_box)
            x = torch.from_numpy(raw).to(cfg.device).float().div(127.5).sub(1.0)[None, None]
            with torch.inference_mode():
                y = sliding_window_inference(x, roi_size=(nz, cfg.tile, cfg.tile), sw_batch_size=batch, predictor=counted,
                                             overlap=(0.0, frac, frac), mode="gaussian", padding_mode="reflect")
            assert isinstance(y, torch.Tensor)
            w = blk.write_box
            y = y[0, 0][:, w.y0 - blk.read_box.y0 : w.y1 - blk.read_box.y0, w.x0 - blk.read_box.x0 : w.x1 - blk.read_box.x0]
            dst[:, w.y0 : w.y1, w.x0 : w.x1] = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        _sync(cfg.device)
        wall = time.perf_counter() - t0
    n = int(np.prod(lat.counts()))
    return {"wall_s": wall, "cpu_s": _cpu_seconds([os.getpid()]) - cpu0, "lattice_tiles": n, "tiles_evaluated": evaluated[0], "lattice_tiles_per_s": n / wall,
            "voxels_per_s": nz * ny * nx / wall, "blocks": len(blocks), "block": block, **mem.as_dict()}


def io_rates(in_path: Path, work: Path) -> dict[str, float]:
    """Decode (read level 0) and encode (write it with zse's codec/chunks/shards) MB/s, one thread, plus
    raw file read MB/s of the input's stored bytes (page cache likely warm: an upper bound for disk)."""
    import zarr

    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import OutputSpec, _compressor

    src = open_image(in_path).levels[0]
    nbytes = int(np.prod(src.shape)) * src.dtype.itemsize
    with zarr.config.set({"async.concurrency": 1, "threading.max_workers": 1}):
        t0 = time.perf_counter()
        data = np.asarray(src[...])
        decode = nbytes / (time.perf_counter() - t0) / 1e6
        img = open_image(in_path)
        spec = OutputSpec(meta=img.meta, block=1024)  # shards clip to the slide: at most one 1024² shard per write
        dst = zarr.create_array(str(work / "encode.zarr"), shape=data.shape, dtype=data.dtype, chunks=spec.chunks_for(data.shape),
                                shards=spec.shards_for(data.shape), compressors=[_compressor("0.5")], overwrite=True)
        t0 = time.perf_counter()
        dst[...] = data
        encode = nbytes / (time.perf_counter() - t0) / 1e6
    stored = 0
    t0 = time.perf_counter()
    for f in Path(src.store.root if hasattr(src.store, "root") else in_path).rglob("*"):
        if f.is_file():
            stored += len(f.read_bytes())
    raw_read = stored / max(time.perf_counter() - t0, 1e-9) / 1e6
    return {"decode_MBps_per_thread": decode, "encode_MBps_per_thread": encode, "file_read_MBps": raw_read,
            "compression_ratio": nbytes / max(1, stored)}


# --------------------------------------------------------------------------------------------- report
def versions() -> dict[str, Any]:
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


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def projection(result: dict[str, Any], factory: Any, cfg: BenchConfig, n_gpus_node: int = 4) -> dict[str, Any]:
    """Hours for one section of 100k × 150k × Z per device and per node, from measured rates, and what limits it."""
    lat = _lattice_for(SECTION_YX, cfg.tile, cfg.overlap, factory)
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
    names = {"model": "(a) model only", "pipeline": "(b) zse enhance, Dask", "pipeline-inproc": "(b') zse enhance, in process",
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


# --------------------------------------------------------------------------------------------- main
def run_sweep(cfg: BenchConfig, nz: int, batches: list[int], precisions: list[str], compile_: bool = True) -> list[dict[str, Any]]:
    """Model-only over batch × precision × channels-last, plus torch.compile at the default batch size
    (convnet only); relative L2 error of each precision against fp32."""
    configs = [(amp, cl, False, b) for amp in precisions for cl in (False, True) for b in batches]
    if compile_ and cfg.model.startswith("convnet"):
        configs += [(amp, False, True, _batch(cfg)) for amp in precisions]
    errors = {amp: 0.0 if amp == "fp32" else precision_error(cfg.model, amp, cfg.device, nz, cfg.tile) for amp in precisions}
    rows = []
    for amp, cl, comp, b in configs:
        row: dict[str, Any] = {"batch": b, "amp": None if amp == "fp32" else amp, "channels_last": cl, "compile": comp, "rel_l2": errors[amp]}
        try:
            _reset_device_peak(cfg.device)
            f = make_factory(cfg.model, amp=amp, channels_last=cl, compile=comp)
            t0 = time.perf_counter()
            row.update(model_only(f, cfg.device, nz, cfg.tile, b, repeat=1, min_time=0.5 if _cuda(cfg.device) else 1.0))
            row["incl_warmup_s"] = time.perf_counter() - t0
            row["peak_device_mem_bytes"] = _device_peak(cfg.device)
        except Exception as exc:  # noqa: BLE001 - OOM or compile failure is a result of the sweep
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            if _cuda(cfg.device):
                import torch

                torch.cuda.empty_cache()
        rows.append(row)
        click.echo(f"sweep {row}", err=True)
    return rows


def run_bench(cfg: BenchConfig, work: Path, *, sweep: dict[str, Any] | None = None, peak: bool | None = None,
              io: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Everything `zse bench` measures, as one JSON-able dict."""
    import torch

    from zse.pipeline.io.write import write_volume

    load_before = [round(x, 2) for x in os.getloadavg()]
    if cfg.input is not None:
        in_path = Path(cfg.input)
        from zse.pipeline.io.ngff import open_image

        shape = tuple(int(s) for s in open_image(in_path).meta.shape_zyx)
    elif not cfg.stages:  # a model-only sweep needs no slide
        in_path, shape = work / "none.zarr", cfg.shape
    else:
        in_path = work / "slide.zarr"
        log(f"bench: writing a synthetic slide {cfg.shape} to {in_path}")
        write_volume(in_path, make_slide(cfg.shape, cfg.seed), voxel_size_um=(1.0, 1.0, 1.0), progress=False, overwrite=True)
        shape = cfg.shape
    nz = shape[0]
    factory = make_factory(cfg.model, amp=cfg.amp, channels_last=cfg.channels_last, compile=cfg.compile)
    batch = _batch(cfg)
    result: dict[str, Any] = {
        "device": cfg.device, "model": cfg.model, "model_name": factory.name, "amp": cfg.amp or "fp32",
        "channels_last": cfg.channels_last, "compile": cfg.compile, "tile": cfg.tile, "overlap": cfg.overlap,
        "slide_shape": list(shape), "batch_size": batch, "block": cfg.block, "stages": {}, "load_before": load_before,
        "versions": versions(),
    }
    stages: dict[str, Any] = result["stages"]
    if _cuda(cfg.device):
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
    if "model" in cfg.stages:
        _reset_device_peak(cfg.device)
        stages["model"] = model_only(factory, cfg.device, nz, cfg.tile, batch, repeat=cfg.repeat)
        stages["model"]["peak_device_mem_bytes"] = _device_peak(cfg.device)
        log(f"bench: (a) model only {stages['model']['tiles_per_s']:.3g} tiles/s (batch {batch})")
        if result["flops_per_tile"]:
            result["model_tflops"] = stages["model"]["tiles_per_s"] * result["flops_per_tile"] / 1e12
    for key, use_dask in (("pipeline", True), ("pipeline-inproc", False)):
        if key in cfg.stages:
            best: dict[str, Any] | None = None
            for _ in range(2 if _cuda(cfg.device) else 1):
                _reset_device_peak(cfg.device)
                r = pipeline_stage(in_path, work / f"{key}.zarr", factory, cfg, use_dask=use_dask)
                best = r if best is None or r["wall_s"] < best["wall_s"] else best
            assert best is not None
            stages[key] = best
            log(f"bench: (b) {key}: {best['wall_s']:.2f} s, {best['tiles_run_per_s']:.3g} tiles run/s, "
                f"{best['lattice_tiles_per_s']:.3g} lattice tiles/s")
            result.update(lattice_tiles=best["lattice_tiles"], tiles_run_unique=best["tiles_run_unique"],
                          tissue_fraction=best["tiles_run_unique"] / best["lattice_tiles"])
    if "naive" in cfg.stages:
        _reset_device_peak(cfg.device)
        stages["naive"] = naive_stage(in_path, work / "naive.zarr", factory, cfg)
        stages["naive"]["peak_device_mem_bytes"] = _device_peak(cfg.device)
        log(f"bench: (c) naive {stages['naive']['wall_s']:.2f} s, {stages['naive']['lattice_tiles_per_s']:.3g} tiles/s")
    if "monai" in cfg.stages:
        _reset_device_peak(cfg.device)
        stages["monai"] = monai_stage(in_path, work / "monai.zarr", factory, cfg)
        stages["monai"]["peak_device_mem_bytes"] = _device_peak(cfg.device)
        log(f"bench: (d) MONAI {stages['monai']['wall_s']:.2f} s, {stages['monai']['lattice_tiles_per_s']:.3g} tiles/s")
    if io and cfg.stages:
        result["io"] = io_rates(in_path, work)

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
        "pipeline_over_model": _ratio(pipe.get("tiles_run_per_s"), result["model_only_tiles_per_s"]),
        "inproc_over_model": _ratio(inproc.get("tiles_run_per_s"), result["model_only_tiles_per_s"]),
        "pipeline_over_naive": _ratio(result["pipeline_tiles_per_s"], result["naive_tiles_per_s"]),
        "pipeline_over_monai": _ratio(result["pipeline_tiles_per_s"], result["monai_tiles_per_s"]),
        "inproc_over_naive": _ratio(inproc.get("lattice_tiles_per_s"), result["naive_tiles_per_s"]),
        "inproc_over_monai": _ratio(inproc.get("lattice_tiles_per_s"), result["monai_tiles_per_s"]),
    }
    if not _cuda(cfg.device):  # CPU seconds: robust to other processes sharing the cores
        m_cpu = (stages.get("model") or {}).get("cpu_s_per_tile")
        per_tile = pipe.get("cpu_s") / pipe["tiles_run_unique"] if pipe.get("cpu_s") else None
        result["ratios"]["cpu_s_pipeline_over_model"] = _ratio(m_cpu, per_tile)
        result["ratios"]["cpu_s_inproc_over_model"] = _ratio(m_cpu, inproc.get("cpu_s") / inproc["tiles_run_unique"] if inproc.get("cpu_s") else None)
        result["ratios"]["cpu_s_pipeline_over_naive"] = _ratio((stages.get("naive") or {}).get("cpu_s"), pipe.get("cpu_s"))
        result["ratios"]["cpu_s_pipeline_over_monai"] = _ratio((stages.get("monai") or {}).get("cpu_s"), pipe.get("cpu_s"))
    rss = [s.get("peak_rss_total_bytes") for s in stages.values() if s.get("peak_rss_total_bytes")]
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["peak_host_mem_bytes"] = max([*rss, ru])
    dev = [s.get("peak_device_mem_bytes") for s in stages.values() if s.get("peak_device_mem_bytes") is not None]
    result["peak_device_mem_bytes"] = max(dev) if dev else (0 if _cuda(cfg.device) else None)
    result["projection"] = projection(result, factory, cfg)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    opt = f"--tile {cfg.tile} --overlap {cfg.overlap}" + (f" --block {cfg.block}" if cfg.block else "") + f" --batch-size {batch}"
    model = cfg.model if not cfg.model.startswith("convnet") else "MODEL"
    note = "  (convnet is bench-only: zse enhance takes registry models)" if model == "MODEL" else ""
    result["commands"] = [
        "zse " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name in ("zse", "cli.py", "__main__.py") else "zse bench (called from Python)",
        f"zse enhance {in_path} OUT.zarr --model {model} --device {cfg.device} {opt} --overwrite   # (b), Dask{note}",
        f"zse enhance {in_path} OUT.zarr --model {model} --device {cfg.device} {opt} --workers 0 --overwrite   # (b'), in process",
    ]
    return result


def _parse_shape(value: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in value.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise ConfigError(f"--shape {value!r} is invalid; expected Z,Y,X such as 29,1024,1024")
    if parts[0] < 3:
        raise ConfigError(f"--shape {value!r}: zse needs at least 3 z planes")
    return parts  # type: ignore[return-value]


def _parse_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{what} {value!r} is empty")
    return items


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


@click.command("bench")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--model", default="convnet", show_default=True,
              help="convnet[:WIDTH] (random-weight 3D conv stand-in, width 8 by default) or a registry name / model file.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results as JSON to FILE and as Markdown to FILE with suffix .md.")
@click.option("--shape", default="29,1024,1024", show_default=True, help="Z,Y,X of the synthetic slide.")
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Bench on this OME-Zarr instead of a synthetic slide (e.g. one written by `zse synth`).")
@click.option("--tile", default=128, show_default=True)
@click.option("--overlap", default=32, show_default=True)
@click.option("--block", type=int, default=None, help="Block side (default: zse enhance's, 1024 on CPU, 4096 on GPU).")
@click.option("--batch-size", type=int, default=None, help="Tiles per model call (default: zse enhance's, 4 on CPU, 16 on GPU).")
@click.option("--amp", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True, help="Autocast precision.")
@click.option("--channels-last", is_flag=True, help="channels_last_3d input/weights.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (convnet only).")
@click.option("--workers", type=int, default=None, help="Dask worker processes for (b) (default: open_client's).")
@click.option("--threads-per-worker", type=int, default=None, help="Dask threads per worker for (b) (default: open_client's).")
@click.option("--gpu-tasks-per-worker", type=int, default=1, show_default=True, help="Block tasks sharing one GPU at a time in (b).")
@click.option("--stages", default=",".join(STAGES), show_default=True, help="Which stages to run.")
@click.option("--repeat", default=3, show_default=True, help="Timed repeats of the model-only stage (best kept).")
@click.option("--seed", default=0, show_default=True)
@click.option("--sweep", is_flag=True, help="Model-only sweep over --sweep-batches × --sweep-precisions × channels-last × compile.")
@click.option("--sweep-batches", default="1,2,4,8,16,32", show_default=True)
@click.option("--sweep-precisions", default="fp32,bf16,fp16", show_default=True)
@click.option("--peak/--no-peak", default=None, help="Measure the bf16 8192³ matmul peak (default: on cuda).")
@click.option("--io/--no-io", "io_", default=True, show_default=True, help="Measure decode/encode/file-read rates for the projection.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where to write slides and outputs (default: a temp dir).")
@click.option("--keep", is_flag=True, help="Keep the temporary work directory.")
def bench(device: str, model: str, out: Path | None, shape: str, input_path: Path | None, tile: int, overlap: int,
          block: int | None, batch_size: int | None, amp: str, channels_last: bool, compile_: bool, workers: int | None,
          threads_per_worker: int | None, gpu_tasks_per_worker: int, stages: str, repeat: int, seed: int, sweep: bool, sweep_batches: str,
          sweep_precisions: str, peak: bool | None, io_: bool, workdir: Path | None, keep: bool) -> None:
    """Benchmark zse enhance against the model alone, a naive tile loop and MONAI's sliding window."""
    from zse.workflows.enhance import check_device

    check_device(device)
    stage_list = tuple(_parse_list(stages, "--stages"))
    bad = [s for s in stage_list if s not in STAGES]
    if bad:
        raise ConfigError(f"--stages {','.join(bad)} unknown; valid: {', '.join(STAGES)}")
    ctx = click.get_current_context()
    if sweep and ctx.get_parameter_source("stages") is not click.core.ParameterSource.COMMANDLINE:
        stage_list = ()  # --sweep alone: only the sweep
    if "monai" in stage_list:
        try:
            import monai  # noqa: F401
        except ImportError:
            raise ConfigError('the MONAI comparison needs MONAI, which is not installed: pip install "zse[bench]" '
                              "(or leave monai out of --stages)") from None
    if overlap >= tile or overlap < 0:
        raise ConfigError(f"--overlap {overlap} must be in [0, --tile {tile})")
    cfg = BenchConfig(device=device, model=model, shape=_parse_shape(shape), tile=tile, overlap=overlap, block=block,
                      batch_size=batch_size, amp=None if amp == "fp32" else amp, channels_last=channels_last, compile=compile_,
                      seed=seed, workers=workers, threads_per_worker=threads_per_worker,
                      gpu_tasks_per_worker=gpu_tasks_per_worker, repeat=repeat, stages=stage_list,
                      input=input_path)
    sweep_cfg = None
    if sweep:
        sweep_cfg = {"batches": [int(b) for b in _parse_list(sweep_batches, "--sweep-batches")],
                     "precisions": _parse_list(sweep_precisions, "--sweep-precisions")}
    make_factory(model, amp=cfg.amp)  # fail early on an unknown model
    with _workdir(workdir, keep) as work:
        result = run_bench(cfg, work, sweep=sweep_cfg, peak=peak, io=io_ and not sweep,
                           log=lambda m: click.echo(m, err=True))
    text = render_markdown(result)
    click.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str))
        out.with_suffix(".md").write_text(text)
        click.echo(f"bench: wrote {out} and {out.with_suffix('.md')}", err=True)


__all__ = ["bench", "run_bench", "make_factory", "make_slide", "ConvNetFactory", "BenchConfig", "JSON_KEYS", "replace"]
