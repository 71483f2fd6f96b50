"""What the bench's stages cost besides time: host memory (a sampling thread), device memory, CPU seconds,
and the formula for the memory one block task of zse enhance holds (`block_memory_bound`)."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zse.pipeline.geometry import Lattice


class MemorySampler:
    """Samples RSS (bytes) of this process and its children (Dask workers) every `interval` s in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak_self = 0
        self.peak_total = 0
        self.peak_child = 0
        self.base_self: int | None = None
        self.base_total: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            own = self.proc.memory_info().rss
            kids = 0
            for c in self.proc.children(recursive=True):
                try:
                    r = c.memory_info().rss
                except self._psutil.Error:
                    continue
                kids += r
                self.peak_child = max(self.peak_child, r)
        except self._psutil.Error:
            return
        self.peak_self = max(self.peak_self, own)
        self.peak_total = max(self.peak_total, own + kids)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self.base_self, self.base_total = self.peak_self, self.peak_total
        self._thread = threading.Thread(target=self._loop, daemon=True, name="zse-bench-mem")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def as_dict(self) -> dict[str, int | None]:
        return {"peak_rss_main_bytes": self.peak_self, "peak_rss_worker_bytes": self.peak_child,
                "peak_rss_total_bytes": self.peak_total, "rss_total_before_bytes": self.base_total,
                "peak_rss_increase_bytes": self.peak_total - (self.base_total or 0)}


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def sync(device: str) -> None:
    """Wait for the device's queued work (cuda); nothing on the CPU."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


def reset_device_peak(device: str) -> None:
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def device_peak(device: str) -> int | None:
    """Peak bytes torch allocated on `device` since the last reset; None on the CPU."""
    if is_cuda(device):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return None


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (this one and the Dask workers); robust to machine load."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def block_memory_bound(nz: int, block: int, lattice: Lattice, batch: int, in_bytes: int = 1, act_channels: int | None = None,
                       shape_yx: tuple[int, int] | None = None) -> dict[str, int | None]:
    """Bytes one block task holds at its peak (see BENCHMARKS.md, "Memory"), from pipeline/block.py's arrays.

    W = write side (block, clipped to the slide), R = read side (union of the tiles touching the block):
      input      Z·R²·(2·b_in)   zarr read + reflect copy (uint16: + Z·R²·4 for the int32 view)
      unit       Z·R²·4·2        to_unit float32 (and one temporary of the same size)
      merger     Z·W²·4 + W²·4   numerator and denominator: 4 B × (Z + 1) per output pixel
      batch      B·Z·T²·4·3      stacked tiles, model output, weighted tile
      model      B·Z·T²·4·2·C    activations of the widest layer (in + out), C channels
      finish     Z·W²·(4·3 + 1)  finalize values, torch.where copy, from_unit temporaries, uint8 result
    Peak ≈ input + unit + max(merger + batch + model, finish) (merger is freed before finish).
    """
    W = min(block, *(shape_yx or (block, block)))
    R = W + 2 * (lattice.tile - lattice.margin)
    T = lattice.tile
    inp = nz * R * R * 2 * in_bytes
    unit = nz * R * R * 4 * 2
    merger = nz * W * W * 4 + W * W * 4
    bat = batch * nz * T * T * 4 * 3
    model = batch * nz * T * T * 4 * 2 * act_channels if act_channels else 0
    finish = nz * W * W * 13
    return {"write_side": W, "read_side": R, "input": inp, "unit": unit, "merger": merger, "batch": bat,
            "model": model if act_channels else None, "finish": finish,
            "peak": inp + unit + max(merger + bat + model, finish)}
