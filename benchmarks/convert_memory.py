"""Peak memory and throughput of `zse convert` on a large synthetic per-plane whole-slide z-stack.

Not a test. Generates NPLANES Aperio-like pyramidal BigTIFFs of SIZE × SIZE RGB px (JPEG tiles of
256 × 256, quality 90, plus a 2×- and 4×-reduced level, a thumbnail, a label and a macro image), then runs
`zse convert` on them in a child process and reports:

- peak resident memory of the child (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, and the
  largest RSS sampled with psutil every 0.1 s), next to the same for a child that only imports zse;
- wall time and throughput (decoded input MB/s, output megavoxels/s).

Tiles are pre-encoded (16 distinct textured tiles, cycled), so generation is fast and bounded in memory;
the converter still decodes every tile. Example (2-core machine):

    python benchmarks/convert_memory.py --size 20000 --planes 29 --workdir /tmp/zse-bench

Results are printed as one JSON object (also written to WORKDIR/result.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TILE = 256


def _tiles(seed: int = 0, n: int = 16) -> list[np.ndarray]:
    """n textured RGB uint8 tiles (TILE, TILE, 3), something like stained tissue with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    out = []
    for k in range(n):
        base = np.stack([np.sin(yy / (5 + k) + c) * np.cos(xx / (7 + k) - c) for c in range(3)], axis=-1)
        out.append(np.clip((base * 0.3 + 0.6 + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8))
    return out


def make_plane(path: Path, size: int, seed: int) -> None:
    """One Aperio-like plane: level 0 (size² px, JPEG tiles), thumbnail, levels /4 and /16, label, macro."""
    import imagecodecs
    import tifffile

    tiles = _tiles(seed)
    enc = [imagecodecs.jpeg8_encode(t, level=90) for t in tiles]
    desc = (f"Aperio Image Library v12.0.15 \n{size}x{size} [0,0 {size}x{size}] ({TILE}x{TILE}) "
            "JPEG/RGB Q=90|AppMag = 20|MPP = 0.2520")
    kw = {"photometric": "rgb", "metadata": None}

    def level(side: int, first: int) -> None:
        n = (-(-side // TILE)) ** 2
        tw.write((enc[(first + i) % len(enc)] for i in range(n)), shape=(side, side, 3), dtype=np.uint8,
                 tile=(TILE, TILE), compression="jpeg", description=desc if first == 0 else "Aperio level", **kw)

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        level(size, 0)
        tw.write(np.full((size // 64, size // 64, 3), 200, np.uint8), description="Aperio thumbnail", **kw)
        level(size // 4, 3)
        level(size // 16, 5)
        tw.write(np.full((300, 300, 3), 255, np.uint8), subfiletype=1, compression="lzw", description="label", **kw)
        tw.write(np.full((400, 1000, 3), 128, np.uint8), subfiletype=9, compression="jpeg", description="macro", **kw)


def patch_pyramid() -> None:
    """Replace zse.pipeline.pyramid.downsample_mean_yx by an integer, plane-by-plane equivalent.

    Same results (mean of 2×2, rounded half to even, edge pixels replicated at odd edges) for uint8 and
    uint16, without the float64 copies of a whole (Z, 2·block, 2·block) region: this is the change proposed
    for pipeline/pyramid.py, measured here with ``--int-pyramid``.
    """
    import zse.pipeline.pyramid as pyramid

    original = pyramid.downsample_mean_yx

    def downsample_mean_yx_int(a: np.ndarray) -> np.ndarray:
        if a.dtype not in (np.uint8, np.uint16):
            return original(a)
        y, x = a.shape[-2:]
        if y % 2 or x % 2:
            a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, y % 2), (0, x % 2)], mode="edge")
        wide = np.uint32 if a.dtype == np.uint16 else np.uint16
        out = np.empty((*a.shape[:-2], a.shape[-2] // 2, a.shape[-1] // 2), dtype=a.dtype)
        for idx in np.ndindex(*a.shape[:-2]):
            p = a[idx]
            s = p[0::2, 0::2].astype(wide)
            s += p[1::2, 0::2]
            s += p[0::2, 1::2]
            s += p[1::2, 1::2]
            q, r = s >> 2, s & 3
            q += (r == 3) | ((r == 2) & (q & 1).astype(bool))  # round half to even, like np.rint
            out[idx] = q
        return out

    pyramid.downsample_mean_yx = downsample_mean_yx_int


def _run_measured(cmd: list[str]) -> dict[str, float]:
    """Run cmd as a child; wall time, ru_maxrss of the children (MiB) and sampled peak RSS (MiB)."""
    import psutil

    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = usage0.ru_maxrss
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = usage.ru_maxrss  # KiB on Linux; max over children so far
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "maxrss_mib": after / 1024, "maxrss_grew": after > before,
            "sampled_peak_rss_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=20000, help="plane side in px (level 0)")
    ap.add_argument("--planes", type=int, default=29)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zse-bench"))
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--ngff", default="0.5", choices=["0.5", "0.4"])
    ap.add_argument("--channel-mode", default="gray", choices=["gray", "keep"])
    ap.add_argument("--keep-output", action="store_true")
    ap.add_argument("--int-pyramid", action="store_true",
                    help="run with the integer pyramid downsampling proposed for pipeline/pyramid.py")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()

    planes_dir = args.workdir / f"planes_{args.size}"
    planes_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for z in range(args.planes):
        path = planes_dir / f"section_z{z:02d}.svs"
        if not path.exists():
            make_plane(path.with_suffix(".part"), args.size, seed=z)
            path.with_suffix(".part").rename(path)
    gen_s = time.perf_counter() - t0
    files = sorted(planes_dir.glob("section_z*.svs"))[: args.planes]
    in_bytes = sum(f.stat().st_size for f in files)

    # baseline: a child that imports what convert imports
    imports = "import zse.workflows.convert, zse.pipeline.io.tiff, zse.pipeline.io.write, dask.array, zarr, tifffile, imagecodecs"
    base = {"maxrss_mib": float("nan")} if args.skip_baseline else _run_measured([sys.executable, "-c", imports])
    out = args.workdir / "out.ome.zarr"
    # ru_maxrss of RUSAGE_CHILDREN is a max over all children so far: measure convert from a fresh parent
    argv = ["convert", *map(str, files), str(out), "--voxel-size", "1.0,0.252,0.252", "--block", str(args.block),
            "--ngff", args.ngff, "--channel-mode", args.channel_mode, "--overwrite", "--quiet"]
    child = ("import sys; sys.path.insert(0, {!r}); import convert_memory as b; {}"
             "from zse.workflows.cli import main; main({!r})").format(
        str(Path(__file__).parent), "b.patch_pyramid(); " if args.int_pyramid else "", argv)
    parent = ("import json, sys; sys.path.insert(0, {!r}); from convert_memory import _run_measured; "
              "print(json.dumps(_run_measured({!r})))").format(str(Path(__file__).parent), [sys.executable, "-c", child])
    res = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"convert failed:\n{res.stdout}\n{res.stderr}")
    conv = json.loads(res.stdout.strip().splitlines()[-1])
    decoded = args.planes * args.size * args.size * 3
    voxels = args.planes * args.size * args.size
    out_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    result = {
        "size": args.size, "planes": args.planes, "block": args.block, "ngff": args.ngff,
        "channel_mode": args.channel_mode, "int_pyramid": args.int_pyramid, "cpus": os.cpu_count(), "generate_s": round(gen_s, 1),
        "input_file_bytes": in_bytes, "decoded_input_bytes": decoded, "output_bytes": out_bytes,
        "import_only_maxrss_mib": round(base["maxrss_mib"], 1),
        "convert_wall_s": round(conv["wall_s"], 1),
        "convert_cpu_s": round(conv["cpu_s"], 1),
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "convert_maxrss_mib": round(conv["maxrss_mib"], 1),
        "convert_sampled_peak_rss_mib": round(conv["sampled_peak_rss_mib"], 1),
        "decoded_input_MB_per_s": round(decoded / 1e6 / conv["wall_s"], 1),
        "output_Mvoxel_per_s": round(voxels / 1e6 / conv["wall_s"], 2),
        "decoded_input_MB_per_cpu_s": round(decoded / 1e6 / conv["cpu_s"], 1),
        "one_block_MiB": round(args.planes * args.block**2 * (3 if args.channel_mode == "keep" else 1) / 2**20, 1),
        "volume_MiB": round(voxels * (3 if args.channel_mode == "keep" else 1) / 2**20, 1),
    }
    if not args.keep_output:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    (args.workdir / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
