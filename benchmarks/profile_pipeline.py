"""Where does `zse enhance` spend its time? cProfile of one in-process run of the enhance job (`workers=0`),
after a warm-up run.

    python benchmarks/profile_pipeline.py [--device cpu|cuda] [--model convnet:8] [--shape 29,1024,1024]
                                          [--block N] [--batch-size N] [--input IN.zarr] [--top 30]

Prints the wall time of the run, the time of the pipeline's stages (tissue map, block read, model +
blend, quantise and copy to host, block write, done markers, pyramid) from the profile, and the top
functions by cumulative and by own time. On cuda, GPU work is asynchronous: its time shows up where the
host waits (the `.cpu()` of the block result).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

STAGES = {
    "tissue map": ("plan.py", "tissue_map"),
    "read block (zarr decode + reflect)": ("block.py", "read_region"),
    "model + blend (predict_block)": ("block.py", "predict_block"),
    "  model calls": ("testing.py", "convnet_predictor"),
    "  Merger.add": ("blend.py", "add"),
    "  Merger.finalize": ("blend.py", "finalize"),
    "quantise (from_unit)": ("intensity.py", "from_unit"),
    "write block (zarr encode)": ("array.py", "__setitem__"),
    "done markers": ("plan.py", "mark_done"),
    "pyramid": ("pyramid.py", "write_level_region"),
    "create output": ("write.py", "create_output"),
    "finalize output": ("write.py", "finalize_output"),
}


def stage_times(stats: pstats.Stats) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, (fname, func) in STAGES.items():
        total = 0.0
        for (f, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if name == func and f.endswith(fname):
                total += ct
        out[label] = total
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="convnet")
    ap.add_argument("--shape", default="29,1024,1024")
    ap.add_argument("--input", default=None)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)

    from zse.models.testing import make_slide
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.pipeline.options import make_options
    from zse.pipeline.run import EnhanceResult
    from zse.workflows.bench.config import make_factory
    from zse.workflows.enhance import enhance
    from zse.workflows.params import parse_shape

    work = Path(tempfile.mkdtemp(prefix="zse-prof-"))
    if args.input:
        in_path = Path(args.input)
    else:
        in_path = work / "in.zarr"
        write_volume(in_path, make_slide(parse_shape(args.shape)), progress=False)
    factory = make_factory(args.model)
    opts = make_options(tile=args.tile, overlap=args.overlap, block=args.block, batch_size=args.batch_size, device=args.device)
    source = open_image(in_path)

    def run(out: Path, overwrite: bool) -> EnhanceResult:
        return enhance(source, out, factory, tile=opts.tile, overlap=opts.overlap, block=opts.block, batch_size=opts.batch_size,
                       device=opts.device, workers=0, progress=False, overwrite=overwrite)

    run(work / "warm.zarr", False)  # builds and warms the model
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    summary = run(work / "out.zarr", True)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    print(f"enhance in process: {wall:.2f} s wall (under cProfile), {summary.tiles_run} tiles evaluated, "
          f"{summary.blocks_done} blocks enhanced, {summary.blocks_skipped} skipped, block {opts.resolved_block()}, "
          f"batch {opts.resolved_batch()}, device {args.device}")
    for label, t in stage_times(stats).items():
        print(f"  {label:<40s} {t:8.2f} s  {100 * t / wall:5.1f} %")
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())


if __name__ == "__main__":
    main()
