"""What one TIFF file holds (`inspect_tiff` → `TiffInfo`), read from its structure and tags only.

Level 0 of series 0 is described (axes, shape, dtype, colour, TIFF tile or strip, compression, voxel
size); other series (thumbnail, label, macro) and pyramid levels are listed and ignored. A file that is
not a TIFF, is truncated or damaged (`check_complete`, and tifffile's own complaints held back by
`_TiffDamageLog`), or holds another dtype or layout is refused with an `InputError` naming it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from zse.errors import InputError, ZseError
from zse.pipeline.io.tiff.voxel import VoxelSize, read_voxel_size

SUPPORTED_DTYPES: tuple[str, ...] = ("uint8", "uint16")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PLANE_AXES = "ZIQT"  # tifffile axes that can carry the planes of a stack


@dataclass(frozen=True)
class TiffInfo:
    """What one TIFF file holds at level 0 of series 0 (no pixel data read).

    `shape_zyxc` is (Z, Y, X, C) in px/samples; `axes` and `shape` are tifffile's (squeezed) axes and
    shape for the same data, `order` the transpose from them to (Z?, Y, X, C?). `tile_yx` is the TIFF
    tile (or strip rows × width) in px; `voxel_size_um` (z, y, x) in micrometres with None where the
    metadata says nothing, and `voxel_size_from` says which metadata gave it.
    """

    path: Path
    kind: str  # tifffile series kind: svs, ome, imagej, generic, shaped, ...
    series_name: str
    axes: str
    shape: tuple[int, ...]
    order: tuple[int, ...]
    shape_zyxc: tuple[int, int, int, int]
    dtype: np.dtype
    color: Literal["gray", "rgb", "channels"]
    photometric: str
    compression: str
    tile_yx: tuple[int, int]
    tiled: bool
    n_levels: int
    ignored_series: tuple[str, ...]
    voxel_size_um: VoxelSize
    voxel_size_from: str | None
    notes: tuple[str, ...] = field(default=())

    @property
    def n_planes(self) -> int:
        return self.shape_zyxc[0]

    @property
    def yx(self) -> tuple[int, int]:
        return self.shape_zyxc[1], self.shape_zyxc[2]

    @property
    def n_channels(self) -> int:
        return self.shape_zyxc[3]


def check_magic(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head not in _TIFF_MAGIC:
        raise InputError(
            f"{path} is not a TIFF file (it starts with {head!r}, a TIFF starts with b'II*\\x00', b'MM\\x00*' "
            "or BigTIFF's b'II+\\x00'); INPUT takes TIFF, BigTIFF, OME-TIFF or SVS files, or folders of them"
        )


#: tifffile log messages that mean the file is truncated or damaged (its structure points past the end,
#: pages or values are missing): tifffile logs them and carries on with what it could read.
_DAMAGE_LOG = re.compile(
    r"offset|corrupt|could not read all|missing data|missing \d+ (frames|pages)|incompletely written|"
    r"ByteCounts|out of range|Missing data",
    re.IGNORECASE,
)


class _TiffDamageLog(logging.Filter):
    """While active, holds back tifffile's log records that report a damaged file (see `_DAMAGE_LOG`).

    tifffile logs such damage (a value or page offset beyond the end of the file, a corrupted tag list)
    and goes on with less: fewer pages, no OME-XML. zse refuses the file instead, with one line; other
    tifffile records pass through unchanged. Installed on the ``tifffile`` logger for the duration of a
    ``with`` block (inspection runs before any pixel is read, in the calling thread).
    """

    def __init__(self) -> None:
        super().__init__("zse-tiff-damage")
        self.damage: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING and _DAMAGE_LOG.search(message):
            self.damage.append(re.sub(r"^(<[^>]*>\s*)+", "", message).strip())
            return False
        return True

    def __enter__(self) -> _TiffDamageLog:
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tifffile").removeFilter(self)

    def check(self, path: Path, tif: tifffile.TiffFile | None = None) -> None:
        """Raise `InputError` naming `path`, tifffile's first complaint and how many pages were readable
        (from `tif`, when open) if any damage was logged."""
        if self.damage:
            more = f" (and {len(self.damage) - 1} more problem(s))" if len(self.damage) > 1 else ""
            read = ""
            if tif is not None:
                try:
                    read = f"; {len(tif.pages)} page(s) readable"
                except Exception:  # noqa: BLE001 - only a detail of the message
                    read = ""
            raise InputError(
                f"{path} is truncated or damaged: {self.damage[0]}{more}{read}; the file is "
                f"{path.stat().st_size} bytes: copy or export it again"
            )


def inspect_tiff(path: str | Path) -> TiffInfo:
    """Describe level 0 of series 0 of a TIFF file without reading pixel data.

    Raises `InputError` for a file that is not a TIFF, cannot be parsed, is truncated or damaged (its
    structure or a strip/tile of level 0 lies beyond the end of the file, see `check_complete`), has no
    image, an unsupported dtype (valid: uint8, uint16) or axes that are not (planes,) Y, X (, channels or
    samples).
    """
    path = Path(path)
    check_magic(path)
    with _TiffDamageLog() as log:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series  # parses the pages (tifffile logs damage found on the way)
                log.check(path, tif)
                info = _inspect_open(path, tif, series)
                log.check(path, tif)
                return info
        except ZseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to parse the file's structure is about the file
            log.check(path)
            raise InputError(f"{path} is not a readable TIFF file ({type(exc).__name__}: {exc})") from None


def check_complete(path: Path, level0: Any) -> None:
    """Refuse a level 0 whose pixel data is not all in the file: a size of 0, a missing page, a page
    listing another number of strips/tiles than its size needs (a damaged size or tile tag), or a
    strip/tile whose bytes (``dataoffsets`` + ``databytecounts``) run past the end of the file holding it.

    `level0`: tifffile's `TiffPageSeries` of level 0 of series 0. Reads only page metadata. Raises
    `InputError` naming the file, the plane (index into the series' pages) and the file size.
    """
    total = len(level0.pages)
    key = level0.keyframe
    kind = "tile" if key.is_tiled else "strip"
    if any(int(n) < 1 for n in key.shape) or (key.is_tiled and min(int(key.tilelength), int(key.tilewidth)) < 1):
        tile = f", {kind} {key.tilelength}×{key.tilewidth}" if key.is_tiled else ""
        raise InputError(f"{path} is damaged: level 0 has shape {tuple(key.shape)}{tile} (a size is 0)")
    n_segments = math.prod(int(n) for n in key.chunked)
    for i, page in enumerate(level0.pages):
        where = f"plane {i}" if total > 1 else "its image"
        if page is None:
            raise InputError(
                f"{path} is incomplete: {where} of {total} (series 0) is not in the file (nor in a file it "
                "names); copy or export the stack again"
            )
        size = int(page.parent.filehandle.size)
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if offsets.shape != counts.shape:
            raise InputError(f"{path} is damaged: {where} (page {page.index}) lists {offsets.size} strip/tile "
                             f"offsets but {counts.size} byte counts")
        if offsets.size != n_segments and not key.is_ndpi:
            raise InputError(
                f"{path} is damaged: {where} (page {page.index}) lists {offsets.size} {kind}s but its size "
                f"{tuple(key.shape)} in {kind}s of {tuple(key.chunks)} needs {n_segments}; copy or export it again"
            )
        bad = np.flatnonzero((counts > 0) & ((offsets < 0) | (offsets + counts > size)))
        if bad.size:
            k = int(bad[0])
            raise InputError(
                f"{path} is truncated: {where} (page {page.index}) needs {kind} {k} at bytes "
                f"{offsets[k]}..{offsets[k] + counts[k]} but the file ends at byte {size} "
                f"({bad.size} of {offsets.size} {kind}s of this plane are cut); copy or export it again"
            )
    offset = level0.dataoffset
    if offset is not None and level0.pages and level0.pages[0] is not None:
        size = int(level0.pages[0].parent.filehandle.size)
        end = int(offset) + int(level0.nbytes)
        if end > size:
            plane_bytes = max(1, int(level0.nbytes) // max(1, level0.get_shape(True)[0]))
            raise InputError(
                f"{path} is truncated: its {level0.get_shape(True)} stack needs bytes {offset}..{end} but the "
                f"file ends at byte {size} (cut in plane {max(0, size - int(offset)) // plane_bytes}); "
                "copy or export it again"
            )


def _inspect_open(path: Path, tif: tifffile.TiffFile, all_series: Sequence[Any]) -> TiffInfo:
    if not all_series:
        raise InputError(f"{path} holds no image")
    series = all_series[0]
    level0 = series.levels[0]
    check_complete(path, level0)
    page = level0.keyframe
    axes = level0.get_axes(True)
    shape = tuple(int(s) for s in level0.get_shape(True))
    dtype = np.dtype(level0.dtype) if level0.dtype is not None else np.dtype("V1")
    if dtype.name not in SUPPORTED_DTYPES:
        raise InputError(
            f"{path} holds {dtype.name if dtype.kind != 'V' else 'no regular'} pixels; valid data types "
            f"are {' and '.join(SUPPORTED_DTYPES)} (convert the file first, e.g. in Fiji)"
        )
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: series 0 has axes {axes} {shape}, need Y and X")
    plane_axes = [a for a in axes if a in PLANE_AXES]
    chan_axes = [a for a in axes if a in "CS"]
    other = [a for a in axes if a not in PLANE_AXES + "CSYX"]
    if len(plane_axes) > 1 or len(chan_axes) > 1 or other:
        raise InputError(
            f"{path}: series 0 has axes {axes} with shape {shape}; zse converts a z-stack "
            "(planes, Y, X, optionally one channel/sample axis), not time series or extra dimensions"
        )
    order = [axes.index(a) for a in plane_axes] + [axes.index("Y"), axes.index("X")]
    order += [axes.index(a) for a in chan_axes]
    z = shape[axes.index(plane_axes[0])] if plane_axes else 1
    c = shape[axes.index(chan_axes[0])] if chan_axes else 1
    photometric = getattr(page.photometric, "name", str(page.photometric))
    if c == 1:
        color: Literal["gray", "rgb", "channels"] = "gray"
    elif chan_axes == ["S"] and c in (3, 4) and photometric in ("RGB", "YCBCR"):
        color = "rgb"
    else:
        color = "channels"
    if page.is_tiled:
        tile = (int(page.tilelength), int(page.tilewidth))
    else:
        tile = (max(1, min(int(page.rowsperstrip or shape[axes.index("Y")]), shape[axes.index("Y")])),
                shape[axes.index("X")])
    vs, vs_from, notes = read_voxel_size(tif, page)
    if z == 1 and vs_from != "OME-XML PhysicalSize":
        vs = (None, vs[1], vs[2])  # a single plane says nothing about the z step
    ignored = tuple(s.name or f"series {i}" for i, s in enumerate(all_series) if i > 0)
    return TiffInfo(
        path=path,
        kind=str(series.kind),
        series_name=str(series.name or ""),
        axes=axes,
        shape=shape,
        order=tuple(order),
        shape_zyxc=(z, shape[axes.index("Y")], shape[axes.index("X")], c),
        dtype=dtype,
        color=color,
        photometric=photometric,
        compression=getattr(page.compression, "name", str(page.compression)),
        tile_yx=tile,
        tiled=bool(page.is_tiled),
        n_levels=len(series.levels),
        ignored_series=ignored,
        voxel_size_um=vs,
        voxel_size_from=vs_from,
        notes=tuple(notes),
    )
