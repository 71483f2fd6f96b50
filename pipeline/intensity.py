"""Mapping stored intensities to the model range [-1, 1] and back.

uint8: v/127.5 − 1 (the ZSE-GAN notebook's (v/255 − 0.5)/0.5); uint16: v/32767.5 − 1. Back:
(y + 1)·half_range, rounded to nearest, clipped to the dtype's range. An identity model therefore gives
back the input exactly. This is the one home of the rule: training data, the pipeline, baselines
and benchmarks all call it.

torch is imported inside the tensor functions only: `half_range` and `SUPPORTED_DTYPES` serve the
torch-free readers (zse.pipeline.io).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zse.errors import InputError

if TYPE_CHECKING:
    import torch

SUPPORTED_DTYPES = ("uint8", "uint16")


def half_range(dtype: np.dtype | str) -> float:
    """(max + 0) / 2 of an integer dtype: 127.5 for uint8, 32767.5 for uint16."""
    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED_DTYPES:
        raise InputError(f"dtype {dt.name} is not supported; valid: {', '.join(SUPPORTED_DTYPES)}")
    return float(np.iinfo(dt).max) / 2.0


def to_unit(values: torch.Tensor, dtype: np.dtype | str) -> torch.Tensor:
    """Integer intensities (any shape) to float32 in [-1, 1]."""
    import torch

    h = half_range(dtype)
    return values.to(torch.float32) / h - 1.0


def from_unit(values: torch.Tensor, dtype: np.dtype | str) -> torch.Tensor:
    """Float values in [-1, 1] back to integer intensities: rounded, clipped; returns the integer dtype."""
    import torch

    h = half_range(dtype)
    top = float(np.iinfo(np.dtype(dtype)).max)
    out = values.to(torch.float32, copy=True).add_(1.0).mul_(h).round_().clamp_(0.0, top)
    torch_dtype = torch.uint8 if np.dtype(dtype) == np.uint8 else torch.int32
    return out.to(torch_dtype)
