"""The ROIs `zse evaluate` measures: read from OME-Zarr z-scans or ZSE-GAN .npz datasets, and a
model's output on them.

OME-Zarr: INPUT, OUTPUT and the ground truth are level-0 (Z, Y, X) views (the chosen channel of czyx),
same shape and dtype; N tissue ROIs are sampled with a seed (`sample_roi_origins`), or the whole stack
is one ROI. .npz dataset: a folder of stacks (key ``arr_0``, (Y, X, Z), z last; or its parent with a
``trainB/`` folder), each stack one ROI. ROIs are `zse.models.metrics.engine.Roi`; the engine that
measures them is `zse.models.metrics.engine.evaluate_rois`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zse.errors import ConfigError, InputError
from zse.models.metrics.engine import Roi


def is_npz_dataset(path: Path) -> bool:
    """True for a folder holding .npz stacks directly or in trainB/."""
    return path.is_dir() and (any(path.glob("*.npz")) or any((path / "trainB").glob("*.npz")))


def input_data_dir(path: Path) -> Path:
    """What INPUT reads: the image itself, or for a .npz dataset the folder holding the stacks (INPUT,
    or INPUT/trainB/ when INPUT holds none itself, as `zse.models.metrics.paper.npz_files` reads them)."""
    if is_npz_dataset(path) and not any(path.glob("*.npz")):
        return path / "trainB"
    return path


def _open(path: Path, what: str) -> Any:
    from zse.pipeline.io.ngff import open_image

    try:
        return open_image(path)
    except InputError as exc:
        raise InputError(f"{what}: {exc.message}") from None


def _level0_zyx(img: Any, channel: int) -> Any:
    """Level 0 as an indexable (Z, Y, X) view (the chosen channel of czyx)."""
    arr = img.levels[0]
    if img.meta.axes == "czyx":
        nc = arr.shape[0]
        if not 0 <= channel < nc:
            raise ConfigError(f"--channel {channel} is invalid for {img.path} with {nc} channels; valid: 0..{nc - 1}")

        class _C:
            shape = arr.shape[1:]

            def __getitem__(self, key: Any) -> Any:
                return arr[(channel, *key)]

        return _C()
    return arr


def sample_roi_origins(img: Any, n: int, size: int, seed: int, tissue_threshold: float = 0.08,
                       min_tissue: float = 0.5) -> list[tuple[int, int]]:
    """N seeded ROI corners (y0, x0) whose size×size footprint is ≥ `min_tissue` tissue.

    Tissue: `zse.pipeline.plan.tissue_map` (brightfield: a low-resolution z-mean darker than
    (1 − threshold) × the background level, the 99.5th percentile). Positions are drawn uniformly
    with `numpy.random.default_rng(seed)`, without repeats; InputError when fewer than N are found.
    """
    from zse.pipeline.plan import tissue_map

    nz, ny, nx = img.meta.shape_zyx
    if size > ny or size > nx:
        raise ConfigError(f"--roi-size {size} is larger than the volume's y, x size ({ny}, {nx}); valid: ≤ {min(ny, nx)}")
    positions = (ny - size + 1) * (nx - size + 1)
    if n > positions:
        raise ConfigError(f"--rois {n} is more than the {positions} distinct {size}×{size} px ROI positions in "
                          f"{img.path} ({ny}×{nx} px in y, x); valid: 1..{positions}")
    tm = tissue_map(img, threshold=tissue_threshold)
    fy, fx = tm.factor_yx
    rng = np.random.default_rng(seed)
    found: list[tuple[int, int]] = []
    tried = 0
    while len(found) < n and tried < 500 * n:
        tried += 1
        y0 = int(rng.integers(0, ny - size + 1))
        x0 = int(rng.integers(0, nx - size + 1))
        ly0, ly1 = int(np.floor(y0 / fy)), max(int(np.floor(y0 / fy)) + 1, int(np.ceil((y0 + size) / fy)))
        lx0, lx1 = int(np.floor(x0 / fx)), max(int(np.floor(x0 / fx)) + 1, int(np.ceil((x0 + size) / fx)))
        frac = float(tm.mask[ly0:ly1, lx0:lx1].mean()) if tm.mask[ly0:ly1, lx0:lx1].size else 0.0
        if frac >= min_tissue and (y0, x0) not in found:
            found.append((y0, x0))
    if len(found) < n:
        raise InputError(
            f"{img.path}: found {len(found)} of {n} ROIs of {size}×{size} px with ≥ {min_tissue:.0%} tissue "
            f"after {tried} draws; lower --rois or --roi-size, or check that tissue is darker than the background"
        )
    return found


def load_ngff_rois(input_path: Path, output_path: Path | None, gt_path: Path | None, *, rois: int | None,
                   roi_size: int, seed: int, channel: int = 0, max_whole_px: int = 2048 * 2048) -> tuple[list[Roi], dict[str, Any]]:
    """ROIs from OME-Zarr images (see module doc). Without `rois` the whole stack is one ROI."""
    src = _open(input_path, "INPUT")
    x_arr = _level0_zyx(src, channel)
    shape = tuple(x_arr.shape)
    others: dict[str, Any] = {}
    for key, p in (("y", output_path), ("gt", gt_path)):
        if p is None:
            continue
        img = _open(p, "OUTPUT" if key == "y" else "--ground-truth")
        arr = _level0_zyx(img, channel)
        if tuple(arr.shape) != shape:
            raise InputError(f"{p}: (Z, Y, X) shape {tuple(arr.shape)} differs from INPUT's {shape}; they must be equal")
        if np.dtype(img.meta.dtype) != np.dtype(src.meta.dtype):
            raise InputError(f"{p}: dtype {img.meta.dtype} differs from INPUT's {src.meta.dtype}; they must be equal")
        others[key] = arr
    if rois is None:
        if shape[1] * shape[2] > max_whole_px:
            raise ConfigError(f"INPUT is {shape[1]}×{shape[2]} px in y, x: too large to evaluate whole; pass --rois N")
        origins = [(0, 0)]
        size_y, size_x = shape[1], shape[2]
    else:
        origins = sample_roi_origins(src, rois, roi_size, seed)
        size_y = size_x = roi_size
    out = []
    for k, (y0, x0) in enumerate(origins):
        sl = (slice(None), slice(y0, y0 + size_y), slice(x0, x0 + size_x))
        out.append(Roi(
            name=f"roi_{k:03d}",
            x=np.asarray(x_arr[sl]),
            y=np.asarray(others["y"][sl]) if "y" in others else None,
            gt=np.asarray(others["gt"][sl]) if "gt" in others else None,
            origin=(y0, x0),
        ))
    info = {"layout": "ome-zarr", "shape_zyx": shape, "dtype": src.meta.dtype, "voxel_size_um": src.meta.voxel_size_um,
            "channel": channel if src.meta.axes == "czyx" else None}
    return out, info


def load_npz_rois(folder: Path, *, rois: int | None, seed: int) -> tuple[list[Roi], dict[str, Any]]:
    """ROIs from a ZSE-GAN dataset folder: every stack, or `rois` of them chosen with
    `default_rng(seed).choice` (without replacement, in file order)."""
    from zse.models.metrics.paper import load_npz_stack, npz_files

    files = npz_files(folder)
    if rois is not None:
        if rois > len(files):
            raise ConfigError(f"--rois {rois}: {folder} holds only {len(files)} stacks; valid: 1..{len(files)}")
        idx = np.sort(np.random.default_rng(seed).choice(len(files), size=rois, replace=False))
        files = [files[i] for i in idx]
    out = [Roi(name=f.stem, x=load_npz_stack(f)) for f in files]
    shapes = {r.x.shape for r in out}
    dtypes = {r.x.dtype.name for r in out}
    if len(shapes) != 1 or len(dtypes) != 1:
        raise InputError(f"{folder}: stacks differ in shape {sorted(shapes)} or dtype {sorted(dtypes)}; they must be equal")
    info = {"layout": "npz", "shape_zyx": out[0].x.shape, "dtype": out[0].x.dtype.name, "voxel_size_um": (1.0, 1.0, 1.0),
            "files": [f.name for f in files]}
    return out, info


def apply_model(rois: list[Roi], model: str, device: str = "cpu") -> dict[str, Any]:
    """Set each ROI's y to the model's output: uint → [-1, 1] (`zse.pipeline.intensity.to_unit`),
    predictor on (1, 1, Z, Y, X), back with `from_unit`. Returns the model's provenance."""
    import torch

    from zse.models.registry import resolve
    from zse.pipeline.intensity import from_unit, to_unit

    factory = resolve(model)
    predictor = factory.build(device)
    for r in rois:
        t = to_unit(torch.from_numpy(np.ascontiguousarray(r.x)), r.x.dtype)[None, None].to(device)
        with torch.inference_mode():
            out = predictor(t)
        if tuple(out.shape) != tuple(t.shape):
            raise InputError(f"model {model!r} returned shape {tuple(out.shape)} for input {tuple(t.shape)}; it must keep the shape")
        y = from_unit(out[0, 0].cpu(), r.x.dtype).numpy()
        r.y = y.astype(r.x.dtype)
    return {"spec": model, "name": getattr(factory, "name", model), "checksum": getattr(factory, "checksum", None),
            "device": device}
