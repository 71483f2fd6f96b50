"""A whole TIFF input as one validated, lazy volume (`open_tiff_volume` → `TiffVolume`).

Every file is inspected before anything is read or written; per-plane files must agree in size,
dtype and colour. RGB(A) becomes luminance (`rgb_to_gray`, ITU-R BT.601, integer, in the input
dtype) unless channels are kept; the voxel size comes from ``--voxel-size`` or agreeing metadata
(`resolve_voxel_size`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np

from zse.errors import ConfigError, InputError
from zse.pipeline.io.tiff.layout import TiffInfo, check_magic, inspect_tiff
from zse.pipeline.io.tiff.planes import collect_inputs, order_planes
from zse.pipeline.io.tiff.read import tiff_dask

ChannelMode = Literal["gray", "keep"]

#: The grayscale conversion, as recorded in the output's provenance.
GRAY_FORMULA = "ITU-R BT.601 luma: Y = (299*R + 587*G + 114*B + 500) // 1000 (integer, rounded half up)"


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
        check_magic(f)
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
