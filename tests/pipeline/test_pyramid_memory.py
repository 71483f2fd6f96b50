"""Pyramid levels written by the level-0 block tasks from their block in memory (`OutputSpec.memory_levels`):
bit for bit the re-read definition (each level the 2×2 mean of the level above as stored), every task's
region its own shard at every level, and a crash between a block's levels resumes bit-identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zse_pipeline_helpers import assert_same_levels, make_input, read_levels

from zse.models.baselines.unsharp import UnsharpFactory
from zse.pipeline.geometry import indexed_block_grid
from zse.pipeline.io.ngff import ImageMeta
from zse.pipeline.io.write import OutputSpec
from zse.pipeline.pyramid import downsample_mean_yx
from zse.workflows.enhance import enhance


def _meta(shape: tuple[int, ...], dtype: str = "uint8") -> ImageMeta:
    axes = "zyx" if len(shape) == 3 else "czyx"
    return ImageMeta(shape=shape, dtype=dtype, axes=axes, voxel_size_um=(1.0, 1.0, 1.0), translation_um=(0.0, 0.0, 0.0))


@pytest.mark.parametrize(("block", "levels"), [(256, 0), (512, 1), (1024, 2), (2048, 3), (768, 0), (64, 0)])
def test_memory_levels_are_those_whose_regions_stay_chunk_multiples(block: int, levels: int) -> None:
    spec = OutputSpec(meta=_meta((3, 9000, 9000)), block=block)
    assert spec.memory_levels == levels
    for level in range(1, levels + 1):
        assert spec.level_block(level) * 2**level == block and spec.level_block(level) % spec.chunk == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6000), st.integers(1, 6000), st.sampled_from([256, 512, 1024, 2048]), st.sampled_from(["0.4", "0.5"]))
def test_each_block_owns_one_region_and_shard_per_level(ny: int, nx: int, block: int, ngff: str) -> None:
    """The image of level-0 block (i, j) at a memory level l is region (i, j) of that level's grid, it starts
    on a shard (chunk, on 0.4) boundary and it is no larger than one shard: no two tasks share a shard."""
    spec = OutputSpec(meta=_meta((3, ny, nx)), block=block, ngff=ngff)
    grid0 = dict(indexed_block_grid((ny, nx), block))
    for level in range(1, spec.memory_levels + 1):
        shape = spec.shapes[level]
        grid = dict(indexed_block_grid(shape[-2:], spec.level_block(level)))
        assert set(grid) == set(grid0)
        outer = spec.shards_for(shape, level) or spec.chunks_for(shape)
        for index, box0 in grid0.items():
            box = grid[index]
            h, w = -(-(box0.y1 - box0.y0) // 2**level), -(-(box0.x1 - box0.x0) // 2**level)  # what _write_levels writes
            assert (box.y0, box.x0) == (box0.y0 >> level, box0.x0 >> level)
            assert (box.y1 - box.y0, box.x1 - box.x0) == (h, w)
            assert box.y0 % outer[-2] == 0 and box.x0 % outer[-1] == 0
            assert box.y1 % outer[-2] == 0 or box.y1 == shape[-2]
            assert box.x1 % outer[-1] == 0 or box.x1 == shape[-1]
            if spec.shards_for(shape, level) is not None:  # one shard each (0.4: whole chunks, none shared)
                assert h <= outer[-2] and w <= outer[-1]


@pytest.mark.parametrize(("shape", "dtype", "block"), [
    ((3, 2101, 517), "uint8", 1024),   # odd sizes, two memory levels, blocks that do not divide the slide
    ((3, 1299, 1031), "uint16", 512),  # one memory level, uint16
])
def test_in_memory_levels_equal_the_re_read_definition(tmp_path: Path, shape: tuple[int, ...], dtype: str, block: int) -> None:
    src = make_input(tmp_path / "in.ome.zarr", shape, seed=11, dtype=dtype)
    out = tmp_path / "out.ome.zarr"
    enhance(src, out, UnsharpFactory(), block=block, workers=0, progress=False)
    levels = read_levels(out)
    spec_levels = OutputSpec(meta=_meta(shape, dtype), block=block).memory_levels
    assert spec_levels >= 1 and len(levels) >= spec_levels + 1
    for level in range(1, len(levels)):
        np.testing.assert_array_equal(levels[level], downsample_mean_yx(levels[level - 1]), err_msg=f"level {level}")
        arr = zarr.open_array(str(out / str(level)), mode="r")
        if arr.shards is not None and level <= spec_levels:
            assert arr.shards[-2:] == tuple(min(-(-n // arr.chunks[k]) * arr.chunks[k], block >> level)
                                            for k, n in zip((-2, -1), arr.shape[-2:], strict=True))


def test_crash_between_a_blocks_levels_resumes_bit_identical(tmp_path: Path) -> None:
    """A block task killed after level 0 but before its in-memory level 1 (markers gone, garbage in the
    region, no OME metadata): --resume builds those regions from level 0 and gives back the same bytes."""
    src = make_input(tmp_path / "in.ome.zarr", (3, 1299, 1031), seed=12)
    ref = tmp_path / "ref.ome.zarr"
    enhance(src, ref, UnsharpFactory(), block=512, workers=0, progress=False)
    out = tmp_path / "out.ome.zarr"
    shutil.copytree(ref, out)
    g = zarr.open_group(str(out), mode="r+")
    level1 = g["1"]
    for r, c in ((0, 0), (1, 1), (2, 0)):
        (out / ".zse" / "done" / "L1" / f"{r}_{c}").unlink()
        level1[..., r * 256 : (r + 1) * 256, c * 256 : (c + 1) * 256] = 7
    attrs = dict(g.attrs)
    attrs.pop("ome", None)
    attrs["zse"] = {**attrs["zse"], "status": "incomplete"}
    g.attrs.clear()
    g.attrs.update(attrs)
    result = enhance(src, out, UnsharpFactory(), block=512, workers=0, progress=False, resume=True)
    assert result.blocks_done == 0 and result.pyramid_tasks == 3
    assert_same_levels(out, ref)
    assert len(read_levels(out)) == 2
