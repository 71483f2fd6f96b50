"""`zse extract-rois SLIDE OUT --n N`: training ROIs from a whole-slide OME-Zarr, in the ZSE-GAN layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command(name="extract-rois")
@click.argument("slide", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Number of ROIs.")
@click.option("--in-focus", "in_focus", type=click.Path(path_type=Path), default=None,
              help="OME-Zarr of an in-focus scan on the same grid (default: the sharpest plane of each ROI).")
@click.option("--roi", type=click.IntRange(32), default=128, show_default=True, help="ROI side in y, x.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into an existing non-empty OUT.")
def extract_rois(slide: Path, out: Path, n: int, in_focus: Path | None, roi: int, seed: int, val_fraction: float,
                 overwrite: bool) -> None:
    """Sample N tissue ROIs (ROI×ROI×Z) from SLIDE into OUT (trainB/*.npz z-last, trainA2D/*.tif,
    trainA29/*.tif, split.json, rois.json): the layout `zse train` reads."""
    import numpy as np

    from zse.errors import InputError, OutputError
    from zse.models.data import extract_rois as run
    from zse.pipeline.io.ngff import open_image

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out} exists and is not empty; pass --overwrite to write into it")
    img = open_image(slide)
    if img.meta.axes != "zyx":
        raise InputError(f"{slide}: axes {img.meta.axes!r}; extract-rois needs a single-channel zyx image")
    stack = img.levels[0]
    low = img.levels[-1]
    overview = np.asarray(low[low.shape[0] // 2]) if len(img.levels) > 1 else None
    focus_arr = None
    if in_focus is not None:
        focus_arr = _open_in_focus(in_focus)
        if tuple(focus_arr.shape[-2:]) != img.meta.shape_zyx[1:]:
            raise InputError(f"--in-focus {in_focus} is {tuple(focus_arr.shape[-2:])} in y, x; {slide} is {img.meta.shape_zyx[1:]}")
    meta = run(stack, out, n=n, roi=roi, seed=seed, val_fraction=val_fraction, in_focus=focus_arr, overview=overview,
               source=str(slide))
    click.echo(f"wrote {len(meta['rois'])} ROIs of {roi}×{roi}×{img.meta.shape_zyx[0]} to {out}")


def _open_in_focus(path: Path):
    """Level 0 of an in-focus OME-Zarr: a z-scan (any planes) or a single focal plane ((1,) Y, X).

    `open_image` refuses fewer than 3 planes (it opens z-scans), so a single-plane image is opened
    from its multiscales metadata directly.
    """
    import zarr

    from zse.errors import InputError
    from zse.pipeline.io.ngff import open_image, read_multiscales

    try:
        return open_image(path).levels[0]
    except InputError as exc:
        if "plane" not in exc.message:
            raise
    group: Any = zarr.open_group(str(path), mode="r")
    if "bioformats2raw.layout" in group.attrs and "0" in group:
        group = group["0"]
    ms = read_multiscales(dict(group.attrs))
    if ms is None:
        raise InputError(f"--in-focus {path}: not an OME-Zarr image (no multiscales metadata)")
    arr = group[ms[1]["datasets"][0]["path"]]
    if arr.ndim not in (2, 3):
        raise InputError(f"--in-focus {path}: level 0 has shape {arr.shape}; expected (y, x) or (z, y, x)")
    return arr
