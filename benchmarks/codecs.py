"""Which codec should zse's writer use? Compression ratio, encode and decode MB/s of zse's output layout.

    python benchmarks/codecs.py [--out benchmarks/results/codecs.json] [--synth-shape 29,1024,1024]
                                [--huron ../shared/data/zse-gan-huron] [--rois 64] [--repeat 3] [--ratio-floor 0.97]

Writes FILE.json and FILE.md (machine, date, command, versions, one table per data set, the pick).

Data (each a (Z, Y, X) array held in memory, written and read back whole):
  - "huron uint8": the real ROIs `trainB/*.npz` (arr_0 is (y, x, z) uint8, 128 × 128 × 29; README there)
    tiled into a square mosaic, z first; skipped with a note when the folder is absent;
  - "synth uint8", "synth uint16": the z-scan of `zse synth --blur huron` (the preset closest to the real
    ROIs; zse.models.simulator.synth_dask, seed 0), computed in memory.

Layout: what zse.pipeline.io.write.create_output makes for NGFF 0.5 (Zarr v3) with `--block 1024`:
chunks Z × 256 × 256 inside shards Z × 1024 × 1024 (OutputSpec.chunks_for / shards_for), fill value 0,
`write_empty_chunks` on (zse.pipeline.io.write.writable). Codecs: the writer's own (`_compressor("0.5")`,
row "current"), Blosc zstd / lz4 with byte or bit shuffle, plain zstd levels 1, 3, 5, 9 (zarr.codecs.ZstdCodec),
plain lz4 (numcodecs.zarr3.LZ4), none.

Threads: Zarr's codec pipeline is held to one thread (`threading.max_workers` 1, `async.concurrency` 1).
Blosc "1 thread" is what zse's writer gets: zarr 3 calls Blosc from a worker thread, where numcodecs
uses its single-threaded context API (numcodecs.blosc.use_threads None). Blosc "2 threads" sets
numcodecs.blosc.use_threads = True and set_nthreads(2) (Blosc's global context, behind a process-wide
lock). One extra row per data set runs the current codec with Zarr's pipeline on 2 threads instead.

Rates: uncompressed MB (10⁶ bytes) per second of wall time of a whole-array write (encode, file writes
included) and read (decode, file reads from the page cache included); best of --repeat. CPU-s per GB (process
CPU time, all threads) beside them: on a shared machine CPU time is the steadier figure. Ratio: raw bytes /
stored bytes (shard files, metadata excluded). Every read-back is checked equal to what was written.

The pick: among one-thread codecs whose ratio on every data set is ≥ --ratio-floor × the best ratio measured
on that data set, the one with the highest geometric-mean encode MB/s (decode MB/s breaks ties within 5 %).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_HURON = Path(__file__).resolve().parents[2] / "shared" / "data" / "zse-gan-huron"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "codecs.json"
FLOORS = (0.97, 0.95, 0.90, 0.85, 0.0)
"""Ratio floors for the sensitivity line of the report (what the pick would be at each)."""


@dataclass(frozen=True)
class Candidate:
    """One codec setting: `make()` returns the Zarr v3 compressors; blosc_threads / zarr_threads as in the docstring."""

    name: str
    make: Callable[[], list[Any]]
    blosc_threads: int = 1
    zarr_threads: int = 1

    @property
    def one_thread(self) -> bool:
        return self.blosc_threads == 1 and self.zarr_threads == 1


def candidates() -> list[Candidate]:
    """Every codec setting measured, the writer's own first."""
    from numcodecs.zarr3 import LZ4
    from zarr.codecs import BloscCodec, ZstdCodec

    from zse.pipeline.io.write import _compressor

    def blosc(cname: Any, level: int, shuffle: Any) -> Callable[[], list[Any]]:
        return lambda: [BloscCodec(cname=cname, clevel=level, shuffle=shuffle)]

    out = [Candidate("current", lambda: [_compressor("0.5")])]
    blosc_specs = [("zstd", 1, "bitshuffle"), ("zstd", 1, "shuffle"), ("zstd", 3, "bitshuffle"), ("lz4", 5, "bitshuffle"),
                   ("lz4", 5, "shuffle")]
    for threads in (1, 2):
        out += [Candidate(f"blosc-{c}{lv}-{sh}", blosc(c, lv, sh), blosc_threads=threads) for c, lv, sh in blosc_specs]
    for level in (1, 3, 5, 9):
        out.append(Candidate(f"zstd{level}", lambda level=level: [ZstdCodec(level=level)]))  # type: ignore[misc]
    out.append(Candidate("lz4", lambda: [LZ4()]))
    out.append(Candidate("none", lambda: []))
    out.append(Candidate("current", lambda: [_compressor("0.5")], zarr_threads=2))
    return out


def describe(codecs: list[Any]) -> str:
    """A short text of Zarr v3 compressors, e.g. 'blosc zstd 1 bitshuffle'."""
    if not codecs:
        return "none"
    parts = []
    for c in codecs:
        d = c.to_dict()
        cfg = d.get("configuration", {})
        if d["name"] == "blosc":
            parts.append(f"blosc {cfg['cname']} {cfg['clevel']} {cfg['shuffle']}")
        else:
            parts.append(" ".join([d["name"], *(f"{k}={v}" for k, v in cfg.items() if k != "checksum")]))
    return " + ".join(parts)


# ------------------------------------------------------------------------------------------------- data


def huron_mosaic(folder: Path, n_rois: int) -> np.ndarray | None:
    """The first `n_rois` (a square number) of trainB/*.npz, (y, x, z) each, as one (Z, k·128, k·128)
    uint8 mosaic, z first; None if the folder has none."""
    files = sorted((folder / "trainB").glob("*.npz"))
    side = math.isqrt(min(n_rois, len(files)))
    if side == 0:
        return None
    rois = [np.moveaxis(np.load(f)["arr_0"], -1, 0) for f in files[: side * side]]
    nz, ty, tx = rois[0].shape
    out = np.empty((nz, side * ty, side * tx), dtype=np.uint8)
    for k, r in enumerate(rois):
        i, j = divmod(k, side)
        out[:, i * ty : (i + 1) * ty, j * tx : (j + 1) * tx] = r
    return out


def synth_slide(shape: tuple[int, int, int], dtype: str, seed: int = 0) -> np.ndarray:
    """The z-scan `zse synth --blur huron --dtype DTYPE --seed SEED` writes, (Z, Y, X), computed in memory."""
    import dask

    from zse.models.simulator import CELL_PX, preset_params, synth_dask

    vol = synth_dask(shape, seed, "z-scan", dtype=dtype, params=preset_params("huron"), slab_px=CELL_PX)
    with dask.config.set(scheduler="threads", num_workers=2):
        return np.asarray(vol.compute())


# -------------------------------------------------------------------------------------------- measuring


def layout(shape: tuple[int, int, int], dtype: str) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """(chunks, shards) of zse's level-0 output of this shape and dtype (NGFF 0.5, block 1024)."""
    from zse.pipeline.io.ngff import ImageMeta
    from zse.pipeline.io.write import OutputSpec

    spec = OutputSpec(meta=ImageMeta(axes="zyx", shape=shape, dtype=dtype), ngff="0.5", block=1024)
    return spec.chunks_for(shape), spec.shards_for(shape)


def measure(data: np.ndarray, work: Path, cand: Candidate, repeat: int) -> dict[str, Any]:
    """Write `data` whole with `cand`'s codec in zse's layout, read it back; best-of-`repeat` rates."""
    import numcodecs.blosc
    import zarr

    from zse.pipeline.io.write import writable

    chunks, shards = layout(data.shape, data.dtype.name)  # type: ignore[arg-type]
    path = work / "a.zarr"
    enc = dec = float("inf")
    enc_cpu = dec_cpu = float("inf")
    stored = 0
    codecs = cand.make()
    saved = numcodecs.blosc.use_threads
    numcodecs.blosc.use_threads = True if cand.blosc_threads > 1 else None
    numcodecs.blosc.set_nthreads(cand.blosc_threads)
    try:
        with zarr.config.set({"threading.max_workers": cand.zarr_threads, "async.concurrency": cand.zarr_threads}):
            for _ in range(repeat):
                shutil.rmtree(path, ignore_errors=True)
                arr = writable(zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards,
                                                 compressors=codecs, fill_value=0))
                t0, c0 = time.perf_counter(), time.process_time()
                arr[...] = data
                enc, enc_cpu = min(enc, time.perf_counter() - t0), min(enc_cpu, time.process_time() - c0)
                t0, c0 = time.perf_counter(), time.process_time()
                back: np.ndarray = np.asarray(zarr.open_array(str(path), mode="r")[...])
                dec, dec_cpu = min(dec, time.perf_counter() - t0), min(dec_cpu, time.process_time() - c0)
                if not np.array_equal(back, data):
                    raise SystemExit(f"{cand.name}: read-back differs from what was written")
                stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")
    finally:
        numcodecs.blosc.use_threads = saved
        numcodecs.blosc.set_nthreads(1)
    mb, gb = data.nbytes / 1e6, data.nbytes / 1e9
    return {"codec": cand.name, "description": describe(codecs), "blosc_threads": cand.blosc_threads,
            "zarr_threads": cand.zarr_threads, "chunks": list(chunks), "shards": list(shards) if shards else None,
            "ratio": data.nbytes / max(1, stored), "stored_MB": stored / 1e6,
            "encode_MBps": mb / enc, "decode_MBps": mb / dec,
            "encode_cpu_s_per_GB": enc_cpu / gb, "decode_cpu_s_per_GB": dec_cpu / gb}


def pick(rows: list[dict[str, Any]], floor: float) -> dict[str, Any]:
    """The recommendation rule of the module docstring, applied to the one-thread rows."""
    one = [r for r in rows if r["blosc_threads"] == 1 and r["zarr_threads"] == 1]
    datasets = sorted({r["data"] for r in one})
    best_ratio = {d: max(r["ratio"] for r in one if r["data"] == d) for d in datasets}
    names = list(dict.fromkeys(r["codec"] for r in one))
    table = []
    for name in names:
        mine = {r["data"]: r for r in one if r["codec"] == name}
        if set(mine) != set(datasets):
            continue
        rel = {d: mine[d]["ratio"] / best_ratio[d] for d in datasets}
        table.append({
            "codec": name, "description": next(iter(mine.values()))["description"],
            "eligible": all(v >= floor for v in rel.values()),
            "min_ratio_vs_best": min(rel.values()),
            "encode_MBps_geomean": math.exp(sum(math.log(mine[d]["encode_MBps"]) for d in datasets) / len(datasets)),
            "decode_MBps_geomean": math.exp(sum(math.log(mine[d]["decode_MBps"]) for d in datasets) / len(datasets)),
            "ratio": {d: mine[d]["ratio"] for d in datasets},
        })
    eligible = sorted((t for t in table if t["eligible"]), key=lambda t: -t["encode_MBps_geomean"])
    choice = None
    if eligible:
        top = eligible[0]
        close = [t for t in eligible if t["encode_MBps_geomean"] >= 0.95 * top["encode_MBps_geomean"]]
        choice = max(close, key=lambda t: t["decode_MBps_geomean"])
    return {"rule": f"one thread; ratio ≥ {floor:g} × the best ratio on every data set; highest geometric-mean encode "
                    f"MB/s, decode MB/s breaking ties within 5 %", "ratio_floor": floor, "best_ratio": best_ratio,
            "candidates": table, "choice": choice["codec"] if choice else None,
            "choice_description": choice["description"] if choice else None}


# ---------------------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """Host, CPU model, cores, memory, OS, Python, and the versions the numbers depend on."""
    import numcodecs
    import numcodecs.blosc
    import zarr

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = None
    try:
        mem = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "mem_bytes": mem, "os": platform.platform(),
            "python": platform.python_version(), "zarr": zarr.__version__, "numcodecs": numcodecs.__version__,
            "numpy": np.__version__, "blosc": getattr(numcodecs.blosc, "VERSION_STRING", None)}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Codecs for zse's output (benchmarks/codecs.py)", "",
        f"Generated by `{res['command']}` on {res['date']} in {res['seconds']:.0f} s. Machine: {m['host']}, {m['cpu']}, "
        f"{m['cores']} cores, {(m['mem_bytes'] or 0) / 2**30:.0f} GiB; Python {m['python']}, zarr {m['zarr']}, numcodecs "
        f"{m['numcodecs']}, numpy {m['numpy']}, Blosc {m['blosc']}. Load average before / after: {res['load_before']} / "
        f"{res['load_after']} (where other processes share the cores, the CPU-s columns are the steadier figure).", "",
        "Layout as zse writes level 0 (NGFF 0.5, block 1024): chunks Z×256×256 in shards Z×1024×1024, write_empty_chunks. "
        "MB/s: uncompressed MB per wall second of a whole-array write (encode) / read (decode) incl. file I/O (page "
        f"cache), best of {res['repeat']}; Zarr's pipeline on one thread unless the zarr-threads column says 2. "
        "CPU-s/GB: process CPU time, all threads. Ratio: raw / stored bytes.", "",
    ]
    for d in res["datasets"]:
        lines += [f"## {d['name']}: {' × '.join(map(str, d['shape']))} {d['dtype']}, {d['nbytes'] / 1e6:.0f} MB ({d['source']})", "",
                  "| codec | what | blosc threads | zarr threads | ratio | encode MB/s | decode MB/s | encode CPU-s/GB | decode CPU-s/GB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in res["rows"] if r["data"] == d["name"]):
            lines.append(f"| {r['codec']} | {r['description']} | {r['blosc_threads']} | {r['zarr_threads']} | {r['ratio']:.3f} | "
                         f"{r['encode_MBps']:.0f} | {r['decode_MBps']:.0f} | {r['encode_cpu_s_per_GB']:.2f} | {r['decode_cpu_s_per_GB']:.2f} |")
        lines.append("")
    p = res["pick"]
    lines += ["## Pick by throughput at a stated ratio", "", f"Rule: {p['rule']}.", "",
              "| codec | what | ratio ÷ best (worst data set) | eligible | encode MB/s (geomean) | decode MB/s (geomean) |",
              "|---|---|---:|---|---:|---:|"]
    for t in sorted(p["candidates"], key=lambda t: -t["encode_MBps_geomean"]):
        lines.append(f"| {t['codec']} | {t['description']} | {t['min_ratio_vs_best']:.3f} | {'yes' if t['eligible'] else 'no'} | "
                     f"{t['encode_MBps_geomean']:.0f} | {t['decode_MBps_geomean']:.0f} |")
    current = next((r["description"] for r in res["rows"] if r["codec"] == "current"), None)
    same = " — the writer's current codec" if p["choice_description"] == current else f" (the writer's current codec: {current})"
    lines += ["", f"**Pick at ratio floor {p['ratio_floor']:g}: {p['choice']}** ({p['choice_description']}{same}).", ""]
    if res.get("pick_by_floor"):
        lines += ["The pick at other ratio floors: " + "; ".join(f"{f}: {c}" for f, c in res["pick_by_floor"].items()) + ".", ""]
    if res.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in res["notes"]], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth-shape", default="29,1024,1024", help="Z,Y,X of the zse synth slides")
    ap.add_argument("--huron", type=Path, default=DEFAULT_HURON, help="folder of the real ROIs (trainB/*.npz)")
    ap.add_argument("--rois", type=int, default=64, help="real ROIs in the mosaic (a square number: 64 → 1024 × 1024)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ratio-floor", type=float, default=0.97)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file; the Markdown goes beside it (.md)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    shape = tuple(int(v) for v in args.synth_shape.split(","))
    if len(shape) != 3:
        raise SystemExit(f"--synth-shape {args.synth_shape!r}: expected Z,Y,X")
    notes: list[str] = []
    datasets: dict[str, tuple[np.ndarray, str]] = {}
    mosaic = huron_mosaic(args.huron, args.rois)
    if mosaic is None:
        notes.append(f"real ROIs not measured: no {args.huron}/trainB/*.npz")
    else:
        side = mosaic.shape[1] // 128
        datasets["huron uint8"] = (mosaic, f"{side * side} real ROIs of {args.huron.name}/trainB tiled {side} × {side}")
    for dt in ("uint8", "uint16"):
        print(f"codecs: computing the zse synth {dt} slide {shape}", file=sys.stderr, flush=True)
        datasets[f"synth {dt}"] = (synth_slide(shape, dt), f"zse synth --blur huron --dtype {dt} --seed 0")  # type: ignore[arg-type]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="zse-codecs-"))
    try:
        for dname, (data, _src) in datasets.items():
            for cand in candidates():
                r = {"data": dname, **measure(data, work, cand, args.repeat)}
                rows.append(r)
                print(f"{dname:12s} {cand.name:28s} b{cand.blosc_threads} z{cand.zarr_threads} ratio {r['ratio']:.3f} "
                      f"enc {r['encode_MBps']:6.0f} dec {r['decode_MBps']:6.0f} MB/s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res: dict[str, Any] = {
        "command": "python benchmarks/codecs.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(), "repeat": args.repeat,
        "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
        "datasets": [{"name": n, "shape": list(a.shape), "dtype": a.dtype.name, "nbytes": a.nbytes, "source": s}
                     for n, (a, s) in datasets.items()],
        "rows": rows, "pick": pick(rows, args.ratio_floor), "notes": notes,
        "pick_by_floor": {str(f): pick(rows, f)["choice"] for f in sorted({args.ratio_floor, *FLOORS}, reverse=True)},
    }
    res["seconds"] = time.perf_counter() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    print(f"codecs: wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
