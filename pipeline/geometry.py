"""The plan stage's geometry (zse.pipeline.run): tile and block geometry in the y-x plane, as pure functions over boxes.

Tiles always span every z plane, so all geometry here is two-dimensional (y, x), in pixels of level 0.

Vocabulary (after daisy's read/write ROIs):
- A *tile* is what the model sees: `tile` × `tile` pixels. Tiles sit on one global lattice anchored at the
  volume origin: tile (i, j) covers y in [i·s − m, i·s − m + tile) and x in [j·s − m, j·s − m + tile),
  with stride s = tile − overlap and margin m. Tiles may reach beyond the volume; those pixels are read
  with reflect padding about the volume edges.
- A tile's *core* is the part with non-zero blending weight: its tile box shrunk by the margin m on each
  side. Cores of neighbouring tiles overlap by (overlap − 2m) pixels, where their weights ramp.
- A *block* is what one Dask task does: it writes a `write_box` aligned to the output shards, runs every
  tile whose core touches the write box, and reads their union (`read_box`, which may reach beyond the
  volume). Because the lattice is global, the output never depends on the block size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from zse.errors import ConfigError


@dataclass(frozen=True, order=True)
class Box:
    """Half-open box [y0, y1) × [x0, x1) in level-0 pixels; may extend beyond the volume (negative)."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    def intersect(self, other: Box) -> Box:
        return Box(max(self.y0, other.y0), max(self.x0, other.x0), min(self.y1, other.y1), min(self.x1, other.x1))

    def union(self, other: Box) -> Box:
        return Box(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def shift(self, dy: int, dx: int) -> Box:
        return Box(self.y0 + dy, self.x0 + dx, self.y1 + dy, self.x1 + dx)

    def slices(self, origin: Box | None = None) -> tuple[slice, slice]:
        """Slices of this box inside an array whose [0, 0] is `origin`'s corner (default: absolute)."""
        oy, ox = (origin.y0, origin.x0) if origin is not None else (0, 0)
        return (slice(self.y0 - oy, self.y1 - oy), slice(self.x0 - ox, self.x1 - ox))


TILE_MIN, TILE_MAX = 8, 2048
TILE_HINT = f"{TILE_MIN} to {TILE_MAX} pixels (default 128; a tile is one model call of Z × tile × tile voxels)"


def check_lattice(tile: int, overlap: int | None = None, margin: int | None = None) -> None:
    """The one rule for the lattice's numbers (pixels): TILE_MIN ≤ tile ≤ TILE_MAX, 0 ≤ overlap < tile,
    0 ≤ margin ≤ overlap/2 (checked where given). Used by `Lattice`, the enhance options and the bench."""
    if not TILE_MIN <= tile <= TILE_MAX:
        raise ConfigError(f"--tile {tile} is invalid; valid: {TILE_HINT}")
    if overlap is not None and not 0 <= overlap < tile:
        raise ConfigError(f"--overlap {overlap} is invalid for --tile {tile}; valid: 0 ≤ overlap < tile")
    if margin is not None and overlap is not None and not 0 <= 2 * margin <= overlap:
        raise ConfigError(f"--margin {margin} with --overlap {overlap}: valid margins are 0 ≤ margin ≤ overlap/2 "
                          f"(= {overlap // 2}); raise --overlap or lower --margin")


@dataclass(frozen=True)
class Lattice:
    """The global tile lattice of a volume of `shape_yx` pixels.

    Args:
        shape_yx: volume size (Y, X) in pixels.
        tile: tile side in pixels (the model's input is (Z, tile, tile)).
        overlap: pixels shared by neighbouring tiles; stride = tile − overlap.
        margin: pixels at each tile edge with zero blending weight (≥ the model's receptive radius makes
            tiled inference equal to whole-volume inference); needs 2·margin ≤ overlap.
    """

    shape_yx: tuple[int, int]
    tile: int
    overlap: int
    margin: int

    def __post_init__(self) -> None:
        check_lattice(self.tile, self.overlap, self.margin)
        if min(self.shape_yx) < 1:
            raise ConfigError(f"volume shape (Y, X) = {self.shape_yx} is empty")

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    def counts(self) -> tuple[int, int]:
        """Number of lattice tiles along y and x needed to cover the volume with cores."""
        return (self._count(self.shape_yx[0]), self._count(self.shape_yx[1]))

    def _count(self, n: int) -> int:
        # Core of tile i covers [i·s, i·s + tile − 2m); need the last core to reach n.
        core = self.tile - 2 * self.margin
        return max(1, int(np.ceil(max(n - core, 0) / self.stride)) + 1)

    def tile_box(self, i: int, j: int) -> Box:
        y0 = i * self.stride - self.margin
        x0 = j * self.stride - self.margin
        return Box(y0, x0, y0 + self.tile, x0 + self.tile)

    def core_box(self, i: int, j: int) -> Box:
        b = self.tile_box(i, j)
        m = self.margin
        return Box(b.y0 + m, b.x0 + m, b.y1 - m, b.x1 - m)

    def _index_range(self, lo: int, hi: int, n_tiles: int) -> range:
        """Tile indices whose core [i·s, i·s + core) intersects [lo, hi)."""
        core = self.tile - 2 * self.margin
        first = max(0, -(-(lo - core + 1) // self.stride))  # ceil((lo - core + 1)/s)
        last = min(n_tiles - 1, (hi - 1) // self.stride)
        return range(first, last + 1)

    def tiles_touching(self, box: Box) -> list[tuple[int, int]]:
        """Lattice indices (i, j), row-major, of the tiles whose core intersects `box`."""
        ny, nx = self.counts()
        return [(i, j) for i in self._index_range(box.y0, box.y1, ny) for j in self._index_range(box.x0, box.x1, nx)]

    def all_tiles(self) -> Iterator[tuple[int, int]]:
        ny, nx = self.counts()
        for i in range(ny):
            for j in range(nx):
                yield (i, j)


@dataclass(frozen=True)
class Block:
    """One unit of scheduling, writing, retry and resume.

    `index` is the block's (row, col) in the block grid, `write_box` the aligned region it writes
    (inside the volume), `tiles` the lattice tiles it runs, `read_box` their union (may exceed the volume).
    """

    index: tuple[int, int]
    write_box: Box
    read_box: Box
    tiles: tuple[tuple[int, int], ...]


def indexed_block_grid(shape_yx: tuple[int, int], block: int) -> list[tuple[tuple[int, int], Box]]:
    """((row, col), write box) of `block` × `block` pixels tiling a (Y, X) plane, row-major, clipped at the
    far edges. The one place block indices are computed (blocks, done markers, pyramid regions)."""
    if block < 1:
        raise ConfigError(f"block={block} is invalid; valid: a positive number of pixels")
    ny = -(-shape_yx[0] // block)
    nx = -(-shape_yx[1] // block)
    return [
        ((by, bx), Box(by * block, bx * block, min((by + 1) * block, shape_yx[0]), min((bx + 1) * block, shape_yx[1])))
        for by in range(ny)
        for bx in range(nx)
    ]


def block_grid(shape_yx: tuple[int, int], block: int) -> list[Box]:
    """The write boxes of `indexed_block_grid`, in the same order."""
    return [box for _, box in indexed_block_grid(shape_yx, block)]


def make_blocks(lattice: Lattice, block: int) -> list[Block]:
    """All blocks of the volume with the tiles they run and the region they read (the union of those
    tiles' boxes; a block task reads only the tiles with tissue, zse.pipeline.block)."""
    out = []
    for index, wbox in indexed_block_grid(lattice.shape_yx, block):
        tiles = tuple(lattice.tiles_touching(wbox))
        rbox = lattice.tile_box(*tiles[0])
        for t in tiles[1:]:
            rbox = rbox.union(lattice.tile_box(*t))
        out.append(Block(index=index, write_box=wbox, read_box=rbox, tiles=tiles))
    return out


def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices into an axis of length `n` for positions start..stop-1, reflected about the edges.

    Matches numpy's `np.pad(mode="reflect")` (edge pixel not repeated), for any distance beyond the
    edge (reflection repeats with period 2(n−1)).
    """
    pos = np.arange(start, stop, dtype=np.int64)
    if n == 1:
        return np.zeros_like(pos)
    period = 2 * (n - 1)
    pos = np.mod(pos, period)
    return np.where(pos >= n, period - pos, pos)
