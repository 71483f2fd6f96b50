"""Properties of the tile lattice, blocks, reflect indexing and blending weights (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zse.errors import ConfigError
from zse.pipeline.blend import Merger, weights_1d, weights_2d
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
def test_every_voxel_covered(lat: Lattice) -> None:
    total = weight_sum(lat)
    assert (total > 0).all(), "some voxel has no tile with positive weight"


@settings(max_examples=60, deadline=None)
@given(lattices(), st.integers(0, 2**32 - 1))
def test_agreeing_tiles_blend_to_what_they_agree_on(lat: Lattice, seed: int) -> None:
    """The normalised weights of the tiles covering a voxel sum to one: tiles that all hold the same field `f`
    (random, known before any weight is computed) blend, through the pipeline's Merger, back to `f`.
    Tile pixels outside the volume hold a huge value that must never reach the result."""
    f = np.random.default_rng(seed).random((2, *lat.shape_yx), dtype=np.float32)  # (Z, Y, X)
    vol = Box(0, 0, *lat.shape_yx)
    merger = Merger(vol, n_planes=2, weight_map=torch.from_numpy(weights_2d(lat)))
    for i, j in lat.all_tiles():
        tb = lat.tile_box(i, j)
        part = tb.intersect(vol)
        tile = np.full((2, lat.tile, lat.tile), 1e6, dtype=np.float32)
        tile[(slice(None), *part.slices(origin=tb))] = f[(slice(None), *part.slices())]
        merger.add(torch.from_numpy(tile), tb)
    values, covered = merger.finalize()
    assert bool(covered.all())
    np.testing.assert_allclose(values.numpy(), f, rtol=0, atol=1e-5)


def test_weight_sum_worked_example() -> None:
    """By hand: tile 8, overlap 4, margin 1 → stride 4, core 6, weights_1d = [0, ¼, ¾, 1, 1, ¾, ¼, 0]
    (½ − ½·cos(π/3) = ¼, ½ − ½·cos(2π/3) = ¾). A (1, 14) volume needs 3 tiles along x, at x = −1, 3, 7;
    the ramps of neighbouring tiles sum to 1 where they overlap; along y the single tile gives row 0 weight ¼."""
    np.testing.assert_allclose(weights_1d(8, 4, 1), [0, 0.25, 0.75, 1, 1, 0.75, 0.25, 0], atol=1e-12)
    lat = Lattice(shape_yx=(1, 14), tile=8, overlap=4, margin=1)
    assert lat.counts() == (1, 3)
    assert [lat.tile_box(0, j).x0 for j in range(3)] == [-1, 3, 7]
    along_x = [0.25, 0.75, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.75, 0.25]
    np.testing.assert_allclose(weight_sum(lat), 0.25 * np.array([along_x]), atol=1e-7)


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
