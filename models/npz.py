"""Reading the ZSE-GAN dataset's z-scan stacks (.npz, key `arr_0`, (Y, X, Z) with z last). numpy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zse.errors import InputError


def load_npz_stack(path: str | Path) -> np.ndarray:
    """Load one ZSE-GAN .npz stack (key `arr_0`, (Y, X, Z)) as (Z, Y, X), same dtype."""
    p = Path(path)
    try:
        with np.load(p) as z:
            if "arr_0" not in z:
                raise InputError(f"{p}: no key 'arr_0' (keys: {list(z.keys())}); valid: ZSE-GAN .npz stacks")
            a = z["arr_0"]
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable .npz file ({exc})") from exc
    if a.ndim != 3:
        raise InputError(f"{p}: arr_0 has shape {a.shape}; valid: (Y, X, Z)")
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))
