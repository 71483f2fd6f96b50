"""Chunk integrity of the input: checked Blosc decoding, and stored chunks listed against the chunk grid.

Two ways a damaged input used to go wrong, and what this module does about them:

- A truncated or corrupt Blosc chunk was handed to upstream c-blosc, which trusts the sizes in the
  chunk's 16-byte header and read past the buffer (segfaults, seen in processes that imported torch).
  `guard_array` swaps an opened array's Blosc decoder for one that first checks the header against
  the buffer: the compressed size must fit in the stored bytes, the decompressed size must be the
  chunk's size in bytes (where the codec chain fixes it), the block size and every block start must
  lie inside the frame. c-blosc bounds all further reads by the header's compressed size, so after
  these checks it cannot leave the buffer. Zarr v2 (numcodecs `Blosc` compressor) and v3 (`blosc`
  codec, also inside shards) are both covered. A failed check raises `CorruptChunkError` (an
  InputError) naming the array. Open input arrays with `open_source_array` (or `open_image`, which
  uses it) in every process, Dask workers included; a guarded array also keeps its checks when pickled.
- A missing chunk (or shard) file reads as the fill value without a word. `check_chunks` lists the
  stored objects of every level of an image (names only, os.scandir; no chunk is read) and refuses
  gaps unless allowed. Missing inner chunks of a present shard (an empty index entry) are not seen:
  finding them needs one read per shard.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import zarr
from numcodecs.compat import ensure_contiguous_ndarray
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec

from zse.errors import InputError

if TYPE_CHECKING:
    from zse.pipeline.io.ngff import SourceImage

BLOSC_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes
BLOSC_MEMCPYED = 0x02  # flags bit: the data follows the header uncompressed


class CorruptChunkError(InputError):
    """A stored chunk that cannot be decoded safely (truncated, or a corrupt header)."""


def blosc_frame_problem(buf: Any, expected_nbytes: int | None) -> str | None:
    """Why the Blosc1 frame `buf` cannot be decompressed safely, or None if its framing is sound.

    `expected_nbytes`: the decompressed size the chunk must have (chunk shape × item size), or None
    where the codec chain does not fix it. Checks only the framing (header sizes, block starts), not
    the compressed streams, which c-blosc bounds-checks itself within the header's compressed size.
    """
    b = ensure_contiguous_ndarray(buf).view(np.uint8).reshape(-1)
    n = b.size
    if n < BLOSC_HEADER.size:
        return f"truncated: {n} bytes, less than the {BLOSC_HEADER.size}-byte Blosc header"
    _, _, flags, typesize, nbytes, blocksize, cbytes = BLOSC_HEADER.unpack_from(b, 0)
    if cbytes > n:
        return f"truncated: the Blosc header gives {cbytes} compressed bytes, the stored chunk has {n}"
    if cbytes < BLOSC_HEADER.size:
        return f"corrupt Blosc header: compressed size {cbytes} is less than the header itself"
    if expected_nbytes is not None and nbytes != expected_nbytes:
        return f"corrupt Blosc header: it gives {nbytes} decompressed bytes, a chunk of this array holds {expected_nbytes}"
    if typesize == 0:
        return "corrupt Blosc header: type size 0"
    if flags & BLOSC_MEMCPYED:
        if cbytes != nbytes + BLOSC_HEADER.size:
            return f"corrupt Blosc header: an uncompressed frame of {nbytes} bytes cannot take {cbytes} bytes"
        return None
    if nbytes == 0:
        return None
    if not 0 < blocksize <= nbytes:
        return f"corrupt Blosc header: block size {blocksize} for {nbytes} bytes"
    nblocks = -(-nbytes // blocksize)
    first = BLOSC_HEADER.size + 4 * nblocks
    if first > cbytes:
        return f"truncated: {nblocks} Blosc blocks need {first} bytes of block starts, the frame has {cbytes}"
    starts = np.frombuffer(b, dtype="<u4", count=nblocks, offset=BLOSC_HEADER.size)
    if bool(((starts < first) | (starts >= cbytes)).any()):
        return f"corrupt Blosc frame: a block starts outside the {cbytes}-byte frame"
    return None


def _check(buf: Any, expected_nbytes: int | None, label: str) -> None:
    problem = blosc_frame_problem(buf, expected_nbytes)
    if problem is not None:
        raise CorruptChunkError(f"{label}: a chunk cannot be read ({problem})")


class CheckedBlosc(numcodecs.Blosc):  # type: ignore[misc]
    """numcodecs' Blosc (a Zarr v2 compressor) that checks each frame before c-blosc decompresses it.

    label: what to name in errors (the array's path); expected_nbytes: decompressed chunk size in bytes
    (None where filters follow the compressor). Encodes, and reports its configuration, as plain Blosc.
    """

    def __init__(self, config: dict[str, Any], *, label: str, expected_nbytes: int | None) -> None:
        super().__init__(**{k: v for k, v in config.items() if k != "id"})
        self.label = label
        self.expected_nbytes = expected_nbytes

    def decode(self, buf: Any, out: Any = None) -> Any:
        _check(buf, self.expected_nbytes, self.label)
        return super().decode(buf, out)


class CheckedBloscCodec(BloscCodec):
    """Zarr v3's `blosc` codec that checks each frame before c-blosc decompresses it.

    `raw_input`: the codec compresses the array-to-bytes codec's output directly, so a decoded chunk
    holds exactly (chunk shape × item size) bytes.
    """

    label: str
    raw_input: bool

    def __init__(self, codec: BloscCodec, *, label: str, raw_input: bool) -> None:
        super().__init__(typesize=codec.typesize, cname=codec.cname, clevel=codec.clevel, shuffle=codec.shuffle,
                         blocksize=codec.blocksize)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "raw_input", raw_input)

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        expected = None
        item = getattr(chunk_spec.dtype, "item_size", None)
        if self.raw_input and isinstance(item, int):
            expected = math.prod(chunk_spec.shape) * item
        _check(chunk_bytes.as_numpy_array(), expected, self.label)
        return super()._decode_sync(chunk_bytes, chunk_spec)


class CheckedShardingCodec(ShardingCodec):
    """The sharding codec with its inner Blosc codecs checked; stays checked when pickled (zarr's own
    pickles its codecs as JSON, which would bring back the unchecked Blosc codec)."""

    label: str

    def __init__(self, codec: ShardingCodec, *, label: str) -> None:
        super().__init__(chunk_shape=codec.chunk_shape, codecs=_guard_codecs(codec.codecs, label),
                         index_codecs=codec.index_codecs, index_location=codec.index_location)
        object.__setattr__(self, "label", label)

    def __getstate__(self) -> dict[str, Any]:
        return {"codec": self.to_dict(), "label": self.label}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state["codec"])
        object.__setattr__(self, "codecs", _guard_codecs(self.codecs, state["label"]))
        object.__setattr__(self, "label", state["label"])


def _guard_codecs(codecs: tuple[Any, ...], label: str) -> tuple[Any, ...]:
    out: list[Any] = []
    after_bytes = False
    for codec in codecs:
        if isinstance(codec, ShardingCodec) and not isinstance(codec, CheckedShardingCodec):
            codec = CheckedShardingCodec(codec, label=label)
        elif isinstance(codec, BloscCodec) and not isinstance(codec, CheckedBloscCodec):
            codec = CheckedBloscCodec(codec, label=label, raw_input=after_bytes)
        after_bytes = isinstance(codec, BytesCodec)
        out.append(codec)
    return tuple(out)


def guard_array(array: zarr.Array, label: str) -> zarr.Array:
    """A copy of the opened `array` whose Blosc decoding checks every frame first (see module docstring).

    `label` names the array in errors (its path). Arrays without Blosc are returned unchanged.
    """
    from zarr.codecs._v2 import V2Codec
    from zarr.core.array import AsyncArray
    from zarr.core.metadata import ArrayV2Metadata
    from zarr.registry import get_pipeline_class

    aa = array.async_array
    meta = aa.metadata
    if isinstance(meta, ArrayV2Metadata):
        if not isinstance(meta.compressor, numcodecs.Blosc) or isinstance(meta.compressor, CheckedBlosc):
            return array
        item = getattr(meta.dtype, "item_size", None)
        expected = math.prod(meta.chunks) * item if isinstance(item, int) and not meta.filters else None
        compressor = CheckedBlosc(meta.compressor.get_config(), label=label, expected_nbytes=expected)
        codecs: tuple[Any, ...] = (V2Codec(filters=meta.filters, compressor=compressor),)
    else:
        codecs = _guard_codecs(tuple(meta.codecs), label)
        if codecs == tuple(meta.codecs):
            return array
    guarded = AsyncArray(metadata=meta, store_path=aa.store_path, config=aa.config)
    object.__setattr__(guarded, "codec_pipeline", get_pipeline_class().from_codecs(codecs))
    return zarr.Array(guarded)


def open_source_array(path: str | os.PathLike[str]) -> zarr.Array:
    """Open the input array at `path` read-only, with Blosc frames checked before decompression.

    The one way zse opens an input array (open_image, and block tasks in Dask workers). Raises
    whatever zarr raises for a path that holds no array (callers turn it into their InputError).
    """
    return guard_array(zarr.open_array(str(path), mode="r"), str(path))


# ---------------------------------------------------------------------------------------------- missing chunks


@dataclass(frozen=True)
class ChunkCount:
    """Stored objects of one array: `missing` of `total` (chunks, or shards on a sharded array) are absent;
    `first`: the store key (relative to the array) of the first absent one in C order, or None."""

    missing: int
    total: int
    first: str | None
    kind: str


def _present_nested(root: Path, prefix: str, grid: tuple[int, ...], present: np.ndarray) -> None:
    """Mark the keys `[prefix/]i/j/…/k` stored as files under `root` (one folder level per dimension)."""
    base = root / prefix if prefix else root

    def walk(folder: str, head: tuple[int, ...]) -> None:
        depth = len(head)
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        if depth == len(grid) - 1:
            idx = [int(e.name) for e in entries if e.name.isascii() and e.name.isdigit() and e.is_file()]
            arr = np.asarray([i for i in idx if i < grid[-1]], dtype=np.int64)
            if arr.size:
                where: tuple[Any, ...] = (*head, arr)
                present[where] = True
            return
        for e in entries:
            if e.name.isascii() and e.name.isdigit() and int(e.name) < grid[depth] and e.is_dir():
                walk(e.path, (*head, int(e.name)))

    walk(str(base), ())


def _present_flat(root: Path, prefix: str, sep: str, grid: tuple[int, ...], present: np.ndarray) -> None:
    """Mark the keys `[prefix.]i.j.….k` stored as files directly in `root`."""
    lead = prefix + sep if prefix else ""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    rows = []
    for e in entries:
        name = e.name
        if not name.startswith(lead):
            continue
        parts = name[len(lead):].split(sep)
        if len(parts) == len(grid) and all(p.isascii() and p.isdigit() for p in parts) and e.is_file():
            rows.append([int(p) for p in parts])
    if rows:
        idx = np.asarray(rows, dtype=np.int64)
        idx = idx[(idx < np.asarray(grid)).all(axis=1)]
        present[tuple(idx.T)] = True


def missing_chunks(array: zarr.Array, array_dir: str | os.PathLike[str]) -> ChunkCount:
    """Which of a local array's chunk (or, sharded, shard) files are absent, by listing `array_dir` only.

    Handles Zarr v2 ('.' or '/' dimension separator) and v3 (default `c/…` or v2-style key encoding).
    """
    root = Path(array_dir)
    shards = getattr(array, "shards", None)
    outer = shards or array.chunks
    grid = tuple(-(-s // c) for s, c in zip(array.shape, outer, strict=True))
    kind = "shards" if shards else "chunks"
    total = math.prod(grid)
    meta = array.metadata
    if total == 0:
        return ChunkCount(0, 0, None, kind)
    if not grid:  # 0-d: one object
        key = meta.encode_chunk_key(())
        return ChunkCount(0 if (root / key).is_file() else 1, 1, None if (root / key).is_file() else key, kind)
    probe = meta.encode_chunk_key((0,) * len(grid))
    prefix = "c" if probe.startswith("c") else ""
    sep = probe[len(prefix)] if prefix else ("/" if "/" in probe else ".")
    present = np.zeros(grid, dtype=bool)
    if sep == "/":
        _present_nested(root, prefix, grid, present)
    else:
        _present_flat(root, prefix, sep, grid, present)
    missing = total - int(np.count_nonzero(present))
    first = None
    if missing:
        flat = int(np.argmin(present.reshape(-1)))
        first = meta.encode_chunk_key(tuple(int(i) for i in np.unravel_index(flat, grid)))
    return ChunkCount(missing, total, first, kind)


def _local_dir(array: zarr.Array) -> Path | None:
    from zarr.storage import LocalStore

    store = array.store
    if not isinstance(store, LocalStore):
        return None
    return Path(store.root) / array.path if array.path else Path(store.root)


def check_chunks(source: SourceImage, *, allow_missing: bool = False) -> list[str]:
    """Refuse an image with absent chunk (or shard) files in any level it has, unless `allow_missing`.

    Lists names only (no chunk is read): about 0.1–0.3 s per 100 000 stored objects on a local disk (measured: 229 000 chunk files in 0.3 s).
    Arrays outside a local store are skipped. Raises InputError (one line: how many of how many, the
    first missing key, the flag to pass); with `allow_missing`, returns one note line per level with
    gaps instead (empty when nothing is missing).
    """
    notes: list[str] = []
    for level, (path, array) in enumerate(zip(source.level_paths, source.levels, strict=True)):
        folder = _local_dir(array)
        if folder is None:
            continue
        count = missing_chunks(array, folder)
        if not count.missing:
            continue
        fill = array.fill_value
        as_what = "zeros" if fill == 0 else f"the fill value {fill}"
        what = (f"{source.path}: {count.missing} of {count.total} {count.kind} of level {level} are missing "
                f"(first: {path}/{count.first})")
        if not allow_missing:
            raise InputError(f"{what}; pass --allow-missing-chunks to read them as {as_what} (writers that skip "
                             "chunks equal to the fill value leave such gaps)")
        notes.append(f"{what}; reading them as {as_what} (--allow-missing-chunks)")
    return notes
