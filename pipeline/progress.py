"""Progress in tiles, reported by the block tasks as their batches finish, wherever they run.

A block task calls `report_tiles(n)` after each model batch (and once for the tiles it copies through).
In a Dask worker the count travels as a structured event (`Worker.log_event`, topic `TOPIC`) to the
client, which subscribes while the level-0 tasks run (`tile_progress`); in this process (no Dask) it
goes straight to the bar. The bar counts tiles, with tqdm's rate (tiles/s) and ETA, so a slide that is
one block still moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

TOPIC = "zse-tiles"
"""Dask event topic of the tile counts."""

_LOCAL: list[Callable[[int], None]] = []  # receivers in this process (in-process runs, and tests)


def report_tiles(n: int) -> None:
    """Count `n` finished tiles (run or copied through): to the client from a Dask worker, else to this
    process's receivers. Never raises: progress must not fail a block."""
    if n <= 0:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a Dask task: this process's receivers
        for receiver in list(_LOCAL):
            receiver(n)
        return
    try:
        worker.log_event(TOPIC, int(n))
    except Exception:  # noqa: BLE001 - a lost progress event is not an error
        return


@contextmanager
def receiving(receiver: Callable[[int], None]) -> Iterator[None]:
    """Send the tile counts reported in this process to `receiver` while the block is open."""
    _LOCAL.append(receiver)
    try:
        yield
    finally:
        _LOCAL.remove(receiver)


@contextmanager
def tile_progress(client: Any, total: int, *, desc: str = "enhance", enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A tile bar of `total` tiles fed by `report_tiles` from the workers of `client` (None: this process).

    Yields `advance(n)` for counts known here; the bar never passes `total` and is filled on a clean exit
    (events still in flight when the last result arrives are not waited for)."""
    bar = tqdm(total=total, desc=desc, unit="tile", disable=not enabled, dynamic_ncols=True, smoothing=0.1)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            step = min(int(n), total - bar.n)
            if step > 0:
                bar.update(step)

    def on_event(event: Any) -> None:  # (timestamp, message) from the scheduler
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(msg, int):
            advance(msg)

    subscribed = False
    try:
        with receiving(advance):
            if client is not None:
                client.subscribe_topic(TOPIC, on_event)
                subscribed = True
            yield advance
        advance(total)
    finally:
        if subscribed:
            try:
                client.unsubscribe_topic(TOPIC)
            except Exception:  # noqa: BLE001 - the cluster may already be going down
                pass
        bar.close()
