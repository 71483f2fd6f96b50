"""The enhance job: `zse.enhance(...)` for notebooks and scripts, and `zse enhance IN OUT` on top of it.

`enhance` owns every check of a run (options, device, input, model, output location; the default
overlap and margin that follow the model) and where it runs (in this process, a given Dask client, or
a cluster it opens and closes: zse.workflows.cluster); the pipeline under it is
zse.pipeline.run.run_enhance. The CLI, `zse demo`, `zse bench` and the scripts in benchmarks/ call it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zse.workflows import cluster as _cluster

if TYPE_CHECKING:
    from zse.pipeline.infer import PredictorFactory
    from zse.pipeline.io.ngff import SourceImage
    from zse.pipeline.run import EnhanceResult


def enhance(
    source: str | Path | SourceImage,
    out: str | Path,
    model: str | PredictorFactory | None = None,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    margin: int | None = None,
    block: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    ngff: str = "0.5",
    skip_background: bool = True,
    tissue_threshold: float = 0.08,
    resume: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    client: Any = None,
    cluster: str | None = None,
    cluster_options: Mapping[str, Any] | None = None,
    gpu_tasks: int = 3,
    amp: str | None = None,
    section_id: str | None = None,
    allow_missing_chunks: bool = False,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> EnhanceResult:
    """Enhance the OME-Zarr z-scan `source` into a multiscale OME-Zarr at `out` (same dtype, axes and
    physical metadata; a z super-resolution model, `scale_zyx` (sz, 1, 1), writes Z·sz planes at z voxel
    size dz/sz: zse.pipeline.zscale); returns what the run did (`EnhanceResult`: blocks, tiles, overlap, margin, wall time).

    Args:
        source: path of an OME-Zarr image (NGFF 0.4/0.5, bioformats2raw too) or an opened `SourceImage`.
        out: output path; refused if it exists, unless `resume` or `overwrite`.
        model: registry name (`zse models`), zse checkpoint (.pt), exported program (.pt2) or a
            PredictorFactory; None: the best bundled model.
        tile, overlap, margin, block, batch_size, ngff, skip_background, tissue_threshold: as the CLI's
            flags (`zse enhance --help`); tile, overlap and margin None follow the model.
        device: "cpu", "cuda" or "cuda:N" (refused where no GPU is visible).
        workers: 0 runs every block in this process without Dask; None or N ≥ 1 opens a cluster for the
            run (local: N worker processes, default 1 on CPU, one per GPU) unless `client` is given.
        client: an open `distributed.Client` to run on (not closed here); overrides `cluster`.
        cluster, cluster_options: where to open the cluster ("local", "local-cuda", "slurm" or a
            scheduler address) and the other `open_client` keywords (profile, partition, walltime, …).
        gpu_tasks: block tasks per GPU at once. amp: None or "bf16" (trained models on GPU).
        note: receives remarks for the user (default: none); progress: a progress bar on stderr.
        provenance: extra entries for the output's provenance record.

    Raises:
        ZseError subclasses (InputError, OutputError, ModelError, ConfigError) with one-line messages,
        all before anything is written where the problem can be seen in advance.
    """
    from zse.models.registry import best_model, resolve
    from zse.pipeline.infer import check_device
    from zse.pipeline.io.ngff import SourceImage, open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance
    from zse.workflows.cluster import open_client, task_resources

    opts = make_options(tile=tile, overlap=overlap, margin=margin, block=block, batch_size=batch_size, device=device,
                        ngff=ngff, skip_background=skip_background, tissue_threshold=tissue_threshold)
    check_device(device)
    image = source if isinstance(source, SourceImage) else open_image(Path(source))
    if model is None or isinstance(model, str):
        model_spec = model or best_model()
        factory = resolve(model_spec, amp=amp)
    else:
        model_spec, factory = model.name, model
    run_cluster = None
    if client is None and workers != 0:
        copts = {**(cluster_options or {}), **({"cluster": cluster} if cluster is not None else {})}

        @contextmanager
        def run_cluster() -> Iterator[tuple[Any, dict[str, float] | None]]:
            with open_client(device=device, workers=workers, gpu_tasks_per_worker=gpu_tasks, **copts) as c:
                link = dashboard_link(c) if str(copts.get("dashboard_address")).lower() != "none" else None
                if link and note is not None:
                    note(f"Dask dashboard (tasks, workers, memory): {link}")
                yield c, task_resources(c)

    return run_enhance(image, out, factory, opts, client=client, resources=task_resources(client) if client is not None else None,
                       resume=resume, overwrite=overwrite, progress=progress,
                       provenance={**(provenance or {}), "model_spec": model_spec}, section_id=section_id, note=note,
                       cluster=run_cluster, allow_missing_chunks=allow_missing_chunks)


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard URL of `client`'s scheduler, or None where its scheduler serves no HTTP."""
    try:
        services = client.scheduler_info().get("services", {})
        return str(client.dashboard_link) if "dashboard" in services else None
    except Exception:  # noqa: BLE001 - a missing link is not an error
        return None


@click.command("enhance")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--model", "model", default=None, help="Registry name (see `zse models`), zse checkpoint (.pt) or exported program (.pt2). Default: the best bundled model.")
@click.option("--tile", type=int, default=None, help="Tile side in pixels (y, x); tiles span all z planes (default 128; rl-deconv 640 = a 512-px core plus its 128-px overlap, less on a smaller slide: its FFT cost is per tile, so large tiles waste less).")
@click.option("--overlap", type=int, default=None, help="Pixels shared by neighbouring tiles (default: twice the model's receptive radius, rounded up to a multiple of 8, so the tiled result equals the untiled one; 32 for a model that does not declare its radius).")
@click.option("--margin", type=int, default=None, help="Zero-weight pixels at each tile edge (default: the model's receptive radius, at most overlap/2).")
@click.option("--block", type=int, default=None, help="y-x side of one Dask task and output shard (default 1024 on CPU, 2048 on GPU).")
@click.option("--batch-size", type=int, default=None, help="Tiles per model call (default 4 on CPU, 16 on GPU, 1 for rl-deconv; halves itself on GPU out-of-memory).")
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
@_cluster.cluster_options
def enhance_command(input_path: Path, output_path: Path, model: str | None, tile: int, overlap: int | None, margin: int | None,
                    block: int | None, batch_size: int | None, workers: int | None, device: str, ngff: str, resume: bool,
                    overwrite: bool, skip_background: bool, tissue_threshold: float, gpu_tasks: int, amp: str,
                    section_id: str | None, allow_missing_chunks: bool, quiet: bool, cluster_opts: dict[str, Any]) -> None:
    """Enhance the OME-Zarr z-scan IN into a multiscale OME-Zarr OUT (same dtype and axes)."""

    def note(line: str) -> None:
        click.echo(f"zse: note: {line}", err=True)

    result = enhance(input_path, output_path, model, tile=tile, overlap=overlap, margin=margin, block=block,
                     batch_size=batch_size, device=device, ngff=ngff, skip_background=skip_background,
                     tissue_threshold=tissue_threshold, resume=resume, overwrite=overwrite, workers=workers,
                     cluster_options=cluster_opts, gpu_tasks=gpu_tasks, amp=None if amp == "none" else amp,
                     section_id=section_id, allow_missing_chunks=allow_missing_chunks, progress=not quiet, note=note,
                     provenance={"command": " ".join(sys.argv)})
    for line in [f"zse enhance: {input_path} -> {output_path} (model {result.model}, tile {result.tile}, overlap "
                 f"{result.overlap}, margin {result.margin})", *result.lines()]:
        click.echo(line, err=True)
