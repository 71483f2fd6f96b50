"""`zse demo`: synthesise a small slide, enhance it on a local Dask cluster, write the pyramid and a picture.

Fits a few minutes on 2 CPU cores. Uses the best model this installation has (the registry's default
trained model; rl-deconv where the weights are missing). Writes orthoview.png (input, output and the
optical-section truth as columns, z stretched to its physical size) and planes.png (per-plane SSIM to
the truth and focus curves), and prints the SSIM to the truth of input and output.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("zse-demo"), show_default=True,
              help="Folder for the synthetic slide, its enhancement and the pictures; an earlier demo there is replaced (with a note).")
@click.option("--shape", default="29,512,768", show_default=True, help="Synthetic slide shape Z,Y,X.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic slide.")
@click.option("--model", default=None, help="Model to run (default: the best in the registry).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--workers", type=int, default=1, show_default=True, help="Dask worker processes of the local cluster.")
def demo(out_dir: Path, shape: str, seed: int, model: str | None, device: str, workers: int) -> None:
    """Synthesise, enhance and show: the end-to-end job on built-in synthetic data."""
    from zse.models import metrics as M
    from zse.models.registry import best_model
    from zse.models.simulator import BLUR_PRESETS
    from zse.pipeline.infer import check_device
    from zse.pipeline.io.ngff import open_image
    from zse.workflows.enhance import enhance
    from zse.workflows.params import parse_shape
    from zse.workflows.report import plot_orthoview_columns, plot_plane_curves
    from zse.workflows.synth import write_synth

    t0 = time.perf_counter()
    check_device(device)
    zyx = parse_shape(shape)
    slide, truth = out_dir / "slide.ome.zarr", out_dir / "truth.ome.zarr"
    earlier = [p.name for p in (slide, truth, out_dir / "enhanced.ome.zarr", out_dir / "orthoview.png", out_dir / "planes.png")
               if p.exists()]
    if earlier:
        click.echo(f"zse demo: replacing the earlier demo in {out_dir} ({', '.join(earlier)})", err=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"1/3 synthesising a {zyx} brightfield z-scan (seed {seed}) -> {slide}", err=True)
    write_synth(slide, zyx, seed, ground_truth=truth, blur="huron", overwrite=True)
    model_spec = model or best_model()
    enhanced = out_dir / "enhanced.ome.zarr"
    click.echo(f"2/3 enhancing with {model_spec} on a local Dask cluster ({workers} worker(s), {device}) -> {enhanced}", err=True)
    summary = enhance(slide, enhanced, model_spec, device=device, workers=workers, overwrite=True,
                      provenance={"command": "zse demo"})
    source = open_image(slide)
    for line in summary.lines():
        click.echo(f"    {line}", err=True)
    x = np.asarray(source.levels[0][:])
    y = np.asarray(open_image(enhanced).levels[0][:])
    g = np.asarray(open_image(truth).levels[0][:])
    z, h, w = x.shape
    # the 256×256 window with the most tissue (darkest mean of the middle plane)
    mid = x[z // 2, ::8, ::8].astype(np.float32)
    win = 32
    best = min(((i, j) for i in range(0, max(1, mid.shape[0] - win + 1), 4) for j in range(0, max(1, mid.shape[1] - win + 1), 4)),
               key=lambda ij: float(mid[ij[0] : ij[0] + win, ij[1] : ij[1] + win].mean()))
    ys = slice(best[0] * 8, min(h, best[0] * 8 + 256))
    xs = slice(best[1] * 8, min(w, best[1] * 8 + 256))
    png = out_dir / "orthoview.png"
    vmax = float(np.iinfo(np.dtype(x.dtype)).max)
    z_aspect = BLUR_PRESETS["huron"][1]  # the slide's focal step in the sample (µm) over its 1 µm pixel
    plot_orthoview_columns(png, {"input": x[:, ys, xs], model_spec: y[:, ys, xs], "truth": g[:, ys, xs]}, focal=M.focal_plane(x),
                           z_aspect=z_aspect, vmax=vmax,
                           title=f"zse demo: input, {model_spec}, optical-section truth (columns); z stretched to µm")
    s_in, s_out = M.synthetic_scores(x, g), M.synthetic_scores(y, g)
    curves_png = out_dir / "planes.png"
    plot_plane_curves(curves_png, {
        "SSIM to the truth (tissue planes)": {"input": s_in["ssim_per_plane"], model_spec: s_out["ssim_per_plane"]},
        "focus measure (mean gradient)": {"input": M.focus_curve(x), model_spec: M.focus_curve(y), "truth": M.focus_curve(g)},
    }, title="per plane: closeness to the truth and sharpness")
    click.echo(f"3/3 pictures: {png}, {curves_png}", err=True)
    click.echo(f"SSIM to the optical-section truth, input -> {model_spec}: in-slice planes {s_in['ssim_planes']:.3f} -> "
               f"{s_out['ssim_planes']:.3f}; xz sections {s_in['ssim_xz']:.3f} -> {s_out['ssim_xz']:.3f}; "
               f"yz sections {s_in['ssim_yz']:.3f} -> {s_out['ssim_yz']:.3f}", err=True)
    click.echo(f"done in {time.perf_counter() - t0:.0f} s. Inspect with: zse info {enhanced}", err=True)
