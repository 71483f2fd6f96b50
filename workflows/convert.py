"""`zse convert INPUT… OUT.ome.zarr`: TIFF z-stacks (per-plane whole-slide TIFFs or one stack) to OME-Zarr.

Inputs (see `zse.pipeline.io.tiff`): a folder, glob pattern or list of per-plane TIFFs (each possibly a
pyramidal tiled BigTIFF with thumbnail, label and macro images, Aperio/Huron style; level 0 of series 0
is read lazily), or one multi-page TIFF / OME-TIFF stack. Everything is validated before OUT is created,
truncated files included (every strip/tile of level 0 must lie inside its file); damage found only while
writing (a strip that does not decode) ends in one line, and the unfinished OUT this run created is removed.
The output follows `zse enhance`'s conventions (`zse.pipeline.io.write.write_volume`): NGFF 0.5 (or 0.4),
axes ``zyx`` (grayscale, RGB converted with BT.601 luma) or ``czyx`` (``--channel-mode keep``), the
input dtype, a y-x pyramid, and the provenance under the group's ``zse`` attribute.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from zse import __version__
from zse.errors import ConfigError, OutputError, ZseError
from zse.workflows.params import parse_triple


def check_output(output: Path, inputs: tuple[str, ...], overwrite: bool) -> None:
    """Refuse an OUT that is not a .zarr path, exists without --overwrite, or is, holds or lies inside one
    of the inputs (paths compared resolved, so through symbolic links; a glob pattern by its folder part)."""
    if not output.name.lower().endswith(".zarr"):
        raise ConfigError(
            f"OUT {output} must end in .zarr (e.g. section.ome.zarr); the last argument is the output, "
            "every argument before it an input"
        )
    resolved = output.resolve()
    for item in inputs:
        p = Path(item).resolve()
        if p == resolved or resolved in p.parents:
            raise ConfigError(f"OUT {output} is also an input ({item}) or holds it; choose another output path")
        if p in resolved.parents:
            raise ConfigError(f"OUT {output} lies inside the input {item}; write the output outside its inputs")
    if output.exists() and not overwrite:
        raise OutputError(f"{output} already exists; pass --overwrite to replace it")


def _ours_unfinished(output: Path, attrs: dict[str, Any]) -> bool:
    """True when `output` is a real folder holding the unfinished output of this run: a Zarr group whose
    ``zse`` record carries every item of `attrs` (this run's provenance) and a status other than complete."""
    if output.is_symlink() or not output.is_dir():
        return False
    try:
        import zarr

        record = dict(zarr.open_group(str(output), mode="r").attrs).get("zse")
    except Exception:  # noqa: BLE001 - unreadable: not provably ours, so it is kept
        return False
    if not isinstance(record, dict) or record.get("status") == "complete":
        return False
    def same(a: Any, b: Any) -> bool:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    return all(k in record and same(record[k], v) for k, v in attrs.items())


def remove_partial_output(output: Path, attrs: dict[str, Any]) -> bool:
    """Delete the unfinished output this run created at `output` (see `_ours_unfinished`); anything else
    (another run's output, a user's folder, a finished output) is left alone. Returns True if removed."""
    if not _ours_unfinished(output, attrs):
        return False
    shutil.rmtree(output, ignore_errors=True)
    return not output.exists()


@click.command("convert")
@click.argument("inputs", metavar="INPUT…", nargs=-1, required=True)
@click.argument("output", metavar="OUT.ome.zarr", type=click.Path(path_type=Path))
@click.option("--voxel-size", "voxel_size", metavar="Z,Y,X", default=None,
              help="Voxel size in micrometres; overrides the TIFF/OME metadata (needed when it gives no z step).")
@click.option("--origin", "origin", metavar="Z,Y,X", default="0,0,0", show_default=True,
              help="Position of the first voxel in micrometres (NGFF translation).")
@click.option("--channel-mode", type=click.Choice(["gray", "keep"]), default="gray", show_default=True,
              help="gray: RGB to BT.601 luma, axes zyx; keep: keep the channels, axes czyx.")
@click.option("--order", default="number", show_default=True, metavar="number|name|given|REGEX",
              help="Plane order of per-plane files: the plane number in the names, natural name order, as "
                   "given, or a regex whose group is the plane number (e.g. 'z(\\d+)').")
@click.option("--ngff", type=click.Choice(["0.5", "0.4"]), default="0.5", show_default=True,
              help="Output OME-Zarr version (0.4 for QuPath, MoBIE, Fiji).")
@click.option("--section-id", default=None, help="Section identifier recorded in the output's provenance.")
@click.option("--block", type=int, default=1024, show_default=True,
              help="y-x side of one write task and output shard, in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def convert(inputs: tuple[str, ...], output: Path, voxel_size: str | None, origin: str, channel_mode: str,
            order: str, ngff: str, section_id: str | None, block: int, overwrite: bool, quiet: bool) -> None:
    """Convert TIFF z-stack INPUT… (folder, glob or files of per-plane TIFFs, or one stack) to OUT.ome.zarr."""
    from zse.pipeline.io.tiff import open_tiff_volume
    from zse.pipeline.io.write import check_block, write_volume

    check_block(block)
    check_output(output, inputs, overwrite)
    vs = parse_triple(voxel_size, "--voxel-size", positive=True)
    translation = parse_triple(origin, "--origin", positive=False) or (0.0, 0.0, 0.0)
    volume = open_tiff_volume(inputs, order=order, channel_mode=channel_mode,  # type: ignore[arg-type]
                              voxel_size_um=vs, block_yx=(block, block))
    notes = _notes(volume)
    attrs: dict[str, Any] = {
        "section_id": section_id,
        "converted_by": f"zse {__version__}",
        "command": " ".join(sys.argv),
        "translation_um": list(translation),
        **volume.provenance(),
    }
    start = time.perf_counter()
    try:
        write_volume(output, volume.data, axes=volume.axes, voxel_size_um=volume.voxel_size_um,
                     translation_um=translation, ngff=ngff, attrs=attrs, overwrite=overwrite, progress=not quiet,
                     block=block)
    except BaseException as exc:
        # Damage found while writing (a strip that does not decode, a full disk, Ctrl-C): conversion has
        # no resume, so the unfinished output this run created is removed, never anything else.
        removed = remove_partial_output(output, attrs)
        if isinstance(exc, ZseError):
            note = f"; removed the unfinished {output}" if removed else ""
            raise type(exc)(f"{exc.message}{note}") from None
        if isinstance(exc, OSError):
            note = f"; removed the unfinished {output}" if removed else ""
            raise OutputError(f"cannot write {output}: {exc.strerror or exc}{note}") from None
        raise
    seconds = time.perf_counter() - start
    if not quiet:
        shape = "×".join(str(s) for s in volume.data.shape)
        mb = volume.data.nbytes / 1e6
        vsz = ", ".join(f"{v:g}" for v in volume.voxel_size_um)
        lines = [f"zse convert: {len(volume.files)} file(s) -> {output} ({volume.axes} {shape} {volume.data.dtype}, "
                 f"voxel {vsz} µm from {_sources(volume.voxel_size_from)}, NGFF {ngff}, "
                 f"{seconds:.1f} s, {mb / max(seconds, 1e-9):.0f} MB/s)", *notes]
        for line in lines:
            click.echo(line, err=True)


def _sources(sources: dict[str, str]) -> str:
    distinct = list(dict.fromkeys(sources.values()))
    return distinct[0] if len(distinct) == 1 else ", ".join(f"{k}: {v}" for k, v in sources.items())


def _notes(volume: Any) -> list[str]:
    first = volume.infos[0]
    notes = []
    if first.ignored_series:
        notes.append(f"  read level 0 of series 0 ({first.series_name or first.kind}); ignored: "
                     f"{', '.join(first.ignored_series)} and {first.n_levels - 1} lower level(s)")
    if volume.voxel_size_from.get("z") == "--voxel-size":
        meta = first.voxel_size_um
        if any(m is not None and abs(m - v) > 1e-6 * v for m, v in zip(meta, volume.voxel_size_um, strict=True)):
            shown = ", ".join("?" if m is None else f"{m:g}" for m in meta)
            notes.append(f"  note: --voxel-size overrides the metadata's ({shown}) µm ({first.voxel_size_from})")
    return notes
