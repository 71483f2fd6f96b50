"""`zse synth`: write a synthetic brightfield z-scan (and its optical-section truth) as OME-Zarr.

The phantom, the image formation and the truth live in `zse.models.simulator`; this module is the
command and the job that writes the volumes slab by slab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from zse.errors import ConfigError
from zse.models.simulator import (
    BLUR_PRESETS,
    CELL_PX,
    check_shape,
    config_error,
    preset_params,
    synth_attrs,
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
    """Write the z-scan (and optionally its ground truth) of `zse.models.simulator.synthesize` as OME-Zarr.

    shape_zyx: (Z, Y, X), Z ≥ 3; seed ≥ 0; dtype uint8 or uint16; blur: a `BLUR_PRESETS` name (None =
    "standard"), with `na` and `z_step` (µm in the sample) replacing the preset's values when given;
    voxel_size_um (z, y, x) is what the metadata records. One slab of `CELL_PX` pixels is computed at a
    time, so memory stays bounded whatever the shape. ConfigError for invalid options.
    """
    from zse.pipeline.io.write import write_volume

    shape_zyx = check_shape(shape_zyx)
    if seed < 0:
        raise config_error("--seed", seed, "an integer >= 0")
    if blur is not None and blur not in BLUR_PRESETS:
        raise config_error("--blur", blur, ", ".join(sorted(BLUR_PRESETS)))
    params = preset_params(blur, na=na, z_step_um=z_step, voxel_size_um=voxel_size_um)
    if ground_truth is not None and Path(ground_truth).resolve() == Path(out).resolve():
        raise ConfigError(f"--ground-truth {ground_truth} is the same path as OUT; give a different path")
    targets: list[tuple[str, Path]] = [("z-scan", Path(out))]
    if ground_truth is not None:
        targets.append(("ground-truth", Path(ground_truth)))
    import dask

    for kind, path in targets:
        vol = synth_dask(shape_zyx, seed, kind, dtype=dtype, params=params, slab_px=CELL_PX)
        attrs = {"synth": synth_attrs(kind, seed, shape_zyx, blur, params)}
        # one slab computed at a time per writer thread: memory stays bounded whatever the shape
        with dask.config.set(scheduler="synchronous"):
            write_volume(path, vol, axes="zyx", voxel_size_um=tuple(voxel_size_um), translation_um=(0.0, 0.0, 0.0),  # type: ignore[arg-type]
                         ngff=ngff, attrs=attrs, overwrite=overwrite, progress=progress)
        if progress:
            click.echo(f"wrote {kind} {shape_zyx} {dtype} to {path}", err=True)
    if progress:
        click.echo(f"voxel size z,y,x {', '.join(f'{v:g}' for v in voxel_size_um)} µm (the metadata: the stage's step between "
                   f"planes); focal step in the sample {params.z_step_um:g} µm (the optics: with a dry objective on "
                   "tissue of higher refractive index the focus moves further in the sample than the stage does)", err=True)
