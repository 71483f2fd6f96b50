"""`zse info PATH` (what an OME-Zarr holds, and whether a zse run on it finished) and `zse models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import zarr

from zse.errors import InputError


def describe(path: Path) -> list[str]:
    """Lines describing an OME-Zarr image or an unfinished zse output."""
    from zse.pipeline.io.ngff import open_image, read_multiscales
    from zse.pipeline.lock import lock_owner
    from zse.pipeline.plan import done_states, read_run_record

    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:
        raise InputError(f"{path}: not a Zarr group") from None
    attrs: dict[str, Any] = dict(group.attrs)
    raw = attrs.get("zse")
    zse_attrs: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    lines = [f"path: {path}"]
    if read_multiscales(attrs) is None and "bioformats2raw.layout" not in attrs:
        status = zse_attrs.get("status")
        if status is None:
            raise InputError(f"{path}: a Zarr group without OME-NGFF metadata and not a zse output")
        lines.append(f"zse run: INCOMPLETE (status {status!r}; no OME metadata yet, so this is not a valid image)")
    else:
        img = open_image(path)
        m = img.meta
        lines += [
            f"ngff: {m.ngff_version}",
            f"axes: {m.axes}",
            f"shape: {m.shape}",
            f"dtype: {m.dtype}",
            f"voxel size (z, y, x) µm: {m.voxel_size_um}",
            f"translation (z, y, x) µm: {m.translation_um}",
            f"levels: {len(img.levels)}",
        ]
        for p, arr in zip(img.level_paths, img.levels, strict=True):
            shards = getattr(arr, "shards", None)
            lines.append(f"  {p}: shape {arr.shape}, chunks {arr.chunks}" + (f", shards {shards}" if shards else ""))
        if zse_attrs:
            lines.append(f"zse run: {'complete' if zse_attrs.get('status') == 'complete' else 'INCOMPLETE'}")
            prov = zse_attrs.get("provenance", {})
            if prov:
                lines.append(f"  input: {prov.get('input', {}).get('path')}")
                lines.append(f"  model: {prov.get('model')}")
                scale = (prov.get("model") or {}).get("scale_zyx") if isinstance(prov.get("model"), dict) else None
                if scale:
                    lines.append(f"  z super-resolution: × {scale[0]} (model output planes per input plane)")
                lines.append(f"  options: {prov.get('options')}")
                lines.append(f"  zse version: {prov.get('zse_version')}")
            for k in ("section_id", "voxel_size_um", "translation_um", "synth", "source"):
                if k in zse_attrs:
                    lines.append(f"  {k}: {zse_attrs[k]}")
    owner = lock_owner(path)
    if owner:
        lines.append(f"being written now by {owner}")
    record = read_run_record(path)
    if record is not None:
        n_levels = len([k for k in group.array_keys()])
        for level in range(n_levels):
            states = done_states(path, level)
            if level == 0:
                skipped = sum(1 for s in states.values() if s == "skipped")
                lines.append(f"  level 0 blocks marked done: {len(states)} ({skipped} background)")
            else:
                lines.append(f"  level {level} regions marked done: {len(states)}")
    return lines


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Show NGFF version, axes, shape, dtype, chunks/shards, levels, voxel size, and zse run status of PATH."""
    for line in describe(path):
        click.echo(line)


@click.command()
def models() -> None:
    """List the model registry (names accepted by --model)."""
    from zse.models.registry import REGISTRY, available

    have = available()
    width = max(len(n) for n in REGISTRY)
    for name, (_, desc) in REGISTRY.items():
        click.echo(f"{name:{width}s}  {desc}" + ("" if name in have else "  [not installed]"))
