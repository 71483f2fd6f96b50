"""The plan stage's records (zse.pipeline.run): what to do, and what is done.

- The block plan: blocks aligned to the output shards (zse.pipeline.geometry.make_blocks).
- The tissue map: from a low-resolution level of the input, which lattice tiles contain tissue. The
  decision is per tile of the global lattice, so it does not depend on the block size either.
- The run record (`OUT/.zse/run.json`): input identity, model checksum and every option that changes
  the output; `--resume` refuses a different one.
- Done markers (`OUT/.zse/done/L<level>/<row>_<col>`): written after a block's writes returned, with
  the block's state ("done" or "skipped"). A run is complete when every marker of every level exists
  and the OME metadata has been written (zse.pipeline.io.write.finalize_output).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zse.errors import InputError, OutputError
from zse.pipeline.geometry import Lattice
from zse.pipeline.io.ngff import SourceImage
from zse.pipeline.io.write import fsync_dir

STATE_DIR = ".zse"


# ---------------------------------------------------------------------------------------------- tissue


@dataclass(frozen=True)
class TissueMap:
    """Low-resolution tissue mask (bool (Yl, Xl)) and its scale (level-0 pixels per low-res pixel)."""

    mask: np.ndarray
    factor_yx: tuple[float, float]
    background: float

    def tile_has_tissue(self, lattice: Lattice, i: int, j: int) -> bool:
        b = lattice.tile_box(i, j)
        fy, fx = self.factor_yx
        ly, lx = self.mask.shape
        y0, y1 = max(0, int(np.floor(b.y0 / fy))), min(ly, int(np.ceil(b.y1 / fy)))
        x0, x1 = max(0, int(np.floor(b.x0 / fx))), min(lx, int(np.ceil(b.x1 / fx)))
        return bool(y0 < y1 and x0 < x1 and self.mask[y0:y1, x0:x1].any())


def tissue_map(source: SourceImage, threshold: float = 0.08, max_factor: float = 32.0) -> TissueMap:
    """Tissue mask from the coarsest input level at most `max_factor` times smaller than level 0.

    Brightfield: background is light. The z-mean of each low-res pixel is compared with the background
    level (99.5th percentile of the z-means); darker than (1 − threshold)·background is tissue. The mask
    is dilated by one low-res pixel so that tissue at a tile's edge is never missed.
    """
    from scipy import ndimage

    shape0 = source.levels[0].shape
    best = 0
    for k, arr in enumerate(source.levels):
        fy = shape0[-2] / arr.shape[-2]
        if fy <= max_factor and arr.shape[-3] == shape0[-3]:
            best = k
    arr = source.levels[best]
    try:
        data = np.asarray(arr[...], dtype=np.float32)
    except Exception as exc:
        raise InputError(f"{source.path}: cannot read level {source.level_paths[best]} for the tissue map: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if data.ndim == 4:  # czyx: tissue in any channel
        data = data.min(axis=0)
    zmean = data.mean(axis=0)
    background = float(np.percentile(zmean, 99.5))
    mask = zmean < (1.0 - threshold) * background
    mask = ndimage.binary_dilation(mask, iterations=1)
    return TissueMap(mask=mask, factor_yx=(shape0[-2] / arr.shape[-2], shape0[-1] / arr.shape[-1]), background=background)


# ---------------------------------------------------------------------------------------------- run record


def input_fingerprint(source: SourceImage) -> str:
    """sha256 over the level-0 array's metadata and (name, size, mtime) of every stored object.

    Cheap (no pixel is read) and changes when the input is rewritten, so a resume never mixes two inputs.
    """
    h = hashlib.sha256()
    level0 = Path(source.image_path) / source.level_paths[0]
    for root, dirs, files in os.walk(level0):
        dirs.sort()
        for name in sorted(files):
            f = Path(root) / name
            st = f.stat()
            h.update(f"{f.relative_to(level0)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            if name in ("zarr.json", ".zarray", ".zattrs"):
                h.update(f.read_bytes())
    return h.hexdigest()


def run_record(source: SourceImage, model: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run: input (with a content fingerprint), model and every option that changes the output."""
    m = source.meta
    return {
        "input": {"path": str(Path(source.path).resolve()), "shape": list(m.shape), "dtype": m.dtype, "axes": m.axes,
                  "voxel_size_um": list(m.voxel_size_um), "fingerprint": input_fingerprint(source)},
        "model": model,
        "options": options,
    }


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def state_dir(out_path: str | Path) -> Path:
    """`OUT/.zse`, made a (member-less) Zarr group so that readers listing OUT see no foreign files."""
    import zarr

    state = Path(out_path) / STATE_DIR
    if not state.exists():
        zarr.open_group(str(out_path), mode="r+").create_group(STATE_DIR)
    return state


def write_run_record(out_path: Path, record: dict[str, Any]) -> None:
    state = state_dir(out_path)
    _atomic_write(state / "run.json", json.dumps({"hash": record_hash(record), **record}, indent=2, sort_keys=True))


def read_run_record(out_path: Path) -> dict[str, Any] | None:
    f = Path(out_path) / STATE_DIR / "run.json"
    if not f.exists():
        return None
    try:
        record = json.loads(f.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as exc:
        raise OutputError(f"{f}: damaged zse run record ({type(exc).__name__}: {exc}); "
                          "the run cannot be resumed, start again with --overwrite") from None
    return record


def check_resume(out_path: Path, record: dict[str, Any]) -> None:
    """Refuse to resume a run with a different input, model or output-changing option."""
    old = read_run_record(out_path)
    if old is None:
        raise OutputError(f"{out_path}: no zse run record found, so it cannot be resumed; run without --resume (and --overwrite to replace it)")
    old.pop("hash", None)
    a, b = _flatten(old), _flatten(record)
    diffs = [f"{k}: was {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diffs:
        raise OutputError(f"{out_path}: --resume refused, the run differs from the interrupted one ({'; '.join(diffs)}); "
                          "use the same options and model, or --overwrite to start again")


# ---------------------------------------------------------------------------------------------- done markers


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def marker_path(out_path: str | Path, level: int, index: tuple[int, int]) -> Path:
    return Path(out_path) / STATE_DIR / "done" / f"L{level}" / f"{index[0]}_{index[1]}"


def mark_done(out_path: str | Path, level: int, index: tuple[int, int], state: str = "done") -> None:
    """Mark a block done (durably: the marker and its folder entry are fsynced). Call only after the
    block's data is synced (zse.pipeline.io.write.sync_region), so a marker never outlives its data."""
    p = marker_path(out_path, level, index)
    p.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(p, state)
    fsync_dir(p.parent)


def unmark(out_path: str | Path, level: int, index: tuple[int, int]) -> None:
    """Remove a block's done-marker (its data will be written again)."""
    marker_path(out_path, level, index).unlink(missing_ok=True)


def done_states(out_path: str | Path, level: int) -> dict[tuple[int, int], str]:
    d = Path(out_path) / STATE_DIR / "done" / f"L{level}"
    out: dict[tuple[int, int], str] = {}
    if d.is_dir():
        for f in d.iterdir():
            if f.name.startswith("."):
                continue
            try:
                r, c = f.name.split("_")
                out[(int(r), int(c))] = f.read_text().strip()
            except (ValueError, OSError):
                continue  # not a marker (stray file): the block counts as not done
    return out
