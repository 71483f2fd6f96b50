"""The level-0 tasks stage (zse.pipeline.run) for one block: the body of one Dask task.

read (with its halo, reflect-padded about the volume edges) → cut lattice tiles → batched model calls on
the device → weighted accumulation (Merger) → quantise → write the block's own aligned region → mark done.

Tiles are visited in row-major lattice order and every model call gets exactly `batch_size` tiles (the
last batch is padded by repeating its last tile: a convolution's rounding may depend on the batch size),
so each tile's result, and each pixel's float sum, is the same whatever the block size. A model whose
cost is per tile skips the repeats (rl-deconv). The block's region of the first pyramid levels is
written from the block in memory (`_write_levels`).

A model with z scale sz > 1 (zse.pipeline.zscale) returns Z·sz planes per tile; the block's output then has
Z·sz planes, and the pixels it copies through (background) have each input plane repeated sz times.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr

from zse.errors import InputError
from zse.pipeline.blend import Merger, weights_2d
from zse.pipeline.geometry import Block, Box, Lattice, reflect_indices
from zse.pipeline.infer import PredictorFactory, get_predictor
from zse.pipeline.intensity import from_unit, to_unit
from zse.pipeline.io.chunks import open_source_array
from zse.pipeline.io.write import clear_region, open_output_array, sync_region
from zse.pipeline.plan import mark_done
from zse.pipeline.progress import report_tiles
from zse.pipeline.zscale import repeat_planes


@dataclass(frozen=True)
class BlockTask:
    """Everything one block task needs; small and picklable.

    source_array, output_array: paths of the level-0 zarr arrays (axes zyx or czyx).
    tissue: for each tile of `block.tiles`, whether it contains tissue (False tiles are not run).
    memory_levels: pyramid levels 1..memory_levels written from the block in memory, each to its own
        aligned region (`zse.pipeline.io.write.OutputSpec.memory_levels`).
    scale_z: output planes per input plane (the model's z scale, zse.pipeline.run.RunPlan.scale_z).
    """

    source_array: str
    output_array: str
    output_root: str
    block: Block
    lattice: Lattice
    dtype: str
    factory: PredictorFactory
    device: str
    batch_size: int
    tissue: tuple[bool, ...]
    memory_levels: int = 0
    scale_z: int = 1


_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


WORKER_CORES_ENV = "ZSE_WORKER_CORES"
"""Set by the cluster's worker plugin (zse.workflows.cluster.local.TorchThreads): the cores of one worker."""

_RUNNING = 0
_RUNNING_GUARD = threading.Lock()


@contextlib.contextmanager
def share_cores(device: str) -> Iterator[None]:
    """A CPU block task runs with torch intra-op threads = the worker's cores / the block tasks running in
    it when it starts (torch's setting is per OS thread, and each Dask task has its own), so that one
    block alone (a small slide) uses every core and later ones share them. A no-op in process (no worker
    plugin: torch's own setting stays) and on GPUs."""
    global _RUNNING
    try:
        cores = int(os.environ.get(WORKER_CORES_ENV, "0"))
    except ValueError:
        cores = 0
    if cores <= 0 or device != "cpu":
        yield
        return
    with _RUNNING_GUARD:
        _RUNNING += 1
        torch.set_num_threads(max(1, cores // _RUNNING))
    try:
        yield
    finally:
        with _RUNNING_GUARD:
            _RUNNING -= 1
            torch.set_num_threads(max(1, cores // max(1, _RUNNING)))


def device_lock(device: str) -> threading.Lock:
    """One lock per accelerator in this process: while one block task computes on the GPU, the worker's
    other block tasks read, decompress, quantise and write (2–3 block tasks per GPU overlap I/O and compute)."""
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


def _open(path: str, mode: str) -> zarr.Array:
    # Opened per task (cheap: one metadata read), never cached: an output may be re-created between runs.
    # Read-only arrays (IN, and the level a pyramid level is built from) decode through the checked codecs.
    return open_source_array(path) if mode == "r" else open_output_array(path)


def read_region(array: zarr.Array, box: Box, label: str = "input") -> np.ndarray:
    """Read `box` (may exceed the volume) of a (…, Z, Y, X) array with reflect padding; returns (…, Z, by, bx).

    Beyond the volume, pixels are mirrored about the volume edges (numpy's "reflect": the edge pixel is
    not repeated), as `geometry.reflect_indices` defines. Boxes inside the volume (most blocks) are a
    plain slice; only boxes that cross an edge pay for the index gather.
    """
    ny, nx = array.shape[-2:]
    if box.y0 >= 0 and box.x0 >= 0 and box.y1 <= ny and box.x1 <= nx:
        return _read(array, box, label)
    iy = reflect_indices(box.y0, box.y1, ny)
    ix = reflect_indices(box.x0, box.x1, nx)
    y0, y1, x0, x1 = int(iy.min()), int(iy.max()) + 1, int(ix.min()), int(ix.max()) + 1
    data = _read(array, Box(y0, x0, y1, x1), label)
    return np.take(np.take(data, iy - y0, axis=-2), ix - x0, axis=-1)


def _read(array: zarr.Array, box: Box, label: str) -> np.ndarray:
    try:
        return np.asarray(array[..., box.y0 : box.y1, box.x0 : box.x1])
    except Exception as exc:
        raise InputError(f"cannot read {label} region y {box.y0}:{box.y1}, x {box.x0}:{box.x1} of {array.store}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def predict_block(
    data: torch.Tensor,
    read_box: Box,
    write_box: Box,
    lattice: Lattice,
    tiles: tuple[tuple[int, int], ...],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    on_tiles: Callable[[int], None] | None = None,
    scale_z: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model output over `write_box` from tiles cut out of `data`.

    data: float32 (Z, RY, RX) in [-1, 1] covering `read_box`, on the predictor's device.
    on_tiles(n): called after each batch with the number of tiles it ran (progress).
    scale_z: the model's z scale sz: it maps a tile (Z, Y, X) to (Z·sz, Y, X).
    Returns (values float32 (Z·sz, WY, WX), covered bool (WY, WX)); uncovered pixels (no tile run) are 0.
    """
    n_planes = data.shape[0] * scale_z
    merger = Merger(write_box, n_planes, torch.from_numpy(weights_2d(lattice)), device=data.device)
    boxes = [lattice.tile_box(i, j) for i, j in tiles]
    batch_size = max(1, batch_size)
    start = 0
    while start < len(boxes):
        chunk = boxes[start : start + batch_size]
        batch = torch.stack([data[(slice(None), *b.slices(origin=read_box))] for b in chunk])
        pad = batch_size - len(chunk)
        if pad:  # every call the same batch size: per-tile results cannot depend on the block (see above)
            batch = torch.cat([batch, batch[-1:].expand(pad, *batch.shape[1:])])
        try:
            out = predictor(batch[:, None])
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            torch.cuda.empty_cache()
            batch_size //= 2  # back off; later batches use the smaller size
            continue
        want = (batch.shape[0], 1, n_planes, *batch.shape[2:])
        if tuple(out.shape) != want:
            raise InputError(f"the model returned shape {tuple(out.shape)} for input {tuple(batch[:, None].shape)}; "
                             f"expected {want}: zse models map (N, 1, Z, Y, X) to (N, 1, Z·sz, Y, X), here sz = {scale_z}")
        for k, b in enumerate(chunk):
            merger.add(out[k, 0].float(), b)
        start += len(chunk)
        if on_tiles is not None:
            on_tiles(len(chunk))
    return merger.finalize()


def process_block(task: BlockTask) -> dict[str, int | str]:
    """Run one block end to end; returns a small summary. Idempotent: rerunning rewrites the same shard."""
    with share_cores(task.device):
        return _process_block(task)


def _process_block(task: BlockTask) -> dict[str, int | str]:
    src = _open(task.source_array, "r")
    dst = _open(task.output_array, "r+")
    block = task.block
    run_tiles = tuple(t for t, has in zip(block.tiles, task.tissue, strict=True) if has)
    clear_region(dst, block.write_box)  # a torn shard from an interrupted write must not be merged into
    if not run_tiles:
        _write_levels(task, repeat_planes(read_region(src, block.write_box), task.scale_z), "skipped")
        report_tiles(len(block.tiles))
        return {"state": "skipped", "tiles": 0, "tiles_skipped": len(block.tiles)}
    # Read only the union of the tiles we run (plus the write box, for copy-through pixels).
    rbox = block.write_box
    for t in run_tiles:
        rbox = rbox.union(task.lattice.tile_box(*t))
    raw = read_region(src, rbox)
    predictor = get_predictor(task.factory, task.device)
    device = torch.device(task.device)
    raw_t = torch.from_numpy(raw.astype(np.int32) if raw.dtype == np.uint16 else raw)
    if device.type == "cuda":
        raw_t = raw_t.pin_memory().to(device, non_blocking=True)
    channels = raw_t[None] if raw_t.ndim == 3 else raw_t
    results = []
    gpu_phase = device_lock(str(device)) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode():
        for c in range(channels.shape[0]):
            with gpu_phase:
                data = to_unit(channels[c], task.dtype)
                values, covered = predict_block(data, rbox, block.write_box, task.lattice, run_tiles, predictor, task.batch_size,
                                                on_tiles=report_tiles if c == 0 else None, scale_z=task.scale_z)
                if not bool(covered.all()):  # pixels no tissue tile covers keep their input value
                    inp = data[(slice(None), *block.write_box.slices(origin=rbox))]
                    if task.scale_z > 1:  # each plane repeated sz times, as zse.pipeline.zscale.repeat_planes
                        inp = inp.repeat_interleave(task.scale_z, dim=0)
                    values = torch.where(covered[None], values, inp)
                quantised = from_unit(values, task.dtype)
            results.append(quantised.cpu().numpy())
    out = np.stack(results) if raw.ndim == 4 else results[0]
    _write_levels(task, out.astype(task.dtype, copy=False), "done")
    report_tiles(len(block.tiles) - len(run_tiles))
    return {"state": "done", "tiles": len(run_tiles), "tiles_skipped": len(block.tiles) - len(run_tiles)}


def _write_levels(task: BlockTask, level0: np.ndarray, state: str) -> None:
    """Write the block's level-0 region (`level0`, (…, WY, WX) of the output dtype) and then, from it in
    memory, its region of levels 1..task.memory_levels (2×2 means, `downsample_mean_yx`: the same values as
    building each level from the one above on disk); each region is synced before its done-marker, so a
    kill between two levels leaves the later ones to the pyramid stage."""
    from zse.pipeline.pyramid import downsample_mean_yx

    box = task.block.write_box
    data = level0
    for level in range(task.memory_levels + 1):
        if level:
            data = downsample_mean_yx(data)
            y0, x0 = box.y0 >> level, box.x0 >> level  # block origins are multiples of 2^memory_levels
            box_l = Box(y0, x0, y0 + data.shape[-2], x0 + data.shape[-1])
        else:
            box_l = box
        dst = _open(output_arrays(task.output_root, level), "r+")
        if level:
            clear_region(dst, box_l)  # level 0's region was cleared before the model ran
        dst[(..., *box_l.slices())] = data
        sync_region(dst, box_l)  # data durable before its marker
        mark_done(task.output_root, level, task.block.index, state if level == 0 else "done")


def process_level_region(src_array: str, dst_array: str, output_root: str, level: int, index: tuple[int, int], box: Box) -> str:
    """One pyramid task: level `level` region `box` from level `level − 1`; marks it done."""
    from zse.pipeline.pyramid import write_level_region

    dst = _open(dst_array, "r+")
    clear_region(dst, box)
    write_level_region(_open(src_array, "r"), dst, box)
    sync_region(dst, box)
    mark_done(output_root, level, index, "done")
    return "done"


def output_arrays(out_path: str | Path, level: int) -> str:
    return str(Path(out_path) / str(level))
