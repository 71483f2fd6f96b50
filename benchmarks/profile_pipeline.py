"""Where does `zse enhance` spend its time? One in-process run of the enhance job (`workers=0`), after a
warm-up run, timed by stage with the bench's timers and profiled with cProfile.

    python benchmarks/profile_pipeline.py [--device cpu|cuda] [--model convnet:8] [--shape 29,1024,1024]
                                          [--block N] [--batch-size N] [--input IN.zarr] [--top 30] [--no-profile]

Prints the wall time of the run, the time of the pipeline's stages — tissue map, block read, write,
pyramid, done markers, output create/finalise, to_unit, model + blend, quantise, other — from the timers
of zse.workflows.bench.host (`stage_timers`: the same stages `zse bench`'s host figure uses; under
cProfile every stage is slower, so the table comes from a run without it), then the top functions by
cumulative and by own time from a second, profiled run. On cuda, GPU work is asynchronous: its time shows
up where the host waits (the `.cpu()` of the block result, in "other").

    python benchmarks/profile_pipeline.py --host [--shape 29,2048,2048] [--tile 128] [--overlap 32] [--block 2048]
                                          [--repeat 3] [--json FILE]

`--host`: only the host work per tile (zse.workflows.bench.host.host_work: identity model, one thread, by
stage; what `zse bench --stages host` prints), `--repeat` times, the best by host ms per tile kept; the
runs and the best as JSON to FILE. It needs nothing of zse but host_work and enhance, so it also measures
an older checkout (PYTHONPATH pointing at that checkout's packages with this tree's workflows/bench).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="convnet")
    ap.add_argument("--shape", default="29,1024,1024")
    ap.add_argument("--input", default=None)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-profile", action="store_true", help="only the stage table (no cProfile run)")
    ap.add_argument("--host", action="store_true", help="only the host work per tile (identity model, one thread)")
    ap.add_argument("--repeat", type=int, default=3, help="--host: runs (the best kept)")
    ap.add_argument("--json", default=None, help="--host: write the runs and the best as JSON here")
    args = ap.parse_args(argv)
    if args.host:
        host_main(args)
        return

    from zse.models.testing import make_slide
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.pipeline.run import EnhanceResult
    from zse.workflows.bench.config import make_factory
    from zse.workflows.bench.host import HOST_PARTS, stage_timers
    from zse.workflows.enhance import enhance
    from zse.workflows.params import parse_shape

    work = Path(tempfile.mkdtemp(prefix="zse-prof-"))
    if args.input:
        in_path = Path(args.input)
    else:
        in_path = work / "in.zarr"
        write_volume(in_path, make_slide(parse_shape(args.shape)), progress=False)
    factory = make_factory(args.model)
    source = open_image(in_path)

    def run(out: Path) -> EnhanceResult:
        return enhance(source, out, factory, tile=args.tile, overlap=args.overlap, block=args.block, batch_size=args.batch_size,
                       device=args.device, workers=0, progress=False, overwrite=True)

    run(work / "warm.zarr")  # builds and warms the model
    with stage_timers() as (clock, missing):
        t0 = time.perf_counter()
        summary = run(work / "out.zarr")
        wall = time.perf_counter() - t0
    print(f"enhance in process: {wall:.2f} s wall, {summary.tiles_run} tiles evaluated, {summary.blocks_done} blocks "
          f"enhanced, {summary.blocks_skipped} skipped, tile {summary.tile}, overlap {summary.overlap}, block {args.block or 'default'}, "
          f"device {args.device}")
    secs = dict(clock.seconds)
    secs["other"] = max(0.0, wall - sum(secs.values()))
    for label, t in sorted(secs.items(), key=lambda kv: -kv[1]):
        kind = "host" if label in HOST_PARTS else ""
        print(f"  {label:<12s} {t:8.3f} s  {100 * t / wall:5.1f} %  {kind}")
    if missing:
        print(f"  timers not found (renamed pipeline functions?): {', '.join(missing)}")
    if args.no_profile:
        return
    prof = cProfile.Profile()
    prof.enable()
    run(work / "out.zarr")
    prof.disable()
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())


def host_main(args: argparse.Namespace) -> None:
    """`--host`: host_work on a synthetic slide (or --input), `--repeat` times; prints one line per run."""
    import json
    import os
    import platform
    import sys

    import zse
    from zse.models.testing import make_slide
    from zse.pipeline.io.write import write_volume
    from zse.workflows.bench.host import host_line, host_work
    from zse.workflows.params import parse_shape

    work = Path(tempfile.mkdtemp(prefix="zse-host-"))
    if args.input:
        in_path = Path(args.input)
    else:
        in_path = work / "in.zarr"
        write_volume(in_path, make_slide(parse_shape(args.shape), 0), voxel_size_um=(1.0, 1.0, 1.0), progress=False)
    load_before = os.getloadavg()
    runs = []
    for i in range(max(1, args.repeat)):
        h = host_work(in_path, work / f"out{i}.zarr", tile=args.tile or 128, overlap=32 if args.overlap is None else args.overlap,
                      block=args.block)
        runs.append(h)
        print(host_line(h), flush=True)
    best = min(runs, key=lambda h: h["host_ms_per_tile"])
    res = {"zse": os.path.dirname(zse.__file__), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.node()}, {os.cpu_count()} cores", "command": " ".join(["python", *sys.argv]),
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "best": best, "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
