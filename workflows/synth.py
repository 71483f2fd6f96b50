"""`zse synth`: write a synthetic brightfield z-scan (and its optical-section truth) as OME-Zarr.

The phantom and the image formation live in `zse.models.phantom`; this module is the command and the
slab-by-slab writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from zse.errors import ConfigError
from zse.models.phantom import (
    BLUR_PRESETS,
    CELL_PX,
    _config_error,
    check_shape,
    make_params,
    psf_attrs,
    synth_dask,
)
from zse.workflows.params import parse_shape, parse_triple

# ---------------------------------------------------------------------------------------------- CLI


@click.command("synth")
@click.argument("out", type=click.Path(dir_okay=True, file_okay=False, path_type=Path))
@click.option("--shape", "shape", default="29,512,512", show_default=True, help="Z,Y,X of the volume.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (the result depends only on it and the options).")
@click.option("--ground-truth", "ground_truth", type=click.Path(dir_okay=True, file_okay=False, path_type=Path),
              default=None, help="Also write the ground truth here: an optical section of the same tissue at every plane (confocal-like 1.3-NA PSF, no noise; empty above and below the section).")
@click.option("--ngff", type=click.Choice(["0.4", "0.5"]), default="0.5", show_default=True)
@click.option("--dtype", type=click.Choice(["uint8", "uint16"]), default="uint8", show_default=True)
@click.option("--blur", type=click.Choice(sorted(BLUR_PRESETS)), default=None,
              help="Blur preset (sets --na and --z-step unless given): mild = NA 0.5, 1 µm; standard (default) = NA 0.75, "
                   "1 µm; huron = NA 0.75, 1.4 µm (closest to the real ROIs); strong = NA 0.75, 2 µm.")
@click.option("--na", type=float, default=None, help="Widefield objective NA (default 0.75).")
@click.option("--z-step", "z_step", type=float, default=None, help="Focal step in the sample, µm (default 1.0).")
@click.option("--voxel-size", "voxel_size", default="1,1,1", show_default=True, help="Voxel size z,y,x in µm recorded in the metadata.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth(out: Path, shape: str, seed: int, ground_truth: Path | None, ngff: str, dtype: str, blur: str | None,
          na: float | None, z_step: float | None, voxel_size: str, overwrite: bool, quiet: bool) -> None:
    """Write a synthetic brightfield z-scan of a brain section (and optionally its ground truth) as OME-Zarr."""
    shape_zyx = parse_shape(shape)
    vs = parse_triple(voxel_size, "--voxel-size", positive=True)
    write_synth(out, shape_zyx, seed, ground_truth=ground_truth, ngff=ngff, dtype=dtype, blur=blur, na=na, z_step=z_step,
                voxel_size_um=vs, overwrite=overwrite, progress=not quiet)  # type: ignore[arg-type]


def write_synth(
    out: str | Path,
    shape_zyx: Sequence[int],
    seed: int,
    *,
    ground_truth: str | Path | None = None,
    ngff: str = "0.5",
    dtype: str = "uint8",
    blur: str | None = None,
    na: float | None = None,
    z_step: float | None = None,
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0),
    overwrite: bool = False,
    progress: bool = True,
) -> None:
    """Write the x-scan (and optionally its ground truth) of `synthesize` as OME-Zarr, slab by slab."""
    from zse.pipeline.io.write import write_volume

    shape_zyx = check_shape(shape_zyx)
    if seed < 0:
        raise _config_error("--seed", seed, "an integer >= 0")
    if blur is not None and blur not in BLUR_PRESETS:
        raise _config_error("--blur", blur, ", ".join(sorted(BLUR_PRESETS)))
    preset_na, preset_dz = BLUR_PRESETS[blur or "standard"]
    params = make_params(
        na=na if na is not None else preset_na,
        z_step_um=z_step if z_step is not None else preset_dz,
        voxel_size_um=tuple(voxel_size_um),
    )
    if ground_truth is not None and Path(ground_truth).resolve() == Path(out).resolve():
        raise ConfigError(f"--ground-truth {ground_truth} is the same path as OUT; give a different path")
    targets: list[tuple[str, Path]] = [("x-scan", Path(out))]
    if ground_truth is not None:
        targets.append(("ground-truth", Path(ground_truth)))
    import dask

    for kind, path in targets:
        vol = synth_dask(shape_zyx, seed, kind, dtype=dtype, params=params, slab_px=CELL_PX)
        attrs = {
            "synth": {
                "seed": seed,
                "shape": list(shape_zyx),
                "na": params.na if kind == "x-scan" else params.truth_na,
                "z_step_um": params.z_step_um,
                "blur": blur or "standard",
                "psf": psf_attrs(kind, params),
                "kind": kind,
                "params": params.model_dump(mode="json"),
            }
        }
        # one slab computed at a time per writer thread: memory stays bounded whatever the shape
        with dask.config.set(scheduler="synchronous"):
            write_volume(path, vol, axes="zyx", voxel_size_um=tuple(voxel_size_um), translation_um=(0.0, 0.0, 0.0),  # type: ignore[arg-type]
                         ngff=ngff, attrs=attrs, overwrite=overwrite, progress=progress)
        if progress:
            click.echo(f"wrote {kind} {shape_zyx} {dtype} to {path}", err=True)
