"""Lazy TIFF sources: per-plane pyramidal whole-slide TIFFs and multi-page stacks as Dask arrays.

What is read
    Level 0 of series 0 of each file, through tifffile's Zarr 3 view
    (`tifffile.TiffFile.aszarr(series=0, level=0)` opened with `zarr.open_array`): nothing is decoded
    until a Dask block is computed, and a block decodes only the TIFF tiles (or strips) it covers.
    Thumbnail, label and macro images (Aperio/Huron style: extra pages or series after level 0) and the
    lower pyramid levels are never read. JPEG, JPEG 2000, LZW, Deflate, Zstd, ... tiles are decoded by
    imagecodecs.

Shapes and axes
    `TiffInfo` describes one file; `open_tiff_volume` validates a whole input (every file, before
    anything is written) and returns a `TiffVolume` whose `data` is a Dask array
    - ``zyx``  (Z, Y, X), the input dtype, for ``channel_mode="gray"``;
    - ``czyx`` (C, Z, Y, X), the input dtype, for ``channel_mode="keep"``.
    Dask blocks are one plane deep and a whole number of TIFF tiles in y and x (about `block_yx` px),
    so no TIFF tile is decoded by two blocks. Only uint8 and uint16 samples are accepted.

Grayscale
    RGB(A) samples become luminance with ITU-R BT.601 weights, rounded half up, in integer arithmetic,
    in the input dtype: ``Y = (299·R + 587·G + 114·B + 500) // 1000`` (alpha is dropped). See
    `rgb_to_gray`.

Voxel size (micrometres, (z, y, x))
    From the metadata where present, in this order: OME-XML ``PhysicalSizeX/Y/Z`` (with their units),
    ImageJ ``spacing``/``unit`` with the resolution tags, the Aperio ``MPP`` field, the TIFF
    ``XResolution``/``YResolution``/``ResolutionUnit`` tags. Resolution tags with no unit, or that give
    pixels larger than 20 µm (screen defaults such as 72 dpi = 352.8 µm), are not used. Values given by
    the caller (``--voxel-size``) take precedence over the metadata.

All errors about the input raise `zse.errors.InputError` (or `ConfigError` for a bad option) with a
one-line message naming the file and what is valid.
"""

from __future__ import annotations

import glob
import logging
import math
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask.base import tokenize

from zse.errors import ConfigError, InputError, ZseError

__all__ = [
    "GRAY_FORMULA",
    "TIFF_SUFFIXES",
    "TiffInfo",
    "TiffLevel0",
    "TiffVolume",
    "collect_inputs",
    "inspect_tiff",
    "open_tiff_volume",
    "order_planes",
    "resolve_voxel_size",
    "rgb_to_gray",
    "tiff_dask",
]

ChannelMode = Literal["gray", "keep"]

#: File name endings taken from a folder (case-insensitive). Other files in a folder are ignored.
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".svs", ".btf", ".tf8", ".tf2", ".qptiff")

#: The grayscale conversion, as recorded in the output's provenance.
GRAY_FORMULA = "ITU-R BT.601 luma: Y = (299*R + 587*G + 114*B + 500) // 1000 (integer, rounded half up)"

SUPPORTED_DTYPES: tuple[str, ...] = ("uint8", "uint16")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PLANE_AXES = "ZIQT"  # tifffile axes that can carry the planes of a stack
_UNIT_UM = {
    "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\u03bcm": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4,
    "centimeter": 1e4, "m": 1e6, "meter": 1e6, "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6,
}
_MAX_PIXEL_UM = 20.0  # resolution tags giving larger pixels are taken as a screen default, not a pixel size

VoxelSize = tuple[float | None, float | None, float | None]


# --------------------------------------------------------------------------------------------- inputs
def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand INPUT arguments (files, folders, glob patterns) into a list of files.

    A folder contributes its files whose names end in one of `TIFF_SUFFIXES` (hidden files and other
    files are ignored); a pattern with ``*``, ``?`` or ``[`` that is not an existing path is expanded
    with `glob`. Files given by name are kept even without a TIFF suffix (their content is checked later).
    Order: as given, each folder and pattern sorted by name. Raises `InputError` for a missing path, an
    empty folder or pattern, or a file given twice.
    """
    if not inputs:
        raise InputError("no INPUT given: give a folder of per-plane TIFFs, a glob pattern or TIFF files")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(TIFF_SUFFIXES)
            )
            if not found:
                raise InputError(
                    f"folder {path} holds no TIFF files (names ending in {', '.join(TIFF_SUFFIXES)})"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif any(ch in str(item) for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(str(item)) if Path(p).is_file())
            if not matched:
                raise InputError(f"no files match the pattern {item!s}")
            files.extend(matched)
        else:
            raise InputError(f"input {item!s} does not exist (give TIFF files, a folder of them or a glob)")
    seen: dict[Path, Path] = {}
    for f in files:
        key = f.resolve()
        if key in seen:
            raise InputError(f"file {f} is given twice (also as {seen[key]}); give each plane once")
        seen[key] = f
    return files


def _natural_tokens(name: str) -> list[str]:
    return re.split(r"(\d+)", name)


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in _natural_tokens(path.name))


def _plane_numbers_auto(paths: Sequence[Path]) -> list[int]:
    """The number in the file names that tells the plane (the one numeric field that varies)."""
    tokens = [_natural_tokens(p.name) for p in paths]
    first = tokens[0]
    same_layout = all(
        len(t) == len(first) and all(a == b for a, b in zip(t[0::2], first[0::2], strict=True)) for t in tokens
    )
    example = f"e.g. --order 'z(\\d+)' for names like {paths[0].name}"
    if not same_layout:
        raise InputError(
            f"cannot find a plane number in the file names ({paths[0].name}, {paths[1].name}, ...: their "
            f"text differs); give --order name (natural name order), --order given, or a regex, {example}"
        )
    fields = range(1, len(first), 2)
    varying = [i for i in fields if len({int(t[i]) for t in tokens}) > 1]
    distinct = [i for i in varying if len({int(t[i]) for t in tokens}) == len(tokens)]
    if len(distinct) > 1:  # prefer the number after 'z', 'plane', 'layer', 'focus', 'slice'
        named = [i for i in distinct if re.search(r"(z|plane|layer|focus|slice)[_\-. ]*$", first[i - 1], re.I)]
        if len(named) == 1:
            distinct = named
    if len(distinct) == 1:
        return [int(t[distinct[0]]) for t in tokens]
    if not varying and len(fields):
        dup = _duplicates([int(t[fields[-1]]) for t in tokens], paths)
        raise InputError(f"plane numbers in the file names repeat ({dup}); give each plane once")
    if not varying:
        raise InputError(
            f"cannot find a plane number in the file names ({paths[0].name}, ...: no number differs "
            f"between them); give --order name, --order given, or a regex, {example}"
        )
    if not distinct:
        dup = _duplicates([int(t[varying[0]]) for t in tokens], paths)
        raise InputError(f"plane numbers in the file names repeat ({dup}); give each plane once")
    which = ", ".join(f"the number after {first[i - 1]!r}" for i in distinct)
    raise InputError(
        f"the plane number in the file names is ambiguous ({which} all differ between files); "
        f"give --order with a regex whose group is the plane number, {example}"
    )


def _duplicates(numbers: Sequence[int], paths: Sequence[Path]) -> str:
    byn: dict[int, list[str]] = {}
    for n, p in zip(numbers, paths, strict=True):
        byn.setdefault(n, []).append(p.name)
    dups = [f"{n}: {' and '.join(names)}" for n, names in byn.items() if len(names) > 1]
    return "; ".join(dups[:3])


def order_planes(paths: Sequence[Path], order: str = "number") -> tuple[list[Path], list[int] | None]:
    """Sort per-plane files into z order.

    `order`:
    - ``"number"`` (default): by the plane number in the file names, the one numeric field that differs
      between the names (with several, the one after ``z``/``plane``/``layer``/``focus``/``slice``);
    - ``"name"``: natural name order (``p2`` before ``p10``), no numbering check;
    - ``"given"``: as listed (folders and patterns sorted by name), no numbering check;
    - any other string: a regular expression searched in each file name whose first group is the plane
      number (e.g. ``'_z(\\d+)'``).

    With a plane number, numbers must be distinct and evenly spaced without gaps (step = their greatest
    common divisor, usually 1; the start is free). Returns the sorted paths and their plane numbers
    (None for ``name``/``given``). Raises `InputError` (repeated or missing planes, no number) or
    `ConfigError` (bad regex).
    """
    paths = list(paths)
    if order == "given":
        return paths, None
    if order == "name":
        return sorted(paths, key=_natural_key), None
    if len(paths) == 1:
        return paths, None
    if order == "number":
        numbers = _plane_numbers_auto(paths)
    else:
        try:
            rx = re.compile(order)
        except re.error as exc:
            raise ConfigError(
                f"--order {order!r} is not number, name, given or a valid regular expression ({exc})"
            ) from None
        if rx.groups < 1:
            raise ConfigError(f"--order regex {order!r} needs a group around the plane number, e.g. 'z(\\d+)'")
        numbers = []
        for p in paths:
            m = rx.search(p.name)
            if m is None or not (m.group(1) or "").isdigit():
                raise InputError(f"--order regex {order!r} finds no plane number in the file name {p.name}")
            numbers.append(int(m.group(1)))
    if len(set(numbers)) != len(numbers):
        raise InputError(f"plane numbers in the file names repeat ({_duplicates(numbers, paths)}); give each plane once")
    pairs = sorted(zip(numbers, paths, strict=True), key=lambda t: t[0])
    nums = [n for n, _ in pairs]
    step = reduce(math.gcd, (b - a for a, b in zip(nums, nums[1:], strict=False)))
    expected = range(nums[0], nums[-1] + 1, step)
    if len(expected) != len(nums):
        missing = sorted(set(expected) - set(nums))
        shown = ", ".join(str(m) for m in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise InputError(
            f"plane {'number' if len(missing) == 1 else 'numbers'} {shown} missing from the "
            f"{len(nums)} files numbered {nums[0]}..{nums[-1]} (step {step}); add the missing "
            f"{'file' if len(missing) == 1 else 'files'}, or give --order name to stack the files as they are"
        )
    return [p for _, p in pairs], nums


# ----------------------------------------------------------------------------------------- inspection
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


def _check_magic(path: Path) -> None:
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


def _unit_um(unit: str | None) -> float | None:
    if unit is None:
        return 1.0
    return _UNIT_UM.get(str(unit).strip().lower().replace("\\u00b5", "µ"))


def _ome_voxel_size(tif: tifffile.TiffFile) -> tuple[VoxelSize, list[str]]:
    notes: list[str] = []
    xml = tif.ome_metadata
    if not xml:
        return (None, None, None), notes
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return (None, None, None), ["OME-XML could not be parsed"]
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return (None, None, None), notes
    out: list[float | None] = []
    for ax in "ZYX":
        value = pixels.get(f"PhysicalSize{ax}")
        unit = pixels.get(f"PhysicalSize{ax}Unit")
        if value is None:
            out.append(None)
            continue
        scale = _unit_um(unit)
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if scale is None or not math.isfinite(v) or v <= 0:
            notes.append(f"OME PhysicalSize{ax}={value} {unit or ''} not usable")
            out.append(None)
        else:
            out.append(v * scale)
    return (out[0], out[1], out[2]), notes


def _resolution_yx(page: tifffile.TiffPage, unit_um: float | None) -> tuple[tuple[float | None, float | None], str]:
    """Pixel size (y, x) in µm from XResolution/YResolution (px per unit), or (None, None) and why."""
    xres, yres = page.resolution  # px per unit, floats (1.0, 1.0) when absent
    if unit_um is None:
        return (None, None), "its resolution tags have no unit"
    sizes = []
    for r in (yres, xres):
        sizes.append(unit_um / r if r and r > 0 else None)
    if any(s is None or not (1e-4 < s <= _MAX_PIXEL_UM) for s in sizes):
        shown = f"{xres:g} px per {'inch' if unit_um == 25400.0 else f'{unit_um:g} µm'}"
        return (None, None), f"its TIFF resolution {shown} was ignored (not a microscope pixel size)"
    return (sizes[0], sizes[1]), ""


def _voxel_size(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> tuple[VoxelSize, str | None, list[str]]:
    notes: list[str] = []
    if tif.is_ome:
        vs, n = _ome_voxel_size(tif)
        notes += n
        if any(v is not None for v in vs):
            return vs, "OME-XML PhysicalSize", notes
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        scale = _unit_um(meta.get("unit", "pixel")) if meta.get("unit") not in (None, "pixel") else None
        if scale is not None:
            (y, x), why = _resolution_yx(page, scale)
            z = meta.get("spacing")
            zf = float(z) * scale if isinstance(z, int | float) and z > 0 else None
            if why:
                notes.append(why)
            if y is not None or zf is not None:
                return (zf, y, x), "ImageJ spacing/unit and resolution tags", notes
    if tif.is_svs:
        m = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", page.description or "")
        if m:
            try:
                mpp = float(m.group(1))
            except ValueError:
                mpp = 0.0
            if mpp > 0:
                return (None, mpp, mpp), "Aperio MPP", notes
    unit = page.resolutionunit
    unit_um = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(int(unit)) if unit is not None else None
    if "XResolution" in page.tags:
        (y, x), why = _resolution_yx(page, unit_um)
        if y is not None:
            return (None, y, x), "TIFF XResolution/YResolution", notes
        if why:
            notes.append(why)
    return (None, None, None), None, notes


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
    _check_magic(path)
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
    plane_axes = [a for a in axes if a in _PLANE_AXES]
    chan_axes = [a for a in axes if a in "CS"]
    other = [a for a in axes if a not in _PLANE_AXES + "CSYX"]
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
    vs, vs_from, notes = _voxel_size(tif, page)
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


# ----------------------------------------------------------------------------------------- lazy read
_OPEN_LOCK = threading.Lock()


class TiffLevel0:
    """Array-like over level 0 of series 0 of one TIFF file, in tifffile's (squeezed) axis order.

    Indexing decodes only the tiles that the selection covers, through tifffile's Zarr store. The file is
    opened on first use in each process; pickling keeps only the path, so Dask workers in other processes
    reopen it (a `ZarrTiffStore` itself cannot be pickled). Reads from several threads share one file
    handle, serialised by tifffile's file lock; decoding runs in the calling thread.
    """

    def __init__(self, path: str | Path, shape: Sequence[int], dtype: np.dtype | str, axes: str = "") -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.axes = axes  # tifffile's axis letters of `shape` ("" where unknown): only for error messages
        self._tif: tifffile.TiffFile | None = None
        self._array: zarr.Array | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "axes": self.axes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["shape"], state["dtype"], state.get("axes", ""))  # type: ignore[misc]

    def _open(self) -> zarr.Array:
        if self._array is None:
            with _OPEN_LOCK:
                if self._array is None:
                    tif = tifffile.TiffFile(self.path)
                    try:
                        store = tif.aszarr(series=0, level=0)
                        array = zarr.open_array(store=store, mode="r", zarr_format=None)
                    except Exception:
                        tif.close()
                        raise
                    if tuple(array.shape) != self.shape or np.dtype(array.dtype) != self.dtype:
                        tif.close()
                        raise InputError(
                            f"{self.path} changed since it was inspected: level 0 is now {array.dtype} "
                            f"{tuple(array.shape)}, was {self.dtype} {self.shape}"
                        )
                    self._tif, self._array = tif, array
        return self._array

    @property
    def chunks(self) -> tuple[int, ...]:
        """The Zarr view's chunk shape (one TIFF tile or strip, in tifffile's axis order)."""
        return tuple(self._open().chunks)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Decode the selection. A strip or tile that cannot be read or decoded (a damaged file) raises
        `InputError` naming the file and the region (plane, y and x ranges) instead of the codec's error."""
        try:
            return np.asarray(self._open()[key])
        except ZseError:
            raise
        except Exception as exc:  # noqa: BLE001 - codec and I/O errors of a damaged file: one line naming it
            raise InputError(
                f"cannot read {self.path} at {self._region(key)}: {type(exc).__name__}: {exc}; the file is damaged "
                "(a strip or tile does not decode): copy or export it again"
            ) from None

    def _region(self, key: Any) -> str:
        """``plane 3, y 0:64, x 0:80`` for an index `key` into this array (tifffile's axis order)."""
        keys = key if isinstance(key, tuple) else (key,)
        parts = []
        for i, k in enumerate(keys[: self.ndim]):
            letter = self.axes[i] if i < len(self.axes) else f"axis {i}"
            name = "plane" if letter in _PLANE_AXES else letter.lower()
            if isinstance(k, slice):
                start, stop, _ = k.indices(self.shape[i])
                if letter in "CS" and (start, stop) == (0, self.shape[i]):
                    continue
                parts.append(f"{name} {start}" if stop - start == 1 and letter in _PLANE_AXES
                             else f"{name} {start}:{stop}")
            else:
                parts.append(f"{name} {k}")
        return ", ".join(parts) or "its pixels"

    def close(self) -> None:
        """Close the file handle (it is reopened on the next read)."""
        with _OPEN_LOCK:
            if self._tif is not None:
                self._tif.close()
            self._tif, self._array = None, None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._tif is not None:
                self._tif.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"TiffLevel0({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


def _aligned(target: int, tile: int, size: int) -> int:
    """A block length that is a whole number of tiles near `target`, at most `size`."""
    n = max(1, round(target / tile))
    return min(n * tile, size)


def tiff_dask(info: TiffInfo, block_yx: tuple[int, int] = (1024, 1024)) -> da.Array:
    """Level 0 of `info`'s file as a lazy Dask array (Z, Y, X, C), dtype `info.dtype`.

    Blocks: one plane, all channels, and in y and x the whole number of TIFF tiles nearest to `block_yx`
    (for a stripped TIFF: the whole width, so strips are decoded once). Nothing is read until computed.
    """
    src = TiffLevel0(info.path, info.shape, info.dtype, info.axes)
    ty, tx = info.tile_yx
    ny, nx = info.yx
    by = _aligned(block_yx[0], ty, ny)
    bx = _aligned(block_yx[1], tx, nx) if info.tiled else nx
    native = {"Y": by, "X": bx}
    chunks = tuple(native.get(a, 1 if a in _PLANE_AXES else s) for a, s in zip(info.axes, info.shape, strict=True))
    stat = info.path.stat()
    name = "tiff-level0-" + tokenize(str(info.path.resolve()), stat.st_size, stat.st_mtime_ns, chunks)
    arr = da.from_array(src, chunks=chunks, name=name, lock=False, asarray=False, fancy=False,
                        meta=np.empty((0,) * len(info.shape), dtype=info.dtype))
    arr = arr.transpose(info.order)
    if not any(a in _PLANE_AXES for a in info.axes):
        arr = arr[None]
    if not any(a in "CS" for a in info.axes):
        arr = arr[..., None]
    return arr


# ----------------------------------------------------------------------------------------- grayscale
def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB(A) samples on the last axis, rounded half up, in the input dtype.

    `rgb`: (..., 3 or 4) uint8 or uint16 (alpha ignored). Returns (...) of the same dtype:
    ``(299·R + 587·G + 114·B + 500) // 1000`` computed exactly in uint32/uint64 integers.
    """
    if rgb.shape[-1] not in (3, 4):
        raise InputError(f"grayscale conversion needs 3 (RGB) or 4 (RGBA) samples, got {rgb.shape[-1]}")
    work = np.dtype(np.uint32 if rgb.dtype.itemsize <= 2 else np.uint64)
    y = np.multiply(rgb[..., 0], 299, dtype=work)
    y += np.multiply(rgb[..., 1], 587, dtype=work)
    y += np.multiply(rgb[..., 2], 114, dtype=work)
    y += 500
    y //= 1000
    return y.astype(rgb.dtype)


# ----------------------------------------------------------------------------------------- voxel size
def resolve_voxel_size(
    infos: Sequence[TiffInfo], given: Sequence[float] | None
) -> tuple[tuple[float, float, float], dict[str, str]]:
    """Decide the voxel size (z, y, x) in µm of the converted volume and where each value came from.

    `given` (the ``--voxel-size`` flag) wins over the metadata for every axis. Otherwise the metadata of
    the files must agree (relative difference ≤ 1e-6) and give all three values. Returns the size and,
    per axis ``z``/``y``/``x``, the source (``"--voxel-size"`` or the metadata kind). Raises `InputError`
    naming the flag to give when a value is unknown, and when the files disagree.
    """
    if given is not None:
        vs = tuple(float(v) for v in given)
        if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
            raise ConfigError(f"--voxel-size {given} must be three positive numbers Z,Y,X in micrometres")
        return (vs[0], vs[1], vs[2]), {"z": "--voxel-size", "y": "--voxel-size", "x": "--voxel-size"}
    first = infos[0]
    for info in infos[1:]:
        for i, ax in enumerate("zyx"):
            a, b = first.voxel_size_um[i], info.voxel_size_um[i]
            if (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) > 1e-6 * max(a, b)):
                raise InputError(
                    f"pixel sizes differ between files: {first.path.name} gives {ax} = {a} µm but "
                    f"{info.path.name} gives {b} µm; give --voxel-size Z,Y,X (micrometres) to set one size"
                )
    z, y, x = first.voxel_size_um
    if z is None or y is None or x is None:
        known = ", ".join(f"{ax} = {v:g} µm" for ax, v in zip("zyx", (z, y, x), strict=True) if v is not None)
        missing = ", ".join(ax for ax, v in zip("zyx", (z, y, x), strict=True) if v is None)
        hint = ",".join(f"{v:g}" if v is not None else ("1.0" if ax == "z" else "0.25")
                        for ax, v in zip("zyx", (z, y, x), strict=True))
        said = f"only {known} ({first.voxel_size_from})" if known else "no voxel size"
        why = f"; {first.notes[0]}" if first.notes else ""
        others = " (and the other files)" if len(infos) > 1 else ""
        raise InputError(
            f"voxel size unknown for {missing}: the metadata of {first.path.name}{others} gives {said}{why}; "
            f"give --voxel-size Z,Y,X in micrometres, e.g. --voxel-size {hint}"
        )
    src = first.voxel_size_from or "metadata"
    return (z, y, x), {"z": src, "y": src, "x": src}


# ----------------------------------------------------------------------------------------- the volume
@dataclass
class TiffVolume:
    """A validated, lazily read TIFF input ready to write.

    `data`: Dask array with axes `axes` (``"zyx"`` or ``"czyx"``), dtype uint8/uint16, blocks of one
    plane × whole TIFF tiles. `voxel_size_um` (z, y, x) µm and `voxel_size_from` per axis; `files` in z
    order (one file per plane, or one stack file); `plane_numbers` from the names where used.
    """

    data: da.Array
    axes: str
    voxel_size_um: tuple[float, float, float]
    voxel_size_from: dict[str, str]
    files: list[Path]
    plane_numbers: list[int] | None
    infos: list[TiffInfo]
    channel_mode: ChannelMode
    color: str

    def provenance(self) -> dict[str, Any]:
        """JSON-able description of the source for the output's ``zse`` attributes."""
        first = self.infos[0]
        out: dict[str, Any] = {
            "source": [f.name for f in self.files],
            "source_dir": str(self.files[0].resolve().parent),
            "source_kind": first.kind,
            "source_axes": first.axes,
            "source_dtype": first.dtype.name,
            "source_color": self.color,
            "source_compression": sorted({i.compression for i in self.infos}),
            "source_tile_yx": list(first.tile_yx),
            "ignored_series": list(first.ignored_series),
            "plane_numbers": self.plane_numbers,
            "channel_mode": self.channel_mode,
            "voxel_size_um": list(self.voxel_size_um),
            "voxel_size_from": self.voxel_size_from,
        }
        if self.color == "rgb" and self.channel_mode == "gray":
            out["grayscale"] = GRAY_FORMULA
        return out


def _check_same(infos: Sequence[TiffInfo]) -> None:
    first = infos[0]
    for info in infos[1:]:
        if info.yx != first.yx:
            raise InputError(
                f"planes differ in size: {first.path.name} is {first.yx[0]}×{first.yx[1]} px (Y×X) but "
                f"{info.path.name} is {info.yx[0]}×{info.yx[1]}; all planes must have the same size"
            )
        if info.dtype != first.dtype:
            raise InputError(
                f"planes differ in data type: {first.path.name} is {first.dtype.name} but {info.path.name} "
                f"is {info.dtype.name}; all planes must have one data type (uint8 or uint16)"
            )
        if (info.color, info.n_channels) != (first.color, first.n_channels):
            raise InputError(
                f"planes differ in colour: {first.path.name} has {first.n_channels} {first.color} "
                f"sample(s) per pixel but {info.path.name} has {info.n_channels} {info.color}; "
                "all planes must be grayscale, or all RGB"
            )


def open_tiff_volume(
    inputs: Sequence[str | Path],
    *,
    order: str = "number",
    channel_mode: ChannelMode = "gray",
    voxel_size_um: Sequence[float] | None = None,
    block_yx: tuple[int, int] = (1024, 1024),
) -> TiffVolume:
    """Validate TIFF input(s) completely and return them as one lazy volume.

    `inputs`: one multi-page (OME-)TIFF stack, or per-plane TIFFs (files, folders, glob patterns), each
    read at level 0 of series 0. Per-plane files are sorted by `order` (see `order_planes`) and must all
    hold one plane with the same size, dtype and colour. `channel_mode` ``"gray"`` turns RGB into BT.601
    luma (``zyx``) and refuses other multi-channel data; ``"keep"`` keeps every channel (``czyx``).
    `voxel_size_um` (z, y, x) overrides the metadata. Reads only metadata; raises `InputError` /
    `ConfigError` with a one-line message for any problem.
    """
    if channel_mode not in ("gray", "keep"):
        raise ConfigError(f"--channel-mode {channel_mode!r} is not valid; use gray or keep")
    files = collect_inputs(inputs)
    for f in files:
        _check_magic(f)
    files, numbers = order_planes(files, order)
    infos = [inspect_tiff(f) for f in files]
    if len(infos) > 1:
        for info in infos:
            if info.n_planes != 1:
                raise InputError(
                    f"{info.path.name} holds {info.n_planes} planes but {len(infos)} files were given; give "
                    "one multi-plane file (a stack) or one file per plane"
                )
        _check_same(infos)
    first = infos[0]
    if channel_mode == "gray" and first.color == "channels":
        raise InputError(
            f"{first.path.name} has {first.n_channels} channels (axes {first.axes}) that are not RGB; "
            "give --channel-mode keep to keep them as a c axis"
        )
    vs, vs_from = resolve_voxel_size(infos, voxel_size_um)
    planes = [tiff_dask(info, block_yx) for info in infos]
    zyxc = planes[0] if len(planes) == 1 else da.concatenate(planes, axis=0)
    if channel_mode == "gray":
        if first.color == "rgb":
            data = da.map_blocks(rgb_to_gray, zyxc, drop_axis=3, dtype=first.dtype, token="bt601-gray")
        else:
            data = zyxc[..., 0]
        axes = "zyx"
    else:
        data = da.moveaxis(zyxc, 3, 0)
        axes = "czyx"
    return TiffVolume(
        data=data,
        axes=axes,
        voxel_size_um=vs,
        voxel_size_from=vs_from,
        files=files,
        plane_numbers=numbers,
        infos=infos,
        channel_mode=channel_mode,
        color=first.color,
    )
