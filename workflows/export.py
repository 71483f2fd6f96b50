"""`zse export CKPT OUT`: G_S of a checkpoint as a .pt2 exported program or a small inference checkpoint."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("ckpt", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "pt2", "weights"]), default="auto", show_default=True,
              help="pt2: torch.export program (dynamic batch); weights: inference checkpoint (G_S only). "
                   "auto: by OUT's suffix (.pt2 → pt2, else weights).")
@click.option("--fp16", is_flag=True, help="weights format: store G_S in float16 (half the size).")
@click.option("--tile", default=None, metavar="Z,Y,X", help="pt2 format: the tile shape the program accepts (default the checkpoint's).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export(ckpt: Path, out: Path, fmt: str, fp16: bool, tile: str | None, overwrite: bool) -> None:
    """Export G_S of the zse checkpoint CKPT to OUT."""
    from zse.errors import ConfigError, OutputError

    if out.exists() and not overwrite:
        raise OutputError(f"{out} already exists; pass --overwrite to replace it")
    if fmt == "auto":
        fmt = "pt2" if out.suffix == ".pt2" else "weights"
    if fmt == "pt2":
        from zse.models.export import export_checkpoint

        shape = None
        if tile:
            try:
                shape = tuple(int(v) for v in tile.split(","))
            except ValueError:
                shape = ()
            if len(shape) != 3:
                raise ConfigError(f"--tile {tile!r}: expected Z,Y,X (e.g. 29,128,128)")
        export_checkpoint(ckpt, out, tile=shape)  # type: ignore[arg-type]
    else:
        from zse.models.checkpoint import export_generator

        export_generator(ckpt, out, dtype="float16" if fp16 else "float32")
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
