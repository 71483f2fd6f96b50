"""Seam score: how much stronger the image gradient is on tile-boundary lines than elsewhere.

Lines and positions: a "line at position p" along an axis of length n is the boundary between pixel
p − 1 and pixel p (0 < p < n). The gradient across it is the forward difference |I[p] − I[p − 1]|.

The zse tile lattice (`zse.pipeline.geometry.Lattice`): tile size T, overlap O, stride S = T − O,
margin m; tile i covers [i·S − m, i·S − m + T) in y and in x, anchored at the volume origin. Its core
(non-zero blending weight) is [i·S, i·S + T − 2m); neighbouring cores overlap on the blending zone
[(i+1)·S, i·S + T − 2m) of width O − 2m where the weights ramp (`zse.pipeline.blend`).
`lattice_lines` returns, inside (0, n), for every i:

- "tiles": the tile edges i·S − m and i·S − m + T (where the model saw a border);
- "blend": the blending-zone borders = core edges i·S and i·S + T − 2m (where a tile's weight starts
  or stops; a per-tile intensity offset shows up as a step or ramp here);
- "centres": the middle of each blending zone, i·S + T − O + ⌊(O − 2m)/2⌋ (where overlap-and-crop
  stitching would cut; none when O = 2m);
- "all" (default): the union of the three. With m = 0 tile edges and core edges coincide.

For a mosaic of independently processed ROIs of side R (no overlap), the lines are the ROI borders
k·R: `roi_lines(n, R)`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from zse.errors import ConfigError, InputError

from ._common import as_image

LineSet = Literal["tiles", "blend", "centres", "all"]


def lattice_lines(n: int, tile: int = 128, overlap: int = 32, margin: int = 0, which: LineSet = "all") -> np.ndarray:
    """Sorted unique boundary positions p ∈ (0, n) of the zse tile lattice along one axis (see module doc).

    Args:
        n: axis length in pixels; tile: T > 0; overlap: 0 ≤ O < T; margin: 0 ≤ 2m ≤ O; which: line set.
    Returns: int64 array of positions.
    """
    n, tile, overlap, margin = int(n), int(tile), int(overlap), int(margin)
    if tile <= 0 or not 0 <= overlap < tile or margin < 0 or 2 * margin > overlap or n < 1:
        raise ConfigError(
            f"lattice n={n}, tile={tile}, overlap={overlap}, margin={margin} is invalid; valid: n ≥ 1, "
            "tile > 0, 0 ≤ overlap < tile, 0 ≤ 2·margin ≤ overlap"
        )
    if which not in ("tiles", "blend", "centres", "all"):
        raise ConfigError(f"which={which!r} is invalid; valid: 'tiles', 'blend', 'centres', 'all'")
    stride = tile - overlap
    core = np.arange(0, n + tile + stride, stride)  # i·S
    pos: list[np.ndarray] = []
    if which in ("tiles", "all"):
        pos += [core - margin, core - margin + tile]
    if which in ("blend", "all"):
        pos += [core, core + tile - 2 * margin]
    if which in ("centres", "all") and overlap > 2 * margin:
        pos.append(core + tile - overlap + (overlap - 2 * margin) // 2)
    p = np.unique(np.concatenate(pos)) if pos else np.zeros(0, dtype=np.int64)
    return p[(p > 0) & (p < n)].astype(np.int64)


def roi_lines(n: int, roi: int) -> np.ndarray:
    """Borders k·R (0 < k·R < n) of a mosaic of ROIs of side R placed from the origin."""
    if int(roi) < 1:
        raise ConfigError(f"roi={roi!r} is invalid; valid: an integer ≥ 1")
    return np.arange(int(roi), int(n), int(roi), dtype=np.int64)


def seam_score(image: np.ndarray, y_lines: np.ndarray | None = None, x_lines: np.ndarray | None = None) -> float:
    """Mean |forward difference| across the boundary lines over the mean elsewhere.

    y_lines are row positions (horizontal lines, differences along y), x_lines column positions
    (vertical lines, differences along x). The numerator pools the differences across all given lines;
    the denominator pools all other differences along the same axes. A seamless image gives ≈ 1; a
    step or ridge on the lines gives > 1.

    Args:
        image: 2D (Y, X) or 3D (Z, Y, X) array (3D: differences taken in every plane, pooled).
        y_lines, x_lines: positions p (boundary between p − 1 and p), e.g. from `lattice_lines`.
    Returns: the ratio (float); NaN when there are no lines or the rest has zero gradient.
    """
    arr = as_image(image, "image", (2, 3)).astype(np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    on_sum, on_n, off_sum, off_n = 0.0, 0, 0.0, 0
    for axis, lines in ((1, y_lines), (2, x_lines)):
        n = arr.shape[axis]
        d = np.abs(np.diff(arr, axis=axis))  # d[..., p-1, ...] is the difference across line p
        sel = np.zeros(n - 1, dtype=bool)
        if lines is not None and len(lines):
            p = np.asarray(lines, dtype=np.int64)
            if np.any((p <= 0) | (p >= n)):
                raise InputError(f"line positions {p[(p <= 0) | (p >= n)].tolist()} are outside (0, {n}) on axis {axis}")
            sel[p - 1] = True
        dm = np.moveaxis(d, axis, -1)
        on_sum += float(dm[..., sel].sum())
        on_n += int(dm[..., sel].size)
        off_sum += float(dm[..., ~sel].sum())
        off_n += int(dm[..., ~sel].size)
    if on_n == 0 or off_n == 0 or off_sum == 0.0:
        return float("nan")
    return (on_sum / on_n) / (off_sum / off_n)


def lattice_seam_score(
    image: np.ndarray, *, tile: int = 128, overlap: int = 32, margin: int = 0, which: LineSet = "all"
) -> float:
    """`seam_score` on the zse tile lattice (same lattice in y and x, anchored at the origin)."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"image has shape {arr.shape}; valid: (Y, X) or (Z, Y, X)")
    ny, nx = arr.shape[-2:]
    return seam_score(
        arr,
        lattice_lines(ny, tile, overlap, margin, which),
        lattice_lines(nx, tile, overlap, margin, which),
    )
