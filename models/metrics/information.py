"""Histogram-based comparisons of two images: mutual information and Hellinger distance (numpy only).

Both take arrays of any equal shape (2D planes or 3D stacks) and use `bins` equal bins over
`value_range` (default: the dtype range for integers, e.g. 256 bins of width 1 on [0, 256) for uint8;
for floats the joint min/max of both inputs).
"""

from __future__ import annotations

import numpy as np

from zse.errors import ConfigError

from ._common import as_image, same_shape


def _range(a: np.ndarray, b: np.ndarray, value_range: tuple[float, float] | None) -> tuple[float, float]:
    if value_range is not None:
        lo, hi = float(value_range[0]), float(value_range[1])
        if not hi > lo:
            raise ConfigError(f"value_range={value_range!r} is invalid; valid: (low, high) with high > low")
        return lo, hi
    if a.dtype.kind in "ui" and b.dtype.kind in "ui":
        info = np.iinfo(np.promote_types(a.dtype, b.dtype))
        return float(info.min), float(info.max) + 1.0
    lo = float(min(a.min(), b.min()))
    hi = float(max(a.max(), b.max()))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _bins(a: np.ndarray, b: np.ndarray, bins: int | None, lo: float, hi: float) -> int:
    if bins is None:
        # integers: one bin per value up to 256 bins; floats: 256 bins
        return int(min(256.0, hi - lo)) if a.dtype.kind in "ui" and b.dtype.kind in "ui" else 256
    if int(bins) < 1:
        raise ConfigError(f"bins={bins!r} is invalid; valid: an integer ≥ 1")
    return int(bins)


def _bin_index(v: np.ndarray, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices as numpy.histogram assigns them (half-open bins, the last one closed) and the
    in-range mask."""
    vf = v.astype(np.float64)
    ok = (vf >= lo) & (vf <= hi)
    idx = np.floor((vf - lo) * (n / (hi - lo))).astype(np.int64)
    return np.clip(idx, 0, n - 1), ok


def _joint_histogram(a: np.ndarray, b: np.ndarray, n: int, lo: float, hi: float) -> np.ndarray:
    """(n, n) joint histogram counts of paired values (equal to numpy.histogram2d with these bins, up to
    floating-point ties at bin edges), via one bincount."""
    ia, oka = _bin_index(a, n, lo, hi)
    ib, okb = _bin_index(b, n, lo, hi)
    ok = oka & okb
    return np.bincount(ia[ok] * n + ib[ok], minlength=n * n).reshape(n, n).astype(np.float64)


def entropy(image: np.ndarray, *, bins: int | None = None, value_range: tuple[float, float] | None = None) -> float:
    """Shannon entropy H = −Σ p log2 p (bits) of the intensity histogram (same binning as `mutual_information`)."""
    a = as_image(image, "image", (1, 2, 3))
    lo, hi = _range(a, a, value_range)
    h, _ = np.histogram(a, bins=_bins(a, a, bins, lo, hi), range=(lo, hi))
    p = h[h > 0] / h.sum()
    return float(-(p * np.log2(p)).sum())


def mutual_information(
    x: np.ndarray, y: np.ndarray, *, bins: int | None = None, value_range: tuple[float, float] | None = None
) -> float:
    """Mutual information I(X; Y) = Σ p(a, b) log2[p(a, b) / (p(a) p(b))] in bits, from the joint
    histogram of co-located pixel values (Cover & Thomas, Elements of Information Theory, eq. 2.28).
    I(X; X) = H(X); 0 for independent images. Not normalised (skimage's
    `normalized_mutual_information` is (H(X)+H(Y))/H(X,Y), a different quantity)."""
    a = as_image(x, "x", (1, 2, 3))
    b = as_image(y, "y", (1, 2, 3))
    same_shape(a, b)
    lo, hi = _range(a, b, value_range)
    n = _bins(a, b, bins, lo, hi)
    joint = _joint_histogram(a.ravel(), b.ravel(), n, lo, hi)
    pxy = joint / joint.sum()
    px = pxy.sum(axis=1, keepdims=True)
    py = pxy.sum(axis=0, keepdims=True)
    nz = pxy > 0
    return float(np.sum(pxy[nz] * np.log2(pxy[nz] / (px @ py)[nz])))


def hellinger(
    x: np.ndarray, y: np.ndarray, *, bins: int | None = None, value_range: tuple[float, float] | None = None
) -> float:
    """Hellinger distance between the normalised intensity histograms p of x and q of y:
    H = √(1 − Σ √(p_i q_i)) (Hellinger 1909; the form with BC = Σ√(p q), the Bhattacharyya
    coefficient). 0 for identical histograms, 1 for disjoint ones. Shapes of x and y may differ."""
    a = as_image(x, "x", (1, 2, 3))
    b = as_image(y, "y", (1, 2, 3))
    lo, hi = _range(a, b, value_range)
    n = _bins(a, b, bins, lo, hi)
    p, _ = np.histogram(a, bins=n, range=(lo, hi))
    q, _ = np.histogram(b, bins=n, range=(lo, hi))
    bc = np.sum(np.sqrt((p / p.sum()) * (q / q.sum())))
    return float(np.sqrt(max(0.0, 1.0 - bc)))
