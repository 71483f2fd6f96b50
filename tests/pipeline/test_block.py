"""Block-level pieces: reflect-padded reads and the pyramid's integer mean (fast paths vs definitions)."""

from __future__ import annotations

import numpy as np
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from zse.pipeline.block import read_region
from zse.pipeline.geometry import Box, reflect_indices
from zse.pipeline.pyramid import downsample_mean_yx


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(-40, 40), st.integers(-40, 40), st.integers(1, 60), st.integers(1, 60))
def test_read_region_equals_reflect_index_definition(ny, nx, y0, x0, h, w) -> None:
    rng = np.random.default_rng(ny * 31 + nx)
    vol = rng.integers(0, 256, (2, ny, nx), dtype=np.uint8)
    arr = zarr.create_array(store={}, shape=vol.shape, dtype="uint8", chunks=(2, 7, 7))
    arr[...] = vol
    box = Box(y0, x0, y0 + h, x0 + w)
    expected = vol[:, reflect_indices(box.y0, box.y1, ny)][:, :, reflect_indices(box.x0, box.x1, nx)]
    np.testing.assert_array_equal(read_region(arr, box), expected)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([np.uint8, np.uint16]), st.integers(1, 20), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_integer_mean_downsampling_matches_float_definition(dtype, ny, nx, seed) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(dtype).max, (2, ny, nx), endpoint=True).astype(dtype)
    ap = np.pad(a, [(0, 0), (0, ny % 2), (0, nx % 2)], mode="edge").astype(np.float64)
    ref = np.rint(0.25 * (ap[..., 0::2, 0::2] + ap[..., 1::2, 0::2] + ap[..., 0::2, 1::2] + ap[..., 1::2, 1::2])).astype(dtype)
    np.testing.assert_array_equal(downsample_mean_yx(a), ref)



def test_cpu_block_tasks_share_the_workers_cores(monkeypatch) -> None:
    """A block task alone in a worker uses all the worker's cores (a one-block slide is not left on one
    thread); one that starts while another runs gets half (torch's thread count is per OS thread, as
    Dask's task threads are); in process (no worker plugin) torch's setting is kept."""
    import threading

    import torch

    from zse.pipeline.block import WORKER_CORES_ENV, share_cores

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with share_cores("cpu"):  # no worker plugin: untouched
            assert torch.get_num_threads() == 1
        monkeypatch.setenv(WORKER_CORES_ENV, "4")
        entered, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def other_task() -> None:
            with share_cores("cpu"):
                seen.append(torch.get_num_threads())
                entered.set()
                release.wait(10)

        with share_cores("cpu"):
            assert torch.get_num_threads() == 4
            t = threading.Thread(target=other_task)
            t.start()
            assert entered.wait(10)
            assert seen == [2]
            release.set()
            t.join(10)
            assert torch.get_num_threads() == 4
        with share_cores("cuda:0"):  # GPU tasks: the GPU lock serialises compute, threads stay
            assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
