"""The output OME-Zarr — created empty (create stage), filled block by block (level-0 and pyramid tasks),
finalised last (finalise stage); the stages are those of zse.pipeline.run.

Layout of an output written by zse (NGFF 0.5 by default, 0.4 on request):
    OUT/                 group; attributes `ome` (0.5) or `multiscales`+`omero` (0.4), and `zse`
    OUT/0, OUT/1, …      pyramid levels; level l+1 halves y and x of level l (z, c kept)
    OUT/.zse/            run record and per-block done markers (see zse.pipeline.plan)

Chunks are (1 channel,) Z × 256 × 256 (whole z columns: what a tile reads); on 0.5, shards are
Z × block × block at level 0, the unit one task writes, and Z × block/2^l × block/2^l at the levels l that
the same task writes from its block in memory (`OutputSpec.memory_levels`); Z × block × block below. On
0.4 (no shards) the block is a multiple of the chunk. Either way no two tasks ever write the same chunk
or shard.

Until `finalize_output` runs, the group carries no OME multiscales metadata and `zse.status` is
"incomplete": an interrupted write is never a valid image, and `zse info` says so.

Length (~440 lines): one module owns every write to an output — layout, replacing a finished one, the
durability of each region (fsync, shard-index checks) — so that the write guarantees of
docs/architecture.md can be reviewed in one place.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numcodecs
import numpy as np
import zarr
from tqdm.auto import tqdm
from zarr.codecs import BloscCodec

from zse import __version__
from zse.errors import ConfigError, OutputError
from zse.pipeline.geometry import Box, block_grid
from zse.pipeline.io.ngff import NGFF_VERSIONS, ImageMeta, level_shapes, multiscales_attrs
from zse.pipeline.lock import OutputLock
from zse.pipeline.pyramid import write_level_region

DEFAULT_CHUNK_YX = 256
DEFAULT_MIN_LEVEL_SIZE = 1024
MIN_BLOCK = 16


def check_block(block: int, chunk_yx: int = DEFAULT_CHUNK_YX) -> int:
    """The one rule for a block side (px): a multiple of the chunk side, or (for tiny images) a divisor of it ≥ 16.

    The block is the y-x side of one task's write region and of one shard, and chunks must tile it:
    any other value would shrink the chunks to gcd(chunk, block) px (--block 17: 1-px chunks, tens of
    thousands of files for a small image). Returns `block`; raises ConfigError otherwise.
    """
    if block < MIN_BLOCK or (block % chunk_yx and chunk_yx % block):
        small = ", ".join(str(b) for b in (16, 32, 64, 128, 256, 512) if b >= MIN_BLOCK and chunk_yx % b == 0 and b < chunk_yx)
        raise ConfigError(f"--block {block} is invalid; valid: a multiple of the output chunk side {chunk_yx} "
                          f"(e.g. {chunk_yx}, {4 * chunk_yx}, {8 * chunk_yx}), or {small} for tiny images")
    return block


@dataclass(frozen=True)
class OutputSpec:
    """Everything that fixes the output's layout. `block` is the y-x side of one task's write region."""

    meta: ImageMeta
    ngff: str = "0.5"
    block: int = 1024
    chunk_yx: int = DEFAULT_CHUNK_YX
    min_level_size: int = DEFAULT_MIN_LEVEL_SIZE

    def __post_init__(self) -> None:
        if self.ngff not in NGFF_VERSIONS:
            raise ConfigError(f"--ngff {self.ngff!r} is invalid; valid: {', '.join(NGFF_VERSIONS)}")
        check_block(self.block, self.chunk_yx)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return level_shapes(self.meta.shape, self.min_level_size)

    @property
    def chunk(self) -> int:
        """Chunk side in y, x: divides the block, so block writes are chunk-aligned."""
        return int(np.gcd(self.chunk_yx, self.block)) if self.block % self.chunk_yx else self.chunk_yx

    def chunks_for(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        c = min(self.chunk, shape[-2]), min(self.chunk, shape[-1])
        lead = (1,) * (len(shape) - 3)
        return (*lead, shape[-3], *c)

    @property
    def memory_levels(self) -> int:
        """How many levels after 0 a level-0 block task writes from its block still in memory: the levels l
        where block / 2^l is still a multiple of the chunk side (1024-px blocks, 256-px chunks: levels 1
        and 2). Level l's regions (and shards) are then block / 2^l px, the image of one level-0 block, so
        no two tasks ever write the same shard of any level. Later levels are built from the level above."""
        n = 0
        while n + 1 < len(self.shapes) and self.block % (self.chunk << (n + 1)) == 0:
            n += 1
        return n

    def level_block(self, level: int) -> int:
        """The y-x side (px of that level) of one task's write region, and of one shard, at pyramid `level`:
        block / 2^level for level 0 and the `memory_levels`, else block."""
        return self.block >> level if level <= self.memory_levels else self.block

    def shards_for(self, shape: tuple[int, ...], level: int = 0) -> tuple[int, ...] | None:
        if self.ngff == "0.4":
            return None
        chunks = self.chunks_for(shape)
        side = self.level_block(level)
        sy = -(-min(side, shape[-2]) // chunks[-2]) * chunks[-2]
        sx = -(-min(side, shape[-1]) // chunks[-1]) * chunks[-1]
        return (*chunks[:-2], sy, sx)


def _compressor(ngff: str) -> Any:
    # Blosc/zstd level 1 with bit shuffle: measured (BENCHMARKS.md, codec table) 1.4–1.6× faster to encode
    # than level 3 for a 1–3 % lower ratio on 8-bit brightfield.
    if ngff == "0.4":
        return numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE)
    return BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")


def writable(array: Any) -> zarr.Array:
    """`array` set to write every chunk, also those equal to the fill value.

    zarr skips such chunks by default; zse's outputs hold every chunk, so that a missing chunk file always
    means damage (zse.pipeline.io.chunks refuses inputs with gaps; `--resume` checks shards are whole), and
    no per-chunk emptiness scan runs on write. The setting is not stored: it is applied on every open.
    """
    if not isinstance(array, zarr.Array):
        raise OutputError(f"{array} is not a Zarr array")
    return array.with_config({"write_empty_chunks": True})


def open_output_array(path: str | Path) -> zarr.Array:
    """Open an output level array (an existing path) for writing; see `writable`."""
    return writable(zarr.open_array(str(path), mode="r+"))


def create_output(path: str | Path, spec: OutputSpec, *, overwrite: bool = False, attrs: dict[str, Any] | None = None) -> zarr.Group:
    """Create the output group and its empty level arrays; no OME metadata yet (status "incomplete")."""
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    if path.exists():
        shutil.rmtree(path)  # callers replacing a finished output write elsewhere first (write_target)
    zarr_format: Literal[2, 3] = 2 if spec.ngff == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    for level, shape in enumerate(spec.shapes):
        kwargs: dict[str, Any] = dict(
            name=str(level), shape=shape, dtype=spec.meta.dtype, chunks=spec.chunks_for(shape), fill_value=0,
        )
        if zarr_format == 3:
            kwargs.update(shards=spec.shards_for(shape, level), compressors=[_compressor(spec.ngff)], dimension_names=list(spec.meta.axes))
        else:
            kwargs.update(compressors=_compressor(spec.ngff), chunk_key_encoding={"name": "v2", "separator": "/"})
        group.create_array(**kwargs)
    group.attrs["zse"] = {"status": "incomplete", "version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(attrs or {})}
    return group


def is_zarr_group(path: Path) -> bool:
    """True for a folder holding a Zarr v2 or v3 group."""
    return path.is_dir() and ((path / "zarr.json").is_file() or (path / ".zgroup").is_file())


ZSE_ENTRIES = {"zarr.json", ".zgroup", ".zattrs", ".zmetadata", ".zse"}
"""Top-level entries of an output zse wrote, besides its level arrays "0", "1", …"""


def written_by_zse(path: Path) -> bool:
    """True when `path` is an OME-Zarr zse wrote: a Zarr group whose attributes carry zse's record."""
    if not is_zarr_group(path):
        return False
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - unreadable metadata: not provably ours
        return False
    record = attrs.get("zse")
    return isinstance(record, dict) and "version" in record


def check_output_path(path: Path, *, overwrite: bool, resume: bool = False) -> None:
    """Refuse an output location zse may not write or replace; raises OutputError with one line.

    - a symlink (dangling or not) is refused: zse writes and deletes only real folders it names;
    - its parent folder (or the nearest existing folder above it, when the run is to create the rest) must be writable;
    - an existing OUT needs --overwrite (or --resume, whose run record check follows elsewhere), and is
      replaced only when zse wrote it (its `zse` record) and it holds nothing else (no foreign files next
      to the levels): never a folder of the user's files.
    """
    if path.is_symlink():
        raise OutputError(f"{path} is a symbolic link (to {os.readlink(path)}); zse does not write or delete through links: "
                          "give the real path of the output")
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # missing folders above OUT are created when the run starts (OutputLock)
    if not existing.is_dir():
        raise OutputError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: its folder {existing} is not writable")
    if not path.exists() or resume:
        return
    if not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it (or --resume to finish an interrupted run)")
    if not written_by_zse(path):
        raise OutputError(f"{path} exists and is not an output zse wrote (no zse record in its Zarr attributes); "
                          "--overwrite only replaces zse outputs: remove it yourself or choose another OUT")
    foreign = sorted(e.name for e in os.scandir(path) if e.name not in ZSE_ENTRIES and not e.name.isdigit())
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise OutputError(f"{path} holds files zse did not write ({', '.join(foreign[:3])}{more}); --overwrite would "
                          "delete them: move them out or choose another OUT")


def is_complete(path: Path) -> bool:
    """True when `path` is an output zse finished (`zse.status` "complete")."""
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - unreadable: not a finished result
        return False
    record = attrs.get("zse")
    return isinstance(record, dict) and record.get("status") == "complete"


def write_target(path: Path) -> Path:
    """Where a new output for `path` is written (call under the output's lock, after check_output_path).

    A finished output stays until its replacement is complete: the new one goes to the hidden sibling
    `.<name>.zse-new` (an earlier unfinished replacement there is removed) and `swap_in` moves it in.
    An unfinished output holds nothing worth keeping: it is removed and `path` itself is returned.
    """
    if not path.exists():
        return path
    if is_complete(path):
        staged = path.parent / f".{path.name}.zse-new"
        if staged.exists():
            shutil.rmtree(staged)
        return staged
    shutil.rmtree(path)
    return path


def swap_in(staged: Path, path: Path) -> None:
    """Replace the finished `path` by the finished `staged`: the old aside, the new in, then the old deleted.

    Two renames in one folder: a crash between them leaves the old result at `.<name>.zse-old` and the
    new one at `.<name>.zse-new`, never a half-written `path`.
    """
    aside = path.parent / f".{path.name}.zse-old"
    if aside.exists():
        shutil.rmtree(aside)
    os.rename(path, aside)
    os.rename(staged, path)
    fsync_dir(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def region_files(array: zarr.Array, box: Box) -> list[Path]:
    """Paths of the stored objects (shards, or chunks without sharding) under `box` of a local array
    (whether they exist or not); [] for a store that is not a local folder."""
    root = getattr(array.store, "root", None)
    if root is None:
        return []
    meta = array.metadata
    outer = getattr(array, "shards", None) or array.chunks
    ny, nx = outer[-2], outer[-1]
    lead = [range(-(-n // c)) for n, c in zip(array.shape[:-2], outer[:-2], strict=True)]
    y1, x1 = min(box.y1, array.shape[-2]), min(box.x1, array.shape[-1])
    return [Path(root) / array.path / meta.encode_chunk_key((*head, cy, cx))
            for head in itertools.product(*lead)
            for cy in range(max(box.y0, 0) // ny, -(-y1 // ny))
            for cx in range(max(box.x0, 0) // nx, -(-x1 // nx))]


def clear_region(array: zarr.Array, box: Box) -> None:
    """Delete the stored objects (shards, or chunks without sharding) under `box` of a local array.

    A block rewrites its whole region; removing what an interrupted write may have left (a torn shard
    fails its checksum when zarr reads it back to merge) makes every rewrite start from nothing.
    Objects of other blocks are never touched: block regions are aligned to them.
    """
    for f in region_files(array, box):
        f.unlink(missing_ok=True)


def sync_region(array: zarr.Array, box: Box) -> None:
    """fsync the stored objects under `box` and the folders holding them, so that a done-marker written
    afterwards never survives a power loss that the data did not."""
    folders: set[Path] = set()
    for f in region_files(array, box):
        try:
            fd = os.open(f, os.O_RDONLY)
        except FileNotFoundError:
            continue  # an all-fill chunk zarr chose not to store
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folders.add(f.parent)
    for d in folders:
        fsync_dir(d)


def fsync_dir(folder: Path) -> None:
    """fsync a folder (its entries: created and renamed files) where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def region_is_whole(array: zarr.Array, box: Box) -> str | None:
    """Cheaply check the stored objects under `box` of a local array (no decompression); None if whole,
    else why not (the first problem found).

    Sharded (v3): every shard exists and its index (at the end, crc32c-checked) points inside the file.
    Unsharded: every chunk exists and is not empty. (A chunk-level codec checksum, where present, still
    catches damage inside a chunk when it is read.)
    """
    shards = getattr(array, "shards", None)
    for f in region_files(array, box):
        try:
            size = f.stat().st_size
        except FileNotFoundError:
            return f"{f} is missing"
        if size == 0:
            return f"{f} is empty"
        if shards is not None:
            problem = _shard_index_problem(f, size, array)
            if problem:
                return f"{f}: {problem}"
    return None


def _shard_index_problem(f: Path, size: int, array: zarr.Array) -> str | None:
    import google_crc32c

    chunks, shards = array.chunks, array.shards
    n = int(np.prod([s // c for s, c in zip(shards, chunks, strict=True)]))  # type: ignore[arg-type]
    index_bytes = 16 * n + 4
    if size < index_bytes:
        return f"shorter ({size} B) than its index ({index_bytes} B)"
    with open(f, "rb") as fh:
        fh.seek(size - index_bytes)
        tail = fh.read(index_bytes)
    body, crc = tail[:-4], int.from_bytes(tail[-4:], "little")
    if google_crc32c.value(body) != crc:
        return "its index fails its checksum"
    entries = np.frombuffer(body, dtype="<u8").reshape(-1, 2)
    used = entries[entries[:, 0] != np.iinfo(np.uint64).max]
    if used.size and int((used[:, 0] + used[:, 1]).max()) > size - index_bytes:
        return "its index points past the end of the file"
    return None


def finalize_output(group: zarr.Group, spec: OutputSpec, *, name: str = "image", attrs: dict[str, Any] | None = None) -> None:
    """Write the OME metadata and mark the output complete. Call only after every level is written."""
    ome = multiscales_attrs(spec.meta, len(spec.shapes), spec.ngff, name=name)
    old = group.attrs.get("zse")
    zse_attrs: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    zse_attrs.update(attrs or {})
    zse_attrs["status"] = "complete"
    zse_attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    group.attrs.update({**ome, "zse": zse_attrs})


def level_tasks(spec: OutputSpec) -> list[tuple[int, Box]]:
    """(level, write box) for every pyramid level after 0, level by level, aligned to that level's shards."""
    tasks: list[tuple[int, Box]] = []
    for level, shape in enumerate(spec.shapes[1:], start=1):
        tasks.extend((level, box) for box in block_grid(shape[-2:], spec.level_block(level)))
    return tasks


def write_pyramid(group: zarr.Group, spec: OutputSpec, *, progress: bool = True, threads: int = 2,
                  on_task: Callable[[], None] | None = None) -> None:
    """Build levels 1.. from level 0 in this process (threads), level by level."""
    for level in range(1, len(spec.shapes)):
        src, dst = group[str(level - 1)], writable(group[str(level)])
        boxes = block_grid(spec.shapes[level][-2:], spec.level_block(level))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(write_level_region, [src] * len(boxes), [dst] * len(boxes), boxes):
                if on_task:
                    on_task()


def write_volume(
    path: str | Path,
    volume: Any,
    *,
    axes: str = "zyx",
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0),
    translation_um: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ngff: str = "0.5",
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    block: int = 1024,
    name: str = "image",
    threads: int = 2,
) -> Path:
    """Write a numpy or dask array (`zyx` or `czyx`, uint8/uint16) as a multiscale OME-Zarr.

    Level 0 is written block by block (`block` × `block` in y, x, all z), each block computed on its
    own, so memory stays within about `threads` blocks whatever the volume size (a dask array is only
    computed one block at a time). Then the pyramid, then the metadata (the commit point).
    """
    if axes not in ("zyx", "czyx"):
        raise ConfigError(f"axes {axes!r} are not supported; valid: zyx, czyx")
    if len(volume.shape) != len(axes):
        raise ConfigError(f"volume has shape {tuple(volume.shape)} but axes {axes!r}")
    meta = ImageMeta(axes=axes, shape=tuple(int(s) for s in volume.shape), dtype=np.dtype(volume.dtype).name,
                     voxel_size_um=tuple(float(v) for v in voxel_size_um),  # type: ignore[arg-type]
                     translation_um=tuple(float(v) for v in translation_um),  # type: ignore[arg-type]
                     ngff_version=ngff, name=name)
    spec = OutputSpec(meta=meta, ngff=ngff, block=block)
    from zse.pipeline.intensity import half_range

    half_range(meta.dtype)  # validates the dtype before anything is created
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    with OutputLock(path):
        target = write_target(path)
        _write_volume_to(target, volume, spec, name=name, attrs=attrs, progress=progress, block=block, threads=threads)
        if target != path:
            swap_in(target, path)
    return path


def _write_volume_to(path: Path, volume: Any, spec: OutputSpec, *, name: str, attrs: dict[str, Any] | None,
                     progress: bool, block: int, threads: int) -> None:
    meta = spec.meta
    group = create_output(path, spec, attrs=attrs)
    arr0 = writable(group["0"])
    boxes = block_grid(meta.shape[-2:], block)
    n_total = len(boxes) + len(level_tasks(spec))
    bar = tqdm(total=n_total, desc=f"writing {Path(path).name}", unit="block", disable=not progress, leave=False)

    def write_block(box: Box) -> None:
        region = np.asarray(volume[(..., *box.slices())])
        arr0[(..., *box.slices())] = region

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(write_block, boxes):
            bar.update(1)
    write_pyramid(group, spec, threads=threads, on_task=lambda: bar.update(1))
    bar.close()
    finalize_output(group, spec, name=name)
