"""The pyramid tasks stage (zse.pipeline.run): pyramid levels, each built from the previous one (mean 2×2 in y, x; z kept).

Each task writes one aligned region (a whole shard) of level l+1 from the matching 2× region of level l,
so the model runs once per block and a crash resumes level by level.
"""

from __future__ import annotations

import numpy as np

from zse.pipeline.geometry import Box


def downsample_mean_yx(a: np.ndarray) -> np.ndarray:
    """Mean over 2×2 windows in the last two axes, (…, Y, X) → (…, ⌈Y/2⌉, ⌈X/2⌉), same dtype.

    At an odd far edge the window holds the pixels that exist (1 or 2), so the mean is not pulled toward
    zero. Integer results are rounded half to even.
    """
    y, x = a.shape[-2:]
    py, px = y % 2, x % 2
    if py or px:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, py), (0, px)], mode="edge")
    if np.issubdtype(a.dtype, np.unsignedinteger) and a.dtype.itemsize <= 2:
        # exact integer sums, then round half to even: the same result as np.rint(sum / 4), faster
        v = a.astype(np.uint32)
        total = v[..., 0::2, 0::2] + v[..., 1::2, 0::2] + v[..., 0::2, 1::2] + v[..., 1::2, 1::2]
        q, r = total >> 2, total & 3
        q += (r > 2) | ((r == 2) & (q & 1 == 1))
        return q.astype(a.dtype)
    v = a.astype(np.float64)
    out = 0.25 * (v[..., 0::2, 0::2] + v[..., 1::2, 0::2] + v[..., 0::2, 1::2] + v[..., 1::2, 1::2])
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(a.dtype)
    return out.astype(a.dtype)


def write_level_region(src, dst, box: Box) -> None:
    """Write `box` (pixels of the destination level) of `dst` from the 2× region of `src` (zarr arrays).

    Arrays are (…, Y, X); everything before Y, X (c, z) is copied whole.
    """
    sy, sx = src.shape[-2:]
    region = src[..., 2 * box.y0 : min(2 * box.y1, sy), 2 * box.x0 : min(2 * box.x1, sx)]
    dst[(..., *box.slices())] = downsample_mean_yx(np.asarray(region))
