"""Part of the level-0 tasks stage (zse.pipeline.run): seam-free blending of overlapping tile outputs.

Each tile output is multiplied by a weight map and accumulated; the result is the accumulated sum
divided by the accumulated weights (normalisation by the sum, as MONAI's and nnU-Net's sliding windows
do). The weight map is zero in a margin of `margin` pixels at every tile edge (where the model saw the
tile border rather than real context) and ramps up over the rest of the overlap with a raised cosine,
so neighbouring tiles cross-fade instead of meeting at a hard line.

With a translation-equivariant model whose receptive radius is ≤ margin, every tile agrees with the
whole-volume result on its core, so the normalised sum equals the whole-volume result (up to float
rounding) whatever the weights: the weights only matter for models that are not equivariant.
"""

from __future__ import annotations

import numpy as np
import torch

from zse.pipeline.geometry import Box, Lattice


def weights_1d(tile: int, overlap: int, margin: int) -> np.ndarray:
    """Blending weights along one tile axis, float64 of length `tile`.

    Zero on the first and last `margin` pixels; on the core, a raised-cosine ramp
    w(k) = ½ − ½·cos(π·(k + 1)/(r + 1)), k = 0..r−1, over the r = overlap − 2·margin pixels that the
    neighbouring core shares, and 1 in between. Every core pixel has weight > 0.
    """
    w = np.zeros(tile, dtype=np.float64)
    core = tile - 2 * margin
    r = max(0, min(overlap - 2 * margin, core // 2))
    wc = np.ones(core, dtype=np.float64)
    if r > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 1) / (r + 1))
        wc[:r] = ramp
        wc[core - r :] = ramp[::-1]
    w[margin : margin + core] = wc
    return w


def weights_2d(lattice: Lattice) -> np.ndarray:
    """Weight map of one tile, float32 (tile, tile): outer product of `weights_1d` in y and x."""
    w = weights_1d(lattice.tile, lattice.overlap, lattice.margin)
    return np.outer(w, w).astype(np.float32)


class Merger:
    """Accumulates weighted tile outputs over a write box and normalises them.

    Shapes: the write box is (Y, X) = `box.shape`; values are float32 (Z, Y, X) torch tensors on `device`,
    Z = `n_planes`, the model output's planes (Z·sz for a z super-resolution model; the weights are y-x only).
    Tiles must be added in the same order for every block (row-major lattice order) so that the float
    sums, hence the outputs, are bit-identical whatever the block size.
    """

    def __init__(self, box: Box, n_planes: int, weight_map: torch.Tensor, device: str | torch.device = "cpu") -> None:
        self.box = box
        self.weight_map = weight_map.to(device=device, dtype=torch.float32)
        self.numerator = torch.zeros((n_planes, *box.shape), dtype=torch.float32, device=device)
        self.denominator = torch.zeros(box.shape, dtype=torch.float32, device=device)

    def add(self, tile_out: torch.Tensor, tile_box: Box) -> None:
        """Add one tile's output (Z, tile, tile), placed at `tile_box` (level-0 pixels)."""
        part = tile_box.intersect(self.box)
        if part.empty:
            return
        src = part.slices(origin=tile_box)
        dst = part.slices(origin=self.box)
        w = self.weight_map[src]
        self.numerator[(slice(None), *dst)] += tile_out[(slice(None), *src)] * w
        self.denominator[dst] += w

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (values float32 (Z, Y, X), covered bool (Y, X)); uncovered pixels hold 0."""
        covered = self.denominator > 0
        values = self.numerator / torch.where(covered, self.denominator, torch.ones_like(self.denominator))
        return values, covered
