"""The pipeline composed, in five stages: plan → create or resume → level-0 tasks → pyramid tasks → finalise.

1. plan (`plan_run`, `check_run`): lattice, blocks, run record, output layout, tissue map; every check
   that needs no write (output location, input chunks, the model on one blank tile).
2. create or resume (`open_target`), under the output's lock: a fresh output (beside a finished one
   that --overwrite replaces) or the interrupted one, its done blocks re-checked.
3. level-0 tasks (`run_level0`): one task per block (zse.pipeline.block.process_block) reads the
   tiles with tissue, runs the model, blends and writes its own aligned shard, then marks it done.
4. pyramid tasks (`run_pyramid`): each lower-resolution level from the previous one, one aligned
   region per task.
5. finalise (`finalise`): the OME metadata last, so only a finished run is a valid image; then the
   staged output is swapped in.

This is the only module that talks to Dask. It receives a `distributed.Client` (built by
zse.workflows.cluster, never here) or None to run every task in this process, one after another.
The job a user calls (checks of the options and the model, the cluster) is `zse.enhance`
(zse.workflows.enhance); `run_enhance` is the pipeline under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from zse import __version__
from zse.errors import ConfigError, ModelError, OutputError, ZseError
from zse.pipeline.block import BlockTask, output_arrays, process_block, process_level_region
from zse.pipeline.geometry import TILE_MAX, TILE_MIN, Block, Lattice, indexed_block_grid, make_blocks
from zse.pipeline.infer import PredictorFactory, get_predictor, output_scale
from zse.pipeline.io.chunks import check_chunks
from zse.pipeline.io.ngff import SourceImage
from zse.pipeline.io.write import (
    OutputSpec,
    check_output_path,
    create_output,
    finalize_output,
    swap_in,
    write_target,
)
from zse.pipeline.lock import OutputLock
from zse.pipeline.options import DEFAULT_TILE, EnhanceOptions
from zse.pipeline.plan import (
    TissueMap,
    check_resume,
    done_states,
    run_record,
    tissue_map,
    unmark,
    write_run_record,
)
from zse.pipeline.progress import tile_progress
from zse.pipeline.zscale import output_meta


@dataclass
class EnhanceResult:
    """What a run did. Voxel rates count level-0 output voxels (all blocks, or only processed ones).
    `overlap` and `margin` are the lattice's (px), after the defaults that follow the model."""

    out_path: Path | None = None
    model: str = ""
    tile: int = 0
    overlap: int = 0
    blocks_total: int = 0
    blocks_done: int = 0
    blocks_skipped: int = 0
    blocks_already_done: int = 0
    tiles_run: int = 0
    tiles_skipped: int = 0
    pyramid_tasks: int = 0
    wall_s: float = 0.0
    voxels: int = 0
    voxels_processed: int = 0
    margin: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def voxels_per_s(self) -> float:
        return self.voxels / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        return [
            f"blocks: {self.blocks_done} enhanced, {self.blocks_skipped} background (copied through), "
            f"{self.blocks_already_done} already done, of {self.blocks_total}",
            f"tiles: {self.tiles_run} run, {self.tiles_skipped} background; pyramid tasks: {self.pyramid_tasks}",
            f"wall time {self.wall_s:.1f} s; {self.voxels_per_s / 1e6:.2f} Mvoxel/s over the whole slide",
        ]


DEFAULT_OVERLAP = 32
"""Overlap (px) for a model that does not declare its receptive radius."""


def tile_for(factory: PredictorFactory, options: EnhanceOptions, shape_yx: tuple[int, int] | None = None) -> int:
    """The tile side (px) of a run: --tile where given; else `DEFAULT_TILE` (128), or, for a model that
    declares a preferred core (`core_px`: FFT deconvolution, whose cost is per tile and whose tiles are
    best large), core + overlap with the core no larger than the volume's larger side (`shape_yx`),
    within `TILE_MAX`. The block size plays no part: the output never depends on it (a block smaller
    than the core only costs tiles computed by more than one block)."""
    if options.tile is not None:
        return options.tile
    if factory.core_px is None:
        return DEFAULT_TILE
    core = min(int(factory.core_px), max(shape_yx) if shape_yx else TILE_MAX)
    return max(TILE_MIN, min(core + _overlap(factory, options, tile=None), TILE_MAX))


def batch_for(factory: PredictorFactory, options: EnhanceOptions) -> int:
    """Tiles per model call: --batch-size where given; else 1 for a model with a preferred large core
    (`core_px`: an FFT deconvolution runs its tiles one at a time anyway, and progress then moves tile by
    tile), else the device's default (`EnhanceOptions.resolved_batch`)."""
    if options.batch_size is None and factory.core_px is not None:
        return 1
    return options.resolved_batch()


def lattice_params(factory: PredictorFactory, options: EnhanceOptions,
                   shape_yx: tuple[int, int] | None = None) -> tuple[int, int]:
    """(overlap, margin) of a run: the options' values where given, else the defaults that follow the model.

    A model that declares its receptive radius r (`margin_px`) gets margin = r rounded up to a multiple
    of 4 (so tile origins keep the stride phases of networks with two stride-2 levels; checkpoints of
    deeper networks declare a radius already aligned to their period) and overlap = 2·margin: the tiled
    result then equals the model applied to the whole volume (for tiles that are a multiple of the
    network's period: 128 is, for every registry model). Where 2·margin does not fit in the tile
    (or the model declares nothing), overlap = the largest such value below the tile, resp. 32, and
    margin = min(r, overlap/2). An explicit --overlap or --margin is kept as given. The tile is
    `tile_for(factory, options, shape_yx)`.
    """
    overlap = _overlap(factory, options, tile=tile_for(factory, options, shape_yx))
    if options.margin is not None:
        return overlap, options.margin
    return overlap, default_margin(factory, overlap)


def _overlap(factory: PredictorFactory, options: EnhanceOptions, *, tile: int | None) -> int:
    """--overlap where given, else what follows the model's radius (see `lattice_params`); `tile` None:
    not limited by a tile (the tile is then sized around the overlap)."""
    r = factory.margin_px
    if options.overlap is not None:
        return options.overlap
    limit = 10**9 if tile is None else 8 * ((tile - 1) // 8)
    if r is None:
        return DEFAULT_OVERLAP if tile is None else min(DEFAULT_OVERLAP, tile - 8)
    return min(2 * phase_aligned(int(r)), limit)


def phase_aligned(radius_px: int, period: int = 4) -> int:
    """`radius_px` rounded up to a multiple of `period` (4: two stride-2 levels; deeper networks declare
    a radius already aligned to their own period)."""
    return -(-int(radius_px) // period) * period


def default_margin(factory: PredictorFactory, overlap: int) -> int:
    """The model's receptive radius (rounded up to a multiple of 4) when known and it fits (≤ overlap/2);
    else overlap/2."""
    m = factory.margin_px
    if m is None:
        return overlap // 2
    return min(phase_aligned(int(m)), overlap // 2)


@dataclass(frozen=True)
class RunPlan:
    """Stage 1's result: everything a run will do, decided before anything is written.

    lattice: the global tile lattice (px); blocks: level-0 tasks, row-major; record: the run record
    (input fingerprint, model, options that change the output); spec: the output's layout;
    tissue: the tissue map, or None when every tile runs (--no-skip-background).
    scale_z: output planes per input plane (the model's z scale, zse.pipeline.infer.output_scale; 1 for
    most models): spec.meta is then the output's (Z·sz planes of dz/sz, zse.pipeline.zscale.output_meta),
    every level (spec.shapes) has Z·sz planes, and the run record's model carries `scale_zyx`.
    """

    lattice: Lattice
    blocks: list[Block]
    record: dict[str, Any]
    spec: OutputSpec
    tissue: TissueMap | None
    scale_z: int = 1


def plan_run(source: SourceImage, factory: PredictorFactory, options: EnhanceOptions, *, tissue: bool = True) -> RunPlan:
    """Stage 1: lattice, blocks, run record and output layout for `source` with `options`; the tissue map
    too when `tissue` and the options skip background (it reads a low-resolution level of the input).
    A model with lateral scale is refused here (ConfigError, `output_scale`)."""
    scale_z = output_scale(factory)
    shape_yx = (int(source.meta.shape[-2]), int(source.meta.shape[-1]))
    overlap, margin = lattice_params(factory, options, shape_yx)
    tile = tile_for(factory, options, shape_yx)
    lattice = Lattice(shape_yx=shape_yx, tile=tile, overlap=overlap, margin=margin)
    blocks = make_blocks(lattice, options.resolved_block())
    model: dict[str, Any] = {"name": factory.name, "checksum": factory.checksum}
    if scale_z != 1:  # only then: records of runs without z scale stay as they were (their --resume still works)
        model["scale_zyx"] = [scale_z, 1, 1]
    record = run_record(
        source,
        model,
        {"tile": tile, "overlap": overlap, "margin": margin, "block": options.resolved_block(),
         "ngff": options.ngff, "skip_background": options.skip_background,
         "tissue_threshold": options.tissue_threshold if options.skip_background else None},
    )
    meta = output_meta(replace(source.meta, ngff_version=options.ngff), scale_z)
    spec = OutputSpec(meta=meta, ngff=options.ngff, block=options.resolved_block())
    tmap = tissue_map(source, options.tissue_threshold) if (tissue and options.skip_background) else None
    return RunPlan(lattice=lattice, blocks=blocks, record=record, spec=spec, tissue=tmap, scale_z=scale_z)


def check_output_location(source: SourceImage, out_path: Path) -> None:
    """Refuse an output that is, contains or lies inside the input or any array the input reads
    (resolved: symlinks and `..` followed): zse never writes to (or deletes) what it reads."""
    out = out_path.resolve()
    read = {Path(source.path).resolve(), Path(source.image_path).resolve()}
    read |= {(Path(source.image_path) / p).resolve() for p in source.level_paths}
    for inp in sorted(read):
        if out == inp or inp.is_relative_to(out) or out.is_relative_to(inp):
            raise OutputError(f"output {out_path} is, contains or lies inside what the input {source.path} reads "
                              f"({inp}); zse never writes to its input: choose an OUT outside it")


def check_model(factory: PredictorFactory, source: SourceImage, tile: int) -> None:
    """Build the model here on the CPU and run it on one tile before anything is written, so that an unusable
    model (wrong checkpoint, a program that changes the shape, …) fails without touching OUT. A model that
    takes any y-x size is tried on a tile of at most `DEFAULT_TILE` (a 640-px FFT deconvolution would
    cost as much as a third of a small slide). A model with z scale sz must return Z·sz planes."""
    import torch

    fixed = factory.input_zyx  # exported programs with static spatial dimensions
    want = (source.meta.shape_zyx[0], tile, tile)
    if fixed is not None and any(f is not None and f != w for f, w in zip(fixed, want, strict=True)):
        raise ConfigError(f"model {factory.name} accepts tiles (Z, Y, X) = {tuple('any' if f is None else f for f in fixed)}, "
                          f"but this run gives {want} (Z from the input, --tile {tile}); match --tile (and the plane count) "
                          "or export the model with dynamic spatial dimensions")
    if fixed is None or (fixed[1] is None and fixed[2] is None):
        side = min(tile, DEFAULT_TILE)
        want = (want[0], side, side)
    predictor = get_predictor(factory, "cpu")
    x = torch.zeros((1, 1, *want), dtype=torch.float32)
    with torch.inference_mode():
        y = predictor(x)
    sz = output_scale(factory)
    expected = (1, 1, want[0] * sz, want[1], want[2])
    if tuple(y.shape) != expected:
        raise ModelError(f"model {factory.name} returned shape {tuple(y.shape)} for input {tuple(x.shape)}; expected "
                         f"{expected}: zse models map (N, 1, Z, Y, X) to (N, 1, Z·sz, Y, X), sz = {sz} (its scale_zyx)")
    if not bool(torch.isfinite(y).all()):
        raise ModelError(f"model {factory.name} returned NaN or infinite values on a blank tile; its weights are unusable")


def verify_done(out_path: Path, spec: OutputSpec) -> list[str]:
    """Check every done-marked region's stored objects (zse.pipeline.io.write.region_is_whole); unmark the
    damaged ones and every region of a lower-resolution level built from them. Returns what was found."""
    import zarr

    from zse.pipeline.io.write import region_is_whole

    group = zarr.open_group(str(out_path), mode="r")
    problems: list[str] = []
    redo: set[tuple[int, int]] = set()  # indices of the previous level that will be rewritten
    for level, shape in enumerate(spec.shapes):
        arr = group[str(level)]
        states = done_states(out_path, level)
        boxes = dict(indexed_block_grid(shape[-2:], spec.level_block(level)))
        now_redo: set[tuple[int, int]] = set(boxes) - set(states)
        # region r of the level above covers this level's regions r·side_above / (2·side) (// for the index)
        k = 2 * spec.level_block(level) // spec.level_block(level - 1) if level else 1
        from_redo = {(r // k, c // k) for r, c in redo}
        for index in states:
            parent_redo = index in from_redo
            problem = None if parent_redo or index not in boxes else region_is_whole(arr, boxes[index])  # type: ignore[arg-type]
            if parent_redo or problem or index not in boxes:
                if problem:
                    problems.append(problem)
                unmark(out_path, level, index)
                now_redo.add(index)
        redo = now_redo
    return problems


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a task; a ZseError comes back as a value (no worker-side traceback logs, no pointless retries)."""
    try:
        return fn(*args)
    except ZseError as exc:
        return exc


def _gather(client: Any, fn: Callable[..., Any], argsets: Iterable[tuple[Any, ...]], *, desc: str, progress: bool,
            resources: dict[str, float] | None, on_result: Callable[[Any], None]) -> None:
    argsets = list(argsets)
    bar = tqdm(total=len(argsets), desc=desc, unit="task", disable=not progress, dynamic_ncols=True)
    try:
        if client is None:
            for args in argsets:
                res = _call(fn, *args)
                if isinstance(res, ZseError):
                    raise res
                on_result(res)
                bar.update(1)
            return
        from distributed import as_completed

        futures = [client.submit(_call, fn, *args, pure=False, retries=2, resources=resources) for args in argsets]
        try:
            for fut in as_completed(futures):
                res = fut.result()
                if isinstance(res, ZseError):
                    raise res
                on_result(res)
                bar.update(1)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        bar.close()


def check_run(source: SourceImage, out_path: Path, factory: PredictorFactory, plan: RunPlan, options: EnhanceOptions, *,
              resume: bool, overwrite: bool, allow_missing_chunks: bool, note: Callable[[str], None]) -> None:
    """Stage 1, the checks that need no write: options against each other, the output location, the input's
    chunks, the model on one blank tile; remarks (the margin below the model's radius) go to `note`."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: resume keeps finished blocks, overwrite deletes them")
    check_output_location(source, out_path)
    check_output_path(out_path, overwrite=overwrite, resume=resume)
    for line in check_chunks(source, allow_missing=allow_missing_chunks):
        note(line)
    check_model(factory, source, plan.lattice.tile)
    r, lattice = factory.margin_px, plan.lattice
    if r is not None and lattice.margin < r:
        note(f"model {factory.name} has a receptive radius of {r} px but the blending margin is {lattice.margin} px "
             f"(at most overlap/2 = {lattice.overlap // 2}); tiles then agree only approximately. The default overlap "
             "is exact: leave --overlap and --margin out.")


def run_enhance(
    source: SourceImage,
    out_path: str | Path,
    factory: PredictorFactory,
    options: EnhanceOptions,
    *,
    client: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    resources: dict[str, float] | None = None,
    provenance: dict[str, Any] | None = None,
    section_id: str | None = None,
    note: Callable[[str], None] | None = None,
    cluster: Callable[[], AbstractContextManager[tuple[Any, dict[str, float] | None]]] | None = None,
    allow_missing_chunks: bool = False,
) -> EnhanceResult:
    """Enhance `source` into a multiscale OME-Zarr at `out_path`: the five stages of the module docstring.

    Order: every check that needs no write (options, output location, the model on one tile, the
    tissue map), then the output's lock (zse.pipeline.lock), then the writes. `--overwrite` of a finished
    output writes the new one beside it and swaps it in at the end, so the old result stays until the new
    one is complete; `--resume` re-checks the done-marked blocks' shards and redoes damaged ones.
    Absent chunk files in IN are refused unless `allow_missing_chunks` (then read as the fill value, with
    a note; zse.pipeline.io.chunks). `note(line)` receives remarks for the user (default: none). `cluster()`,
    where given, is entered after the checks and yields (client, task resources): callers that start a
    cluster for the run pass it (zse.workflows.cluster), so that a refused run never starts one; else
    `client` (None: every task in this process) and `resources` are used.
    """
    t0 = time.perf_counter()
    out_path = Path(out_path)
    tell = note or (lambda _line: None)
    plan = plan_run(source, factory, options, tissue=False)
    check_run(source, out_path, factory, plan, options, resume=resume, overwrite=overwrite,
              allow_missing_chunks=allow_missing_chunks, note=tell)
    if options.skip_background:
        plan = replace(plan, tissue=tissue_map(source, options.tissue_threshold))

    result = EnhanceResult(out_path=out_path, model=factory.name, tile=plan.lattice.tile, overlap=plan.lattice.overlap,
                           blocks_total=len(plan.blocks), margin=plan.lattice.margin)
    with OutputLock(out_path, command=str((provenance or {}).get("command", "")), note=note):
        target, resume = open_target(out_path, plan, resume=resume, note=tell)
        with cluster() if cluster is not None else nullcontext((client, resources)) as (client, resources):
            if not resume:
                create_output(target, plan.spec)
                write_run_record(target, plan.record)
            if resume and is_finished(target, plan):
                result.blocks_already_done = len(plan.blocks)  # finished earlier: nothing to do, nothing rewritten
            else:
                run_level0(source, target, factory, options, plan, result, client=client, resume=resume,
                           progress=progress, resources=resources)
                run_pyramid(target, plan, result, client=client, resume=resume, progress=progress)
                finalise(source, target, plan, result, provenance=provenance, section_id=section_id)
        if target != out_path:
            swap_in(target, out_path)
    result.wall_s = time.perf_counter() - t0
    return result


def open_target(out_path: Path, plan: RunPlan, *, resume: bool, note: Callable[[str], None]) -> tuple[Path, bool]:
    """Stage 2, under the lock: the folder this run writes and whether it resumes. A fresh run writes OUT,
    or beside it when OUT exists (`write_target`; created with the run record once the cluster is up); a
    resume checks the record and re-checks the done blocks (`verify_done`). --resume without an OUT
    starts fresh."""
    if resume and not out_path.exists():
        resume = False  # nothing to resume yet: start fresh (batch scripts can always pass --resume)
    if resume:
        check_resume(out_path, plan.record)
        problems = verify_done(out_path, plan.spec)
        if problems:
            note(f"--resume: {len(problems)} finished region(s) were damaged and are redone (first: {problems[0]})")
        return out_path, True
    return write_target(out_path), False


def is_finished(out_path: Path, plan: RunPlan) -> bool:
    """True when `out_path` is complete: its metadata says so and every region of every level is marked done."""
    import zarr

    zse_attrs = dict(zarr.open_group(str(out_path), mode="r").attrs).get("zse")
    return (isinstance(zse_attrs, dict) and zse_attrs.get("status") == "complete"
            and all(len(done_states(out_path, lv)) == len(indexed_block_grid(sh[-2:], plan.spec.level_block(lv)))
                    for lv, sh in enumerate(plan.spec.shapes)))


def run_level0(source: SourceImage, out_path: Path, factory: PredictorFactory, options: EnhanceOptions, plan: RunPlan,
               result: EnhanceResult, *, client: Any, resume: bool, progress: bool,
               resources: dict[str, float] | None) -> None:
    """Stage 3: one task per block not yet done; counts go into `result`."""
    lattice = plan.lattice
    done0 = done_states(out_path, 0) if resume else {}
    pending = [b for b in plan.blocks if b.index not in done0]
    result.blocks_already_done = len(plan.blocks) - len(pending)
    tmap = plan.tissue
    tissue_of = {t: tmap is None or tmap.tile_has_tissue(lattice, *t) for b in pending for t in b.tiles}
    src_array = str(Path(source.image_path) / source.level_paths[0])
    tasks = [
        (BlockTask(source_array=src_array, output_array=output_arrays(out_path, 0), output_root=str(out_path), block=b,
                   lattice=lattice, dtype=plan.spec.meta.dtype, factory=factory, device=options.device,
                   batch_size=batch_for(factory, options), tissue=tuple(tissue_of[t] for t in b.tiles),
                   memory_levels=plan.spec.memory_levels, scale_z=plan.scale_z),)
        for b in pending
    ]

    def on_block(res: dict[str, Any]) -> None:
        if res["state"] == "skipped":
            result.blocks_skipped += 1
        else:
            result.blocks_done += 1
        result.tiles_run += int(res["tiles"])
        result.tiles_skipped += int(res["tiles_skipped"])

    with tile_progress(client, sum(len(b.tiles) for b in pending), desc="enhance", enabled=progress):
        _gather(client, process_block, tasks, desc="enhance", progress=False, resources=resources, on_result=on_block)


def run_pyramid(out_path: Path, plan: RunPlan, result: EnhanceResult, *, client: Any, resume: bool, progress: bool) -> None:
    """Stage 4: levels 1.. from the previous level, one aligned region per task, level by level: the regions
    the level-0 tasks did not already write from their blocks in memory (`OutputSpec.memory_levels`; all of
    them unless a run was killed in between), then every region of the later levels."""
    spec = plan.spec
    for level in range(1, len(spec.shapes)):
        done_l = done_states(out_path, level) if resume or level <= spec.memory_levels else {}
        argsets = [(output_arrays(out_path, level - 1), output_arrays(out_path, level), str(out_path), level, index, box)
                   for index, box in indexed_block_grid(spec.shapes[level][-2:], spec.level_block(level))
                   if index not in done_l]
        result.pyramid_tasks += len(argsets)
        _gather(client, process_level_region, argsets, desc=f"pyramid level {level}", progress=progress, resources=None,
                on_result=lambda _: None)


def finalise(source: SourceImage, out_path: Path, plan: RunPlan, result: EnhanceResult, *,
             provenance: dict[str, Any] | None, section_id: str | None) -> None:
    """Stage 5: the OME metadata and zse's record (provenance, physical placement, block counts), written last."""
    import zarr

    meta, record = plan.spec.meta, plan.record
    states = done_states(out_path, 0)
    z = meta.shape_zyx[0] * meta.n_channels
    result.voxels = z * meta.shape[-2] * meta.shape[-1]
    result.voxels_processed = result.voxels  # refined by callers that need it
    src_zse = source.attrs.get("zse", {}) if isinstance(source.attrs.get("zse"), dict) else {}
    group = zarr.open_group(str(out_path), mode="r+")
    finalize_output(group, plan.spec, name=meta.name, attrs={
        # carried over for 3D reconstruction of consecutive sections (the origin is in the OME translation)
        "section_id": section_id if section_id is not None else src_zse.get("section_id"),
        "voxel_size_um": list(meta.voxel_size_um),
        "translation_um": list(meta.translation_um),
        "provenance": {"zse_version": __version__, "model": record["model"], "options": record["options"],
                       "input": record["input"], **(provenance or {})},
        "summary": {"blocks_total": result.blocks_total,
                    "blocks_enhanced": sum(1 for v in states.values() if v == "done"),
                    "blocks_skipped": sum(1 for v in states.values() if v == "skipped")},
    })
