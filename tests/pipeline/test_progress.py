"""Progress moves in tiles, reported by the block tasks as batches finish: in process and from Dask workers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from zse.models.baselines.identity import IdentityFactory
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.progress import TOPIC, receiving
from zse.pipeline.run import run_enhance
from zse.workflows.cluster import open_client

OPTS = {"tile": 32, "overlap": 8, "block": 64, "batch_size": 2}


def _slide(tmp_path: Path) -> Path:
    vol = np.full((3, 200, 136), 240, np.uint8)
    vol[:, 40:150, 30:100] = np.random.default_rng(0).integers(40, 120, (3, 110, 70), dtype=np.uint8)  # tissue
    return write_volume(tmp_path / "in.ome.zarr", vol, progress=False)


def test_in_process_run_reports_every_tile_batch_by_batch(tmp_path: Path) -> None:
    counts: list[int] = []
    with receiving(counts.append):
        result = run_enhance(open_image(_slide(tmp_path)), tmp_path / "o.ome.zarr", IdentityFactory(), make_options(**OPTS),
                             progress=False)
    assert result.tiles_run > 0 and result.tiles_skipped > 0  # both kinds present on this slide
    assert sum(counts) == result.tiles_run + result.tiles_skipped
    assert len(counts) >= result.tiles_run // OPTS["batch_size"]  # one report per batch, not per block


def test_the_bar_counts_tiles_with_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_enhance(open_image(_slide(tmp_path)), tmp_path / "o.ome.zarr", IdentityFactory(), make_options(**OPTS),
                         progress=True)
    err = capsys.readouterr().err
    total = result.tiles_run + result.tiles_skipped
    assert f"{total}/{total}" in err and "tile/s" in err


def test_dask_workers_send_tile_counts_to_the_client(tmp_path: Path) -> None:
    src = _slide(tmp_path)
    with open_client(device="cpu", workers=1, dashboard_address="none") as client:
        result = run_enhance(open_image(src), tmp_path / "o.ome.zarr", IdentityFactory(), make_options(**OPTS),
                             client=client, progress=False)
        total = result.tiles_run + result.tiles_skipped
        deadline = time.monotonic() + 30  # events travel worker → scheduler in batches
        got = 0
        while time.monotonic() < deadline:
            got = sum(int(msg) for _, msg in client.get_events(TOPIC))
            if got >= total:
                break
            time.sleep(0.1)
    assert got == total


def _BigTileIdentity() -> IdentityFactory:  # noqa: N802 - reads as the factory it builds
    """Identity declaring a preferred core, as the FFT deconvolution does (each tile a long computation)."""
    import dataclasses

    return dataclasses.replace(IdentityFactory(), core_px=48)


def test_a_model_with_large_tiles_reports_tile_by_tile(tmp_path: Path) -> None:
    from zse.pipeline.run import batch_for

    assert batch_for(_BigTileIdentity(), make_options()) == 1
    assert batch_for(_BigTileIdentity(), make_options(batch_size=3)) == 3  # an explicit batch is kept
    assert batch_for(IdentityFactory(), make_options()) == make_options().resolved_batch()
    counts: list[int] = []
    with receiving(counts.append):
        result = run_enhance(open_image(_slide(tmp_path)), tmp_path / "o.ome.zarr", _BigTileIdentity(),
                             make_options(block=64), progress=False)
    assert result.tiles_run >= 2
    assert sum(counts) == result.tiles_run + result.tiles_skipped
    assert counts.count(1) >= result.tiles_run  # one report per tile run
