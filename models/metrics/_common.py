"""Shared input checks for the metric library (numpy only)."""

from __future__ import annotations

import numpy as np

from zse.errors import ConfigError, InputError


def as_image(image: np.ndarray, name: str = "image", ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """Return `image` as a finite numpy array with one of the allowed dimensionalities.

    Raises InputError for a non-numeric, empty, non-finite array or a wrong number of axes.
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "uifb":
        raise InputError(f"{name}: dtype {arr.dtype} is not numeric; valid: unsigned/signed integer or float")
    if arr.ndim not in ndim:
        raise InputError(f"{name}: got {arr.ndim} axes (shape {arr.shape}); valid: {' or '.join(map(str, ndim))} axes")
    if arr.size == 0:
        raise InputError(f"{name}: empty array (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise InputError when two images differ in shape."""
    if a.shape != b.shape:
        raise InputError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; they must be equal")


def dtype_range(arr: np.ndarray) -> float:
    """The data range of an integer dtype (255 for uint8); ConfigError for floats (must be given)."""
    if arr.dtype.kind in "ui":
        info = np.iinfo(arr.dtype)
        return float(info.max) - float(info.min) if arr.dtype.kind == "i" else float(info.max)
    if arr.dtype.kind == "b":
        return 1.0
    raise ConfigError(
        f"data_range is required for {arr.dtype} images (no dtype maximum); valid: a positive number, "
        "e.g. 255 for 8-bit intensities, 2 for [-1, 1]"
    )


def positive(value: float, name: str) -> float:
    """Return `value` as float, raising ConfigError unless it is finite and > 0."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ConfigError(f"{name}={value!r} is invalid; valid: a finite number > 0")
    return v
