"""Lazy reads of level 0: `TiffLevel0` (an array over tifffile's Zarr view) and `tiff_dask`.

Nothing is decoded until a Dask block is computed, and a block decodes only the TIFF tiles (or strips)
it covers; blocks are one plane deep and a whole number of tiles in y and x, so no tile is decoded by
two blocks. Arrays come out as (Z, Y, X, C) in the file's dtype (uint8 or uint16).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask.base import tokenize

from zse.errors import InputError, ZseError
from zse.pipeline.io.tiff.layout import PLANE_AXES, TiffInfo

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
            name = "plane" if letter in PLANE_AXES else letter.lower()
            if isinstance(k, slice):
                start, stop, _ = k.indices(self.shape[i])
                if letter in "CS" and (start, stop) == (0, self.shape[i]):
                    continue
                parts.append(f"{name} {start}" if stop - start == 1 and letter in PLANE_AXES
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
    chunks = tuple(native.get(a, 1 if a in PLANE_AXES else s) for a, s in zip(info.axes, info.shape, strict=True))
    stat = info.path.stat()
    name = "tiff-level0-" + tokenize(str(info.path.resolve()), stat.st_size, stat.st_mtime_ns, chunks)
    arr = da.from_array(src, chunks=chunks, name=name, lock=False, asarray=False, fancy=False,
                        meta=np.empty((0,) * len(info.shape), dtype=info.dtype))
    arr = arr.transpose(info.order)
    if not any(a in PLANE_AXES for a in info.axes):
        arr = arr[None]
    if not any(a in "CS" for a in info.axes):
        arr = arr[..., None]
    return arr
