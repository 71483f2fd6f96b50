"""Pack the Huron training split into one LZMA file that fits the device machine's 64 MiB transfer limit.

Usage (here):   python scripts/device/pack_huron.py ../shared/data/zse-gan-huron .devdata/huron.xz --val-fraction 0.2 --keep-val 2
Usage (device): python scripts/device/pack_huron.py --unpack .devdata/huron.xz /tmp/huron
The split is zse.models.data.split_names(names, val_fraction, seed=0): the held-out validation stacks
(except `keep_val` of them, for the training's fixed validation picture) stay behind.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import pickle
from pathlib import Path

import numpy as np


def pack(src: Path, dst: Path, val_fraction: float, keep_val: int) -> None:
    from zse.models.data import split_names

    names = sorted(p.name for p in (src / "trainB").glob("*.npz"))
    train, val = split_names(names, val_fraction, 0)
    keep = sorted(val)[:keep_val]
    stacks = {n: np.load(src / "trainB" / n)["arr_0"] for n in train + keep}
    tifs = {f"{d}/{p.name}": p.read_bytes() for d in ("trainA2D", "trainA29") for p in sorted((src / d).glob("*.tif"))}
    payload = {"stacks": stacks, "tifs": tifs, "split": {"train": train, "val": keep, "held_out": sorted(set(val) - set(keep))}}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(dst, "wb", preset=6) as f:
        pickle.dump(payload, f, protocol=5)
    print(f"{dst}: {dst.stat().st_size / 1e6:.1f} MB, {len(train)} train + {len(keep)} val stacks, {len(val) - len(keep)} held out")


def unpack(src: Path, dst: Path) -> None:
    with lzma.open(src, "rb") as f:
        payload = pickle.load(f)  # our own file, made by pack() above
    (dst / "trainB").mkdir(parents=True, exist_ok=True)
    for n, a in payload["stacks"].items():
        buf = io.BytesIO()
        np.savez(buf, arr_0=a)
        (dst / "trainB" / n).write_bytes(buf.getvalue())
    for rel, data in payload["tifs"].items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(data)
    (dst / "split.json").write_text(json.dumps({"train": payload["split"]["train"], "val": payload["split"]["val"]}))
    print(f"unpacked {len(payload['stacks'])} stacks into {dst}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--unpack", action="store_true")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--keep-val", type=int, default=2)
    a = ap.parse_args()
    unpack(a.src, a.dst) if a.unpack else pack(a.src, a.dst, a.val_fraction, a.keep_val)
