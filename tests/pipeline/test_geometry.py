"""Properties of the tile lattice, blocks, reflect indexing and blending weights (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zse.errors import ConfigError
from zse.pipeline.blend import weights_1d, weights_2d
from zse.pipeline.geometry import Box, Lattice, block_grid, make_blocks, reflect_indices


@st.composite
def lattices(draw: st.DrawFn) -> Lattice:
    tile = draw(st.integers(8, 64))
    overlap = draw(st.integers(0, tile - 1))
    margin = draw(st.integers(0, overlap // 2))
    shape = (draw(st.integers(1, 300)), draw(st.integers(1, 300)))
    return Lattice(shape_yx=shape, tile=tile, overlap=overlap, margin=margin)


def weight_sum(lat: Lattice) -> np.ndarray:
    """Sum of all tile weight maps over the volume, brute force."""
    acc = np.zeros(lat.shape_yx)
    w = weights_2d(lat).astype(np.float64)
    vol = Box(0, 0, *lat.shape_yx)
    for i, j in lat.all_tiles():
        tb = lat.tile_box(i, j)
        part = tb.intersect(vol)
        if not part.empty:
            acc[part.slices()] += w[part.slices(origin=tb)]
    return acc


@settings(max_examples=150, deadline=None)
@given(lattices())
def test_every_voxel_covered_and_normalised_weights_sum_to_one(lat: Lattice) -> None:
    total = weight_sum(lat)
    assert (total > 0).all(), "some voxel has no tile with positive weight"
    # Normalised weights of the tiles covering a voxel sum to one.
    w = weights_2d(lat).astype(np.float64)
    vol = Box(0, 0, *lat.shape_yx)
    acc = np.zeros(lat.shape_yx)
    for i, j in lat.all_tiles():
        tb = lat.tile_box(i, j)
        part = tb.intersect(vol)
        if not part.empty:
            acc[part.slices()] += w[part.slices(origin=tb)] / total[part.slices()]
    np.testing.assert_allclose(acc, 1.0, rtol=1e-12)


@settings(max_examples=150, deadline=None)
@given(lattices())
def test_last_tile_needed(lat: Lattice) -> None:
    """The lattice has no superfluous row/column: dropping the last one leaves voxels uncovered."""
    ny, nx = lat.counts()
    core = lat.tile - 2 * lat.margin
    if ny > 1:
        assert (ny - 2) * lat.stride + core < lat.shape_yx[0]
    if nx > 1:
        assert (nx - 2) * lat.stride + core < lat.shape_yx[1]


@settings(max_examples=100, deadline=None)
@given(lattices(), st.integers(16, 200))
def test_blocks_partition_volume_and_run_exactly_the_touching_tiles(lat: Lattice, block: int) -> None:
    blocks = make_blocks(lat, block)
    cover = np.zeros(lat.shape_yx, dtype=int)
    for b in blocks:
        cover[b.write_box.slices()] += 1
        brute = [(i, j) for i, j in lat.all_tiles() if not lat.core_box(i, j).intersect(b.write_box).empty]
        assert list(b.tiles) == brute
        for t in b.tiles:  # read box holds every tile the block runs
            tb = lat.tile_box(*t)
            assert tb.union(b.read_box) == b.read_box
    assert (cover == 1).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(-100, 100), st.integers(0, 100))
def test_reflect_indices_match_numpy_reflect(n: int, start: int, length: int) -> None:
    stop = start + length
    pad = max(0, -start, stop - n) + 1
    ref_axis = np.pad(np.arange(n), pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad, dtype=int)
    expected = ref_axis[start + pad : stop + pad]
    np.testing.assert_array_equal(reflect_indices(start, stop, n), expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(8, 128), st.data())
def test_weights_zero_in_margin_positive_in_core_symmetric(tile: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, tile - 1))
    margin = data.draw(st.integers(0, overlap // 2))
    w = weights_1d(tile, overlap, margin)
    assert (w[:margin] == 0).all() and (w[tile - margin :] == 0).all()
    assert (w[margin : tile - margin] > 0).all()
    np.testing.assert_allclose(w, w[::-1])
    assert w.max() <= 1.0


def test_block_grid_clips_far_edges() -> None:
    boxes = block_grid((300, 130), 128)
    assert boxes[-1] == Box(256, 128, 300, 130)
    assert len(boxes) == 3 * 2


@pytest.mark.parametrize(("tile", "overlap", "margin"), [(2, 0, 0), (32, 32, 0), (32, 8, 5), (32, -1, 0)])
def test_bad_lattice_parameters_raise_config_error(tile: int, overlap: int, margin: int) -> None:
    with pytest.raises(ConfigError):
        Lattice(shape_yx=(100, 100), tile=tile, overlap=overlap, margin=margin)
