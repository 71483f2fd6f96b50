"""PIQE, the Perception-based Image Quality Evaluator, exactly as MATLAB's `piqe` computes it.

Reference: Venkatanath N., Praneeth D., Maruthi Chandrasekhar Bh., Channappayya S. S., Medasani S. S.,
"Blind image quality evaluation using perception based features", NCC 2015; implementation details
follow MATLAB's Image Processing Toolbox `piqe.m` (R2018b), the metric's reference implementation:

1. pad the image at the end of each axis to a multiple of 16 by replicating its edge pixels;
2. x = round(255 · im2double(I)) (uint8 → /255, uint16 → /65535, int16 → (v + 32768)/65535, floats as
   they are, assumed in [0, 1]);
3. MSCN normalisation with a 7×7 Gaussian (σ = 7/6, replicate padding): (x − μ)/(σ_local + 1);
4. per 16×16 block: active if its sample variance v > 0.1; "noticeable artifact" if any of the 11
   six-pixel segments of any of its 4 edges has sample std < 0.1; "noise" if σ_b > 2β with
   β = |σ_b − r|/max(σ_b, r), r = std(centre)/std(surround), centre = block columns 8, 9 (1-based),
   surround = the block without columns 8 and 10 (MATLAB's deletion order);
5. score = (Σ_active [artifact·(1 − v) + noise·v] + 1)/(#active + 1) · 100 ∈ [0, 100]; lower is better;
   a uniform image scores 100.

pypiqe (PyPI) differs in two ways: it scales by the image maximum instead of the dtype maximum and
pads symmetrically; it agrees with this function when max(I) equals the dtype maximum and both sides
are multiples of 16 (tested).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from zse.errors import InputError

from ._common import as_image

BLOCK = 16
_ACTIVITY_T = 0.1
_IMPAIRED_T = 0.1
_SEGMENT = 6


class PiqeResult(NamedTuple):
    """Score and block masks (each bool, shape of the unpadded input (Y, X))."""

    score: float
    activity: np.ndarray
    artifacts: np.ndarray
    noise: np.ndarray


def im2double(image: np.ndarray) -> np.ndarray:
    """MATLAB `im2double`: integers scaled by their dtype range to [0, 1], floats unchanged (float64)."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if arr.dtype == np.int16:
        return (arr.astype(np.float64) + 32768.0) / 65535.0
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    raise InputError(f"PIQE: dtype {arr.dtype} is not supported; valid: uint8, uint16, int16, bool, float")


def _gauss7() -> np.ndarray:
    x = np.arange(-3, 4, dtype=np.float64)
    k = np.exp(-(x * x) / (2.0 * (7.0 / 6.0) ** 2))
    return k / k.sum()


def _seg_std_min(edges: np.ndarray) -> np.ndarray:
    """edges (nb, 16) → the minimum sample std over the 11 six-pixel windows, shape (nb,)."""
    win = np.lib.stride_tricks.sliding_window_view(edges, _SEGMENT, axis=1)  # (nb, 11, 6)
    return win.std(axis=2, ddof=1).min(axis=1)


def piqe_details(image: np.ndarray) -> PiqeResult:
    """PIQE score with MATLAB's activity, noticeable-artifact and noise masks.

    Args:
        image: 2D grayscale (Y, X) or a vertical section (Z, X); uint8, uint16, int16, bool or float in
            [0, 1]. Any size ≥ 1×1 (padded to a multiple of 16).
    """
    arr = as_image(image, "image")
    rows, cols = arr.shape
    pr, pc = (-rows) % BLOCK, (-cols) % BLOCK
    x = np.round(255.0 * im2double(arr))
    if pr or pc:
        x = np.pad(x, ((0, pr), (0, pc)), mode="edge")
    k = _gauss7()

    def g(img: np.ndarray) -> np.ndarray:
        return ndimage.correlate1d(ndimage.correlate1d(img, k, axis=0, mode="nearest"), k, axis=1, mode="nearest")

    mu = g(x)
    sd = np.sqrt(np.abs(g(x * x) - mu * mu))
    norm = (x - mu) / (sd + 1.0)

    nby, nbx = norm.shape[0] // BLOCK, norm.shape[1] // BLOCK
    blocks = norm.reshape(nby, BLOCK, nbx, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > _ACTIVITY_T

    seg_min = np.minimum.reduce(
        [
            _seg_std_min(blocks[:, 0, :]),
            _seg_std_min(blocks[:, :, BLOCK - 1]),
            _seg_std_min(blocks[:, BLOCK - 1, :]),
            _seg_std_min(blocks[:, :, 0]),
        ]
    )
    impaired = seg_min < _IMPAIRED_T

    c1 = (BLOCK - 1 + 1) // 2  # MATLAB passes blockSize-1 = 15 → centre columns 8 and 9 (1-based)
    centre = np.concatenate([blocks[:, :, c1 - 1], blocks[:, :, c1]], axis=1)
    keep = np.ones(BLOCK, dtype=bool)
    keep[[c1 - 1, c1 + 1]] = False  # MATLAB deletes column 8, then column 9 of the rest (= original 10)
    surround = blocks[:, :, keep].reshape(len(blocks), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        sigma_b = np.sqrt(var)
        beta = np.abs(sigma_b - ratio) / np.maximum(sigma_b, ratio)
        noisy = sigma_b > 2.0 * beta

    dist = np.sum(active * (impaired * (1.0 - var) + noisy * var))
    score = float((dist + 1.0) / (np.count_nonzero(active) + 1.0) * 100.0)

    def mask(flags: np.ndarray) -> np.ndarray:
        m = np.repeat(np.repeat((flags & active).reshape(nby, nbx), BLOCK, axis=0), BLOCK, axis=1)
        return m[:rows, :cols]

    return PiqeResult(score, mask(active), mask(impaired), mask(noisy))


def piqe(image: np.ndarray) -> float:
    """PIQE score (MATLAB `piqe`; see module docstring) of a 2D image; 0 best, 100 worst."""
    return piqe_details(image).score
