"""Host work per tile: what `zse enhance` costs besides the model, stage by stage (issue 15, "Must work" 1).

The enhance job itself runs (`zse.workflows.enhance.enhance`, in this process: `workers=0`), with the
identity model, one torch thread and one zarr codec thread, while timers wrap the pipeline's own functions
(`stage_timers`): nothing of the pipeline is copied here, so the figure follows the code as it changes.
Each timer counts its own time only (a timed call inside another is taken out of the outer one):

    tissue    zse.pipeline.run.tissue_map                     low-resolution read, tissue mask
    read      zse.pipeline.block.read_region                  zarr decode of the block (+ reflect gather at edges)
    write     level 0: zarr.Array.__setitem__ (encode, files), clear_region, sync_region (fsync)
    pyramid   levels ≥ 1: downsample_mean_yx, their __setitem__, clear_region, sync_region, and the
              pyramid tasks (process_level_region: re-read of the level above)
    markers   zse.pipeline.block.mark_done                    done markers
    output    create_output, write_run_record, finalize_output
    unit, blend, quantise   to_unit, predict_block (tile cutting, the model, Merger), from_unit: on a GPU
              these run on the device, so they are reported beside the host work, not in it
    other     the rest of the run's wall time (planning, checks, the lock, the model check, copies to host)

host work = tissue + read + write + pyramid + markers + output, in ms per tile run (unique lattice tiles
with tissue, the tiles the model sees: the unit of the model-only rate; tiles a block's halo makes two
blocks run count once) and per lattice tile. Axes: the slide is
(Z, Y, X) uint8 (or the `--input`'s dtype); times are seconds of wall clock in this one thread.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HOST_PARTS = ("tissue", "read", "write", "pyramid", "markers", "output")
"""Stages that stay on the host when the model runs on a GPU (their sum is the host work)."""
DEVICE_PARTS = ("unit", "blend", "quantise")
"""Stages that run on the device on a GPU (on the host here, with the CPU)."""

# (module, attribute) -> stage; each attribute is looked up at call time where the pipeline calls it
TIMED: dict[tuple[str, str], str] = {
    ("zse.pipeline.run", "tissue_map"): "tissue",
    ("zse.pipeline.block", "read_region"): "read",
    ("zse.pipeline.block", "to_unit"): "unit",
    ("zse.pipeline.block", "predict_block"): "blend",
    ("zse.pipeline.block", "from_unit"): "quantise",
    ("zse.pipeline.pyramid", "downsample_mean_yx"): "pyramid",
    ("zse.pipeline.run", "process_level_region"): "pyramid",
    ("zse.pipeline.block", "mark_done"): "markers",
    ("zse.pipeline.run", "create_output"): "output",
    ("zse.pipeline.run", "write_run_record"): "output",
    ("zse.pipeline.run", "finalize_output"): "output",
}
# called with a zarr array first: level 0 → "write", levels ≥ 1 → "pyramid"
TIMED_BY_LEVEL: tuple[tuple[str, str], ...] = (("zse.pipeline.block", "clear_region"), ("zse.pipeline.block", "sync_region"))


def array_level(array: Any) -> int:
    """The pyramid level of an output array (its folder's name, OUT/<level>); 0 when the name is not a number."""
    name = str(getattr(array, "store_path", "")).rstrip("/").rsplit("/", 1)[-1]
    return int(name) if name.isdigit() else 0


class StageClock:
    """Exclusive wall time per stage: a call timed inside another is subtracted from the outer one; the
    same for the process's system CPU time (`sys_seconds`: page faults, file writes, fsync)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.sys_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[float]] = []  # per open call: [wall, sys] spent in timed calls nested inside it

    def timed(self, stage: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = stage(*args) if callable(stage) else stage
            self._stack.append([0.0, 0.0])
            t0, s0 = time.perf_counter(), os.times().system
            try:
                return fn(*args, **kwargs)
            finally:
                dt, ds = time.perf_counter() - t0, os.times().system - s0
                inner = self._stack.pop()
                self.seconds[name] = self.seconds.get(name, 0.0) + dt - inner[0]
                self.sys_seconds[name] = self.sys_seconds.get(name, 0.0) + ds - inner[1]
                self.calls[name] = self.calls.get(name, 0) + 1
                if self._stack:
                    self._stack[-1][0] += dt
                    self._stack[-1][1] += ds

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper


@contextlib.contextmanager
def stage_timers() -> Iterator[tuple[StageClock, list[str]]]:
    """Wrap the pipeline functions of `TIMED` / `TIMED_BY_LEVEL` and zarr.Array.__setitem__ with one
    StageClock; yields (clock, missing), missing = "module.attribute" not found (a renamed function: the
    stage then reads 0 and the caller must say so). Everything is restored on exit. Not thread-safe: for
    runs in this process, one task at a time (`workers=0`)."""
    import zarr

    clock = StageClock()
    saved: list[tuple[Any, str, Any]] = []
    missing: list[str] = []

    def patch(owner: Any, attr: str, stage: str | Callable[..., str]) -> None:
        fn = getattr(owner, attr)
        saved.append((owner, attr, fn))
        setattr(owner, attr, clock.timed(stage, fn))

    def by_level(array: Any, *_: Any) -> str:
        return "pyramid" if array_level(array) else "write"

    try:
        for (mod, attr), stage in TIMED.items():
            module = importlib.import_module(mod)
            if hasattr(module, attr):
                patch(module, attr, stage)
            else:
                missing.append(f"{mod}.{attr}")
        for mod, attr in TIMED_BY_LEVEL:
            module = importlib.import_module(mod)
            if hasattr(module, attr):
                patch(module, attr, by_level)
            else:
                missing.append(f"{mod}.{attr}")
        patch(zarr.Array, "__setitem__", by_level)
        yield clock, missing
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch with one intra-op thread and zarr with one codec thread and one concurrent chunk, restored after."""
    import torch
    import zarr

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with zarr.config.set({"async.concurrency": 1, "threading.max_workers": 1}):
            yield
    finally:
        torch.set_num_threads(threads)


def host_work(in_path: Path, out_path: Path, *, tile: int, overlap: int, margin: int | None = None,
              block: int | None = None) -> dict[str, Any]:
    """Host work of one in-process enhance run of `in_path` with the identity model, by stage (module doc).

    tile, overlap, margin (px): the lattice of the run being benchmarked (its model's, so the tiles are the
    ones the model would see); block (px): default `DEFAULT_BLOCK["cuda"]` (2048), the GPU path's, since
    this is what a GPU run pays beside the model. A first run into a scratch output warms the caches.
    Returns seconds and ms per tile by stage, the run's wall and CPU seconds, and the tile counts.
    """
    from zse.models.baselines.identity import IdentityFactory
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import DEFAULT_BLOCK
    from zse.workflows.enhance import enhance

    factory = IdentityFactory()
    block = block or DEFAULT_BLOCK["cuda"]
    source = open_image(in_path)

    def run(out: Path) -> Any:
        return enhance(source, out, factory, tile=tile, overlap=overlap, margin=margin, block=block, device="cpu",
                       workers=0, overwrite=True, progress=False)

    with one_thread():
        run(out_path.with_name(out_path.name + ".warm"))
        with stage_timers() as (clock, missing):
            cpu0, sys0, t0 = time.process_time(), os.times().system, time.perf_counter()
            summary = run(out_path)
            wall, cpu, sys_s = time.perf_counter() - t0, time.process_time() - cpu0, os.times().system - sys0
    from zse.pipeline.options import make_options
    from zse.pipeline.run import plan_run

    shape = source.meta.shape_zyx
    plan = plan_run(source, factory, make_options(tile=tile, overlap=overlap, margin=margin, block=block, device="cpu"))
    lat, tmap = plan.lattice, plan.tissue
    lattice_tiles = lat.counts()[0] * lat.counts()[1]
    tiles_run = sum(tmap is None or tmap.tile_has_tissue(lat, i, j) for i, j in lat.all_tiles())  # unique, with tissue
    secs = {k: clock.seconds.get(k, 0.0) for k in (*HOST_PARTS, *DEVICE_PARTS)}
    secs["other"] = max(0.0, wall - sum(secs.values()))
    host_s = sum(secs[k] for k in HOST_PARTS)
    per_run = 1000 / max(1, tiles_run)
    return {
        "model": factory.name, "slide_shape": [int(s) for s in shape], "tile": summary.tile, "overlap": summary.overlap,
        "margin": summary.margin, "block": block, "torch_threads": 1, "zarr_threads": 1,
        "tiles_run": tiles_run, "tiles_evaluated": summary.tiles_run, "lattice_tiles": lattice_tiles,
        "pyramid_tasks": summary.pyramid_tasks,
        "wall_s": wall, "cpu_s": cpu, "sys_s": sys_s, "host_s": host_s,
        "host_ms_per_tile": host_s * per_run,
        "host_ms_per_lattice_tile": host_s * 1000 / max(1, lattice_tiles),
        "device_side_ms_per_tile": sum(secs[k] for k in DEVICE_PARTS) * per_run,
        "cpu_ms_per_tile": cpu * per_run,
        "stages_s": secs,
        "stages_sys_s": {k: clock.sys_seconds.get(k, 0.0) for k in (*HOST_PARTS, *DEVICE_PARTS)},
        "stages_ms_per_tile": {k: v * per_run for k, v in secs.items()},
        "calls": dict(clock.calls),
        "missing_timers": missing,
        "pid": os.getpid(),
    }


def host_line(h: dict[str, Any]) -> str:
    """One line: host ms per tile run and its stages (as `zse bench` prints it)."""
    ms = h["stages_ms_per_tile"]
    parts = ", ".join(f"{k} {ms[k]:.2f}" for k in HOST_PARTS)
    dev = ", ".join(f"{k} {ms[k]:.2f}" for k in DEVICE_PARTS)
    return (f"host work {h['host_ms_per_tile']:.2f} ms per tile run ({parts}); on the device on a GPU: {dev}; "
            f"{h['tiles_run']} tiles run of {h['lattice_tiles']}, slide {tuple(h['slide_shape'])}, block {h['block']}, "
            f"identity model, 1 thread" + (f"; timers missing: {', '.join(h['missing_timers'])}" if h["missing_timers"] else ""))
