"""`zse enhance IN OUT --model M`: the whole-slide enhancement job."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from zse.errors import ConfigError
from zse.workflows.cluster import cluster_options, open_client, task_resources


def check_device(device: str) -> None:
    """Refuse --device cuda where no GPU is visible, with what to do instead."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here (torch {torch.__version__}); use --device cpu")


@click.command()
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--model", "model", default=None, help="Registry name (see `zse models`), zse checkpoint (.pt) or exported program (.pt2). Default: the best bundled model.")
@click.option("--tile", default=128, show_default=True, help="Tile side in pixels (y, x); tiles span all z planes.")
@click.option("--overlap", type=int, default=None, help="Pixels shared by neighbouring tiles (default: twice the model's receptive radius, rounded up to a multiple of 8, so the tiled result equals the untiled one; 32 for a model that does not declare its radius).")
@click.option("--margin", type=int, default=None, help="Zero-weight pixels at each tile edge (default: the model's receptive radius, at most overlap/2).")
@click.option("--block", type=int, default=None, help="y-x side of one Dask task and output shard (default 1024 on CPU, 2048 on GPU).")
@click.option("--batch-size", type=int, default=None, help="Tiles per model call (default 4 on CPU, 16 on GPU; halves itself on GPU out-of-memory).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1 on CPU, one per GPU). 0 runs every block in this process, without Dask.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--ngff", type=click.Choice(["0.5", "0.4"]), default="0.5", show_default=True, help="Output OME-Zarr version (0.4 for QuPath, MoBIE, Fiji).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run: only blocks not marked done are processed.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@click.option("--skip-background/--no-skip-background", default=True, show_default=True, help="Copy tiles without tissue through instead of running the model.")
@click.option("--tissue-threshold", type=float, default=0.08, show_default=True, help="A low-res pixel is tissue when darker than (1 − t) × background.")
@click.option("--gpu-tasks", type=click.IntRange(1, 8), default=3, show_default=True, help="Block tasks per GPU at once: one computes while the others read and write.")
@click.option("--amp", type=click.Choice(["none", "bf16"]), default="none", show_default=True, help="Mixed precision for zse checkpoints and exported programs on GPU (checked against fp32 in the GPU tests).")
@click.option("--section-id", default=None, help="Section identifier recorded in the output (default: the input's, if it has one).")
@click.option("--allow-missing-chunks", is_flag=True, help="Read chunk files absent from IN as the array's fill value (with a note) instead of refusing IN.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@cluster_options
def enhance(input_path: Path, output_path: Path, model: str | None, tile: int, overlap: int | None, margin: int | None,
            block: int | None, batch_size: int | None, workers: int | None, device: str, ngff: str, resume: bool,
            overwrite: bool, skip_background: bool, tissue_threshold: float, gpu_tasks: int, amp: str, section_id: str | None, allow_missing_chunks: bool, quiet: bool, cluster_opts: dict[str, Any]) -> None:
    """Enhance the OME-Zarr z-scan IN into a multiscale OME-Zarr OUT (same dtype and axes)."""
    from zse.models.registry import best_model, resolve
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance

    opts = make_options(tile=tile, overlap=overlap, margin=margin, block=block, batch_size=batch_size, device=device,
                        ngff=ngff, skip_background=skip_background, tissue_threshold=tissue_threshold)
    check_device(device)
    source = open_image(input_path)
    model_spec = model or best_model()
    factory = resolve(model_spec, amp=None if amp == "none" else amp)

    def note(line: str) -> None:
        click.echo(f"zse: note: {line}", err=True)

    provenance = {"command": " ".join(sys.argv), "model_spec": model_spec}

    @contextmanager
    def cluster() -> Iterator[tuple[Any, dict[str, float] | None]]:
        with open_client(device=device, workers=workers, gpu_tasks_per_worker=gpu_tasks, **cluster_opts) as client:
            yield client, task_resources(client)

    summary = run_enhance(source, output_path, factory, opts, resume=resume, overwrite=overwrite, progress=not quiet,
                          provenance=provenance, section_id=section_id, note=note,
                          cluster=None if workers == 0 else cluster, allow_missing_chunks=allow_missing_chunks)
    for line in [f"zse enhance: {input_path} -> {output_path} (model {factory.name}, margin {summary.margin})", *summary.lines()]:
        click.echo(line, err=True)
