"""The bench's measurements, each over the same slide and tile lattice (tile, stride = tile − overlap):

    model_only      tiles/s of the predictor alone on batches already on the device (after warm-up)
    pipeline_stage  the enhance job (zse.workflows.enhance.enhance) in process (workers=0) or on a Dask
                    client opened here as zse enhance opens it (`open_client`, --cluster local or
                    local-cuda; passed as client=), after warming the model where it runs
    naive_stage     a Python loop over the lattice: read a tile, run the model, paste its centre (no blending)
    monai_stage     monai.inferers.sliding_window_inference (Gaussian blending) over zse's blocks
    io_rates        decode, encode and stored-file read MB/s (for the projection)
    (host work per tile, with the identity model: zse.workflows.bench.host)

Intensities go to the model range and back through zse.pipeline.intensity (to_unit, from_unit), for
any dtype zse reads.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zse.errors import ConfigError
from zse.models.testing import ConvNetFactory, rel_l2
from zse.workflows.bench.config import BenchConfig, bench_lattice, make_factory
from zse.workflows.bench.memory import (
    MemorySampler,
    block_memory_bound,
    cpu_seconds,
    device_peak,
    reset_device_peak,
    sync,
)

if TYPE_CHECKING:
    import torch

    from zse.pipeline.infer import PredictorFactory

MONAI_MISSING = ('the MONAI comparison needs MONAI, which is not installed: pip install "zse[bench]" '
                 "(or leave monai out of --stages)")


def tiles_input(n: int, nz: int, tile: int, device: str, seed: int = 0) -> torch.Tensor:
    """`n` random tiles (n, 1, nz, tile, tile), float32 uniform in [-1, 1), on `device`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, nz, tile, tile), generator=gen) * 2 - 1).to(device)


def model_only(factory: PredictorFactory, device: str, nz: int, tile: int, batch: int, *, repeat: int = 3,
               min_time: float = 1.0, warmup: int = 2) -> dict[str, Any]:
    """Tiles per second of the predictor alone on `batch` random tiles already on `device`."""
    import torch

    predictor = factory.build(device)
    x = tiles_input(batch, nz, tile, device)
    with torch.inference_mode():
        for _ in range(warmup):
            predictor(x)
        sync(device)
        rates = []
        cpu0, n_total = cpu_seconds([os.getpid()]), 0
        for _ in range(max(1, repeat)):
            n = 0
            t0 = time.perf_counter()
            while True:
                predictor(x)
                n += 1
                sync(device)
                dt = time.perf_counter() - t0
                if dt >= min_time:
                    break
            rates.append(n * batch / dt)
            n_total += n * batch
        cpu_per_tile = (cpu_seconds([os.getpid()]) - cpu0) / n_total
    return {"tiles_per_s": max(rates), "tiles_per_s_runs": rates, "batch": batch, "cpu_s_per_tile": cpu_per_tile}


def precision_error(spec: str, amp: str, device: str, nz: int, tile: int, n: int = 2) -> float:
    """Relative L2 error of the `amp` predictor's output against fp32 on random tiles."""
    import torch

    x = tiles_input(n, nz, tile, device, seed=1)
    with torch.inference_mode():
        ref = make_factory(spec).build(device)(x)
        out = make_factory(spec, amp=amp).build(device)(x)
    return rel_l2(out, ref)


def flops_per_tile(factory: PredictorFactory, device: str, nz: int, tile: int) -> float | None:
    """FLOPs of one tile through the predictor (torch.utils.flop_counter; convs and matmuls only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        predictor = factory.build(device)
        x = tiles_input(1, nz, tile, device)
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


def warm_predictor(factory: PredictorFactory, device: str, nz: int, tile: int, batch: int) -> int:
    """Build (and cache) the predictor in this process (a Dask worker too) and run one batch; returns the pid."""
    import torch

    from zse.pipeline.infer import get_predictor

    predictor = get_predictor(factory, device)
    with torch.inference_mode():
        predictor(tiles_input(batch, nz, tile, device))
    reset_device_peak(device)
    return os.getpid()


def pipeline_stage(in_path: Path, out_path: Path, factory: PredictorFactory, cfg: BenchConfig, *,
                   use_dask: bool) -> dict[str, Any]:
    """Run the enhance job once, timed, after warming the model where it will run: on a Dask client opened
    here with `cfg.cluster` (`use_dask`; passed as `client=`) or in this process (`workers=0`). The job's
    model check runs one tile on the CPU here first; that predictor is warmed too, so the time is the run's
    steady state."""
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.run import plan_run
    from zse.workflows.cluster import open_client
    from zse.workflows.enhance import enhance

    opts = cfg.options()
    source = open_image(in_path)
    plan = plan_run(source, factory, opts)
    lattice, tmap = plan.lattice, plan.tissue
    lattice_tiles = int(np.prod(lattice.counts()))
    unique_tissue = sum(tmap is None or tmap.tile_has_tissue(lattice, i, j) for i, j in lattice.all_tiles())
    nz, tile = source.meta.shape_zyx[0], lattice.tile
    batch = opts.resolved_batch()
    res: dict[str, Any] = {"block": opts.resolved_block(), "batch": batch, "margin": lattice.margin, "blocks": len(plan.blocks),
                           "lattice_tiles": lattice_tiles, "tiles_run_unique": unique_tissue}
    width = factory.width if isinstance(factory, ConvNetFactory) else None
    res["block_memory_bound"] = block_memory_bound(nz, opts.resolved_block(), lattice, batch, np.dtype(source.meta.dtype).itemsize,
                                                   width, (int(source.meta.shape[-2]), int(source.meta.shape[-1])))
    with contextlib.ExitStack() as stack:
        client = None
        if use_dask:
            client = stack.enter_context(open_client(device=cfg.device, workers=cfg.workers, threads_per_worker=cfg.threads_per_worker,
                                                     gpu_tasks_per_worker=cfg.gpu_tasks_per_worker, cluster=cfg.cluster,
                                                     dashboard_address="none", run_dir=str(out_path.parent / "dask")))
            pids = client.run(warm_predictor, factory, cfg.device, nz, tile, batch)
            info = client.scheduler_info()
            res["dask_workers"] = len(pids)
            res["dask_threads_per_worker"] = sorted({w.get("nthreads") for w in info.get("workers", {}).values()})
            res["cluster"] = cfg.cluster
        else:
            warm_predictor(factory, cfg.device, nz, tile, batch)
        warm_predictor(factory, "cpu", nz, min(tile, 128), 1)  # the model check of the job (zse.pipeline.run.check_model)
        pids = [os.getpid(), *(client.run(os.getpid).values() if client is not None else [])]
        cpu0 = cpu_seconds(pids)
        with MemorySampler() as mem:
            t0 = time.perf_counter()
            summary = enhance(source, out_path, factory, tile=tile, overlap=lattice.overlap, block=cfg.block,
                              batch_size=cfg.batch_size, device=cfg.device, overwrite=True, progress=False,
                              workers=None if use_dask else 0, client=client)
            wall = time.perf_counter() - t0
        res["cpu_s"] = cpu_seconds(pids) - cpu0
        if client is not None:
            peaks = [p for p in client.run(device_peak, cfg.device).values() if p is not None]
            peak = max(peaks) if peaks else None
        else:
            peak = device_peak(cfg.device)
    voxels = summary.voxels
    res.update({
        "wall_s": wall,
        "tile": summary.tile, "overlap": summary.overlap,  # as the job set them (the bench's must agree)
        "tiles_evaluated": summary.tiles_run,  # model inputs incl. tiles run by two blocks (block halos)
        "tiles_skipped": summary.tiles_skipped,
        "blocks_enhanced": summary.blocks_done,
        "blocks_skipped": summary.blocks_skipped,
        "tiles_run_per_s": unique_tissue / wall,
        "tiles_evaluated_per_s": summary.tiles_run / wall,
        "lattice_tiles_per_s": lattice_tiles / wall,
        "voxels_per_s": voxels / wall,
        "voxels_per_s_processed": voxels * unique_tissue / max(1, lattice_tiles) / wall,
        "peak_device_mem_bytes": peak,
        **mem.as_dict(),
    })
    return res


def _to_model(raw: np.ndarray, device: str) -> torch.Tensor:
    """Stored intensities (Z, Y, X) → float32 (1, 1, Z, Y, X) in [-1, 1] on `device` (intensity.to_unit)."""
    import torch

    from zse.pipeline.intensity import to_unit

    t = torch.from_numpy(raw.astype(np.int32) if raw.dtype == np.uint16 else raw)  # torch has no uint16 arithmetic
    return to_unit(t.to(device), raw.dtype)[None, None]


def _from_model(y: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """Model output (Z, Y, X) in [-1, 1] → stored intensities of `dtype` on the host (intensity.from_unit)."""
    from zse.pipeline.intensity import from_unit

    return from_unit(y, dtype).cpu().numpy().astype(dtype, copy=False)


def naive_stage(in_path: Path, out_path: Path, factory: PredictorFactory, cfg: BenchConfig) -> dict[str, Any]:
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
    lat = bench_lattice((ny, nx), cfg, factory)
    s, core = lat.stride, lat.tile - 2 * lat.margin
    dst = zarr.create_array(str(out_path), shape=src.shape, chunks=(nz, 256, 256), dtype=src.dtype, overwrite=True)
    predictor = factory.build(cfg.device)
    with torch.inference_mode():
        predictor(tiles_input(1, nz, lat.tile, cfg.device))  # warm-up
    cy, cx = lat.counts()
    cpu0 = cpu_seconds([os.getpid()])
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        for i in range(cy):
            for j in range(cx):
                b = lat.tile_box(i, j)
                y0, y1, x0, x1 = max(b.y0, 0), min(b.y1, ny), max(b.x0, 0), min(b.x1, nx)
                t = np.asarray(src[:, y0:y1, x0:x1])
                t = np.pad(t, ((0, 0), (y0 - b.y0, b.y1 - y1), (x0 - b.x0, b.x1 - x1)), mode="reflect")
                with torch.inference_mode():
                    y = _from_model(predictor(_to_model(t, cfg.device))[0, 0], src.dtype)
                # centre cell [i·s, (i+1)·s) (the last tile keeps its whole core), clipped to the volume
                py0, px0 = i * s, j * s
                py1 = min(ny, py0 + (core if i == cy - 1 else s))
                px1 = min(nx, px0 + (core if j == cx - 1 else s))
                dst[:, py0:py1, px0:px1] = y[:, py0 - b.y0 : py1 - b.y0, px0 - b.x0 : px1 - b.x0]
        sync(cfg.device)
        wall = time.perf_counter() - t0
    n = cy * cx
    return {"wall_s": wall, "cpu_s": cpu_seconds([os.getpid()]) - cpu0, "lattice_tiles": n, "tiles_evaluated": n,
            "lattice_tiles_per_s": n / wall, "voxels_per_s": nz * ny * nx / wall, **mem.as_dict()}


def monai_stage(in_path: Path, out_path: Path, factory: PredictorFactory, cfg: BenchConfig) -> dict[str, Any]:
    """MONAI's sliding window (Gaussian blending, same tile and overlap) over zse's blocks, into Zarr."""
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        raise ConfigError(MONAI_MISSING) from None
    import torch
    import zarr

    from zse.pipeline.block import read_region
    from zse.pipeline.geometry import make_blocks
    from zse.pipeline.io.ngff import open_image

    src = open_image(in_path).levels[0]
    nz, ny, nx = src.shape
    lat = bench_lattice((ny, nx), cfg, factory)
    block = cfg.options().resolved_block()
    blocks = make_blocks(lat, block)
    dst = zarr.create_array(str(out_path), shape=src.shape, chunks=(nz, 256, 256), dtype=src.dtype, overwrite=True)
    predictor = factory.build(cfg.device)
    batch = cfg.batch()
    evaluated = [0]

    def counted(x: torch.Tensor) -> torch.Tensor:
        evaluated[0] += x.shape[0]
        return predictor(x)

    with torch.inference_mode():
        predictor(tiles_input(batch, nz, lat.tile, cfg.device))  # warm-up
    frac = lat.overlap / lat.tile
    cpu0 = cpu_seconds([os.getpid()])
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        for blk in blocks:
            x = _to_model(read_region(src, blk.read_box), cfg.device)
            with torch.inference_mode():
                y = sliding_window_inference(x, roi_size=(nz, lat.tile, lat.tile), sw_batch_size=batch, predictor=counted,
                                             overlap=(0.0, frac, frac), mode="gaussian", padding_mode="reflect")
            assert isinstance(y, torch.Tensor)
            w, r = blk.write_box, blk.read_box
            y = y[0, 0][:, w.y0 - r.y0 : w.y1 - r.y0, w.x0 - r.x0 : w.x1 - r.x0]
            dst[:, w.y0 : w.y1, w.x0 : w.x1] = _from_model(y, src.dtype)
        sync(cfg.device)
        wall = time.perf_counter() - t0
    n = int(np.prod(lat.counts()))
    return {"wall_s": wall, "cpu_s": cpu_seconds([os.getpid()]) - cpu0, "lattice_tiles": n, "tiles_evaluated": evaluated[0],
            "lattice_tiles_per_s": n / wall, "voxels_per_s": nz * ny * nx / wall, "blocks": len(blocks), "block": block,
            **mem.as_dict()}


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
