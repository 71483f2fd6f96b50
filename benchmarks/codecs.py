"""Codecs, chunks and shards for zse's outputs: encode/decode MB/s (one thread) and compression ratio.

    python benchmarks/codecs.py [--shape 29,1024,2048] [--huron ../shared/data/zse-gan-huron] [--out FILE.json]

Data: uint8 z-stacks written as zse writes them (Zarr v3, level 0), from
  - "synthetic": `zse.models.testing.make_slide` (dark blurred cells on a light background, 40 % of it
    empty background), and
  - "huron": the real ROIs trainB/*.npz (arr_0 is (y, x, z) uint8, 128 × 128 × 29) tiled into a mosaic,
    when the folder exists.
Part 1 compares codecs at zse's layout (chunks Z×256×256, shards Z×1024×1024); part 2 compares chunk
and shard shapes with zse's codec (Blosc zstd 3 bitshuffle). Rates count uncompressed bytes per second of
a whole-array write (encode, incl. file writes) and read (decode, incl. file reads; page cache warm),
with Blosc and Zarr limited to one thread, so they are per-core rates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CODECS: dict[str, dict[str, Any] | None] = {
    "zstd1-bitshuffle": {"cname": "zstd", "clevel": 1, "shuffle": "bitshuffle"},
    "zstd3-bitshuffle": {"cname": "zstd", "clevel": 3, "shuffle": "bitshuffle"},
    "zstd5-bitshuffle": {"cname": "zstd", "clevel": 5, "shuffle": "bitshuffle"},
    "zstd1-shuffle": {"cname": "zstd", "clevel": 1, "shuffle": "shuffle"},
    "zstd3-shuffle": {"cname": "zstd", "clevel": 3, "shuffle": "shuffle"},
    "zstd5-shuffle": {"cname": "zstd", "clevel": 5, "shuffle": "shuffle"},
    "lz4-bitshuffle": {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"},
    "lz4-shuffle": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"},
    "none": None,
}


def huron_mosaic(folder: Path, cols: int = 20, max_rois: int | None = None) -> np.ndarray | None:
    """trainB/*.npz ROIs (y, x, z) → one (Z, rows·128, cols·128) mosaic, z first; None if absent."""
    files = sorted((folder / "trainB").glob("*.npz"))[:max_rois]
    if not files:
        return None
    rois = [np.moveaxis(np.load(f)["arr_0"], -1, 0) for f in files]
    rois = [r for r in rois if r.shape == rois[0].shape]
    rows = len(rois) // cols
    rois = rois[: rows * cols]
    nz, ty, tx = rois[0].shape
    out = np.empty((nz, rows * ty, cols * tx), dtype=np.uint8)
    for k, r in enumerate(rois):
        i, j = divmod(k, cols)
        out[:, i * ty : (i + 1) * ty, j * tx : (j + 1) * tx] = r
    return out


def measure(data: np.ndarray, work: Path, codec: dict[str, Any] | None, chunks: tuple[int, ...],
            shards: tuple[int, ...] | None, repeat: int = 2) -> dict[str, Any]:
    import zarr
    from zarr.codecs import BloscCodec

    path = work / "a.zarr"
    best_enc = best_dec = float("inf")
    stored = 0
    for _ in range(repeat):
        shutil.rmtree(path, ignore_errors=True)
        arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards,
                                compressors=[BloscCodec(**codec)] if codec else None, fill_value=0)
        t0 = time.perf_counter()
        arr[...] = data
        best_enc = min(best_enc, time.perf_counter() - t0)
        t0 = time.perf_counter()
        back: np.ndarray = np.asarray(zarr.open_array(str(path), mode="r")[...])
        best_dec = min(best_dec, time.perf_counter() - t0)
        assert np.array_equal(back, data)
        stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")
    mb = data.nbytes / 1e6
    return {"encode_MBps": mb / best_enc, "decode_MBps": mb / best_dec, "ratio": data.nbytes / max(1, stored),
            "files": sum(1 for f in path.rglob("*") if f.is_file()), "stored_MB": stored / 1e6}


def run(datasets: dict[str, np.ndarray], work: Path) -> list[dict[str, Any]]:
    import numcodecs.blosc
    import zarr

    numcodecs.blosc.set_nthreads(1)
    rows = []
    with zarr.config.set({"threading.max_workers": 1, "async.concurrency": 1}):
        for dname, data in datasets.items():
            nz = data.shape[0]
            layout = ((nz, 256, 256), (nz, 1024, 1024))
            for cname, codec in CODECS.items():
                r = measure(data, work, codec, *layout)
                rows.append({"data": dname, "codec": cname, "chunks": layout[0], "shards": layout[1], **r})
                print(json.dumps(rows[-1]), flush=True)
            for chunks in ((nz, 256, 256), (1, 512, 512), (nz, 128, 128)):
                for shard in (None, 1024, 2048):
                    if shard and max(data.shape[1:]) < shard:
                        continue
                    shards = (nz, shard, shard) if shard else None
                    r = measure(data, work, CODECS["zstd3-bitshuffle"], chunks, shards)
                    rows.append({"data": dname, "codec": "zstd3-bitshuffle", "chunks": chunks, "shards": shards, **r})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| data | codec | chunks | shards | encode MB/s | decode MB/s | ratio | files |", "|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        sh = "×".join(map(str, r["shards"])) if r["shards"] else "none"
        out.append(f"| {r['data']} | {r['codec']} | {'×'.join(map(str, r['chunks']))} | {sh} | {r['encode_MBps']:.0f} | "
                   f"{r['decode_MBps']:.0f} | {r['ratio']:.2f} | {r['files']} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="29,1024,2048", help="Z,Y,X of the synthetic slide")
    ap.add_argument("--huron", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "zse-gan-huron"))
    ap.add_argument("--mosaic", default=None, help="a mosaic saved by --save-mosaic (npz, z first) instead of --huron")
    ap.add_argument("--save-mosaic", default=None, help="save the Huron mosaic (npz) and exit")
    ap.add_argument("--cols", type=int, default=10)
    ap.add_argument("--max-rois", type=int, default=100)
    ap.add_argument("--out", default=None, help="JSON file (and FILE.md) for the table")
    args = ap.parse_args(argv)
    from zse.models.testing import make_slide

    if args.save_mosaic:
        m = huron_mosaic(Path(args.huron), args.cols, args.max_rois)
        if m is None:
            raise SystemExit(f"no ROIs under {args.huron}/trainB")
        np.savez_compressed(args.save_mosaic, arr_0=m)
        return
    shape = tuple(int(v) for v in args.shape.split(","))
    datasets = {f"synthetic {shape[0]}×{shape[1]}×{shape[2]}": make_slide(shape, seed=0)}  # type: ignore[arg-type]
    mosaic = np.load(args.mosaic)["arr_0"] if args.mosaic else huron_mosaic(Path(args.huron), args.cols, args.max_rois)
    if mosaic is not None:
        datasets[f"huron mosaic {'×'.join(map(str, mosaic.shape))}"] = mosaic
    work = Path(tempfile.mkdtemp(prefix="zse-codecs-"))
    try:
        rows = run(datasets, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
        Path(args.out).with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
