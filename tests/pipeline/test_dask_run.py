"""The Dask path: blocks as tasks on a real LocalCluster; the model is built once per worker process."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np

from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.run import run_enhance
from zse.workflows.cluster import open_client


@dataclass(frozen=True)
class CountingFactory:
    """Identity model that records every build (one line per build, with the pid) in `log`."""

    log: str
    name: str = "counting-identity"
    margin_px: int | None = 0
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None
    checksum: str = hashlib.sha256(b"counting").hexdigest()

    def build(self, device: str):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return lambda x: x * 1.0


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_blocks_run_on_local_cluster_model_built_once_per_worker(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 256, (3, 200, 260), dtype=np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, progress=False)
    log = tmp_path / "builds.log"
    factory = CountingFactory(str(log))
    with open_client(device="cpu", workers=2) as client:
        summary = run_enhance(open_image(src), tmp_path / "out.ome.zarr", factory,
                              make_options(tile=32, overlap=8, block=64, skip_background=False), client=client, progress=False)
        worker_pids = set(client.run(os.getpid).values())
    assert summary.blocks_done == summary.blocks_total == 4 * 5
    pids = log.read_text().split()
    assert len(pids) == len(set(pids)), f"a worker built the model more than once: {pids}"
    # The client builds it once too: run_enhance checks the model on one tile before it writes anything.
    assert set(map(int, pids)) <= worker_pids | {os.getpid()} and pids.count(str(os.getpid())) == 1
    np.testing.assert_array_equal(open_image(tmp_path / "out.ome.zarr").levels[0][...], vol)
