"""Mapping stored intensities to the model range [-1, 1] and back.

uint8: v/127.5 − 1 (the ZSE-GAN notebook's (v/255 − 0.5)/0.5); uint16: v/32767.5 − 1. Back:
(y + 1)·half_range, rounded to nearest, clipped to the dtype's range. An identity model therefore gives
back the input exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from zse.errors import InputError

SUPPORTED_DTYPES = ("uint8", "uint16")


def half_range(dtype: np.dtype | str) -> float:
    """(max + 0) / 2 of an integer dtype: 127.5 for uint8, 32767.5 for uint16."""
    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED_DTYPES:
        raise InputError(f"dtype {dt.name} is not supported; valid: {', '.join(SUPPORTED_DTYPES)}")
    return float(np.iinfo(dt).max) / 2.0


def to_unit(values: torch.Tensor, dtype: np.dtype | str) -> torch.Tensor:
    """Integer intensities (any shape) to float32 in [-1, 1]."""
    h = half_range(dtype)
    return values.to(torch.float32) / h - 1.0


def from_unit(values: torch.Tensor, dtype: np.dtype | str) -> torch.Tensor:
    """Float values in [-1, 1] back to integer intensities: rounded, clipped; returns the integer dtype."""
    h = half_range(dtype)
    top = float(np.iinfo(np.dtype(dtype)).max)
    out = values.to(torch.float32, copy=True).add_(1.0).mul_(h).round_().clamp_(0.0, top)
    torch_dtype = torch.uint8 if np.dtype(dtype) == np.uint8 else torch.int32
    return out.to(torch_dtype)
