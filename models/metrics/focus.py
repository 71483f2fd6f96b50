"""No-reference sharpness measures: FM (frequency domain), ΔDoM, gradient statistics (numpy only).

Images are 2D arrays (Y, X) or vertical sections (Z, X)/(Z, Y), any numeric dtype. All measures are
computed on the raw intensity values as given (uint8 0..255 for the ZSE-GAN data, brightfield: tissue
dark on a light background); no inversion or optical-density conversion is applied.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from zse.errors import ConfigError

from ._common import as_image, positive

#: Threshold divisor of De & Masilamani (2013) as published (M/1000).
FM_T_PAPER = 1000.0
#: Divisor at which FM on the Huron ROIs matches the values printed in the ZSE-GAN paper (field notes).
FM_T_MATCHED = 150.0


def fm(image: np.ndarray, t: float = FM_T_PAPER) -> float:
    """Frequency-domain image sharpness measure FM (De & Masilamani, Procedia Eng. 64:149–158, 2013).

    Algorithm (their §3): F = fftshift(fft2(I)) of the image as float64 raw intensities; AF = |F|;
    M = max(AF); FM = #{AF > M / t} / (rows · cols).

    Representation: the raw intensities (uint8 values 0..255 for the Huron data, as the authors'
    MATLAB code reads them). For a non-negative image M is the DC term Σ I, so FM depends on the
    overall brightness: a brighter background raises the threshold and lowers FM; inverted or
    optical-density images give 4–15× different values. Only compare FM between images in the same
    representation and of similar mean intensity.

    Args:
        image: 2D array, any numeric dtype.
        t: threshold divisor (published 1000; ≈150 reproduces the ZSE-GAN paper's values on its data).
    Returns: FM in [0, 1] (float). 0 for an all-zero image.
    """
    arr = as_image(image, "image").astype(np.float64)
    t = positive(t, "t")
    af = np.abs(np.fft.fftshift(np.fft.fft2(arr)))
    m = af.max()
    if m == 0.0:
        return 0.0
    return float(np.count_nonzero(af > m / t) / af.size)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """|∇I| = √((∂I/∂y)² + (∂I/∂x)²) with central differences (one-sided at the borders), as
    `numpy.gradient` computes them, on the raw intensities. Returns float64, same shape as `image`."""
    arr = as_image(image, "image").astype(np.float64)
    gy, gx = np.gradient(arr)
    return np.hypot(gy, gx)


def average_gradient(image: np.ndarray) -> float:
    """Average absolute gradient: mean over pixels of |∇I| (see `gradient_magnitude`), in intensity
    units per pixel. The ZSE-GAN paper (Table 2) reports it as a sharpness score: higher is sharper."""
    return float(gradient_magnitude(image).mean())


def forward_gradient(image: np.ndarray) -> float:
    """Mean |∇I| with forward differences, in float32, over the (Y − 1, X − 1) pixels that have both a
    right and a lower neighbour; intensity units per pixel. The sharpness of the synthetic-vs-real
    comparison (`zse.models.simulator.sharpness_curve`, docs/synth.md). Not interchangeable with
    `average_gradient` (central differences, one-sided at the borders, float64): the two stencils weigh
    spatial frequencies differently, so their values differ; docs/synth.md's numbers are this one's."""
    arr = as_image(image, "image").astype(np.float32)
    gy = np.diff(arr, axis=0)[:, :-1]
    gx = np.diff(arr, axis=1)[:-1, :]
    return float(np.sqrt(gy * gy + gx * gx).mean())


def gradient_histogram(
    image: np.ndarray, *, bins: int = 64, max_value: float = 128.0, density: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of |∇I| (ZSE-GAN paper Fig. 6): `bins` equal bins on [0, max_value]; values above
    max_value fall into the last bin. Returns (counts or density (bins,), edges (bins + 1,))."""
    if int(bins) < 1:
        raise ConfigError(f"bins={bins!r} is invalid; valid: an integer ≥ 1")
    max_value = positive(max_value, "max_value")
    g = np.minimum(gradient_magnitude(image), max_value)
    counts, edges = np.histogram(g, bins=int(bins), range=(0.0, max_value), density=density)
    return counts.astype(np.float64), edges


def delta_dom(
    image: np.ndarray,
    *,
    data_range: float | None = None,
    width: int = 2,
    sharpness_threshold: float = 2.0,
    edge_threshold: float = 0.1,
) -> float:
    """ΔDoM sharpness (Kumar, Chen & Doermann, "Sharpness estimation for document and scene images",
    ICPR 2012).

    Steps, per direction (x shown; y is the transpose):
      1. I = image / data_range (so thresholds are on a [0, 1] scale); Im = 3×3 median filter of I.
      2. Difference of differences with step 2: ΔDoM_x(i, j) = Im(i, j+2) − 2·Im(i, j) + Im(i, j−2).
      3. S_x(i, j) = Σ_{|k|≤w} |ΔDoM_x(i, j+k)| / Σ_{|k|≤w} |I(i, j+k) − I(i, j+k−1)|, w = `width`.
      4. Edge pixels: |Sobel_x(I)| > edge_threshold (scipy's unnormalised 3×3 Sobel, ≈ 8× the slope
         per pixel: 0.1 ↔ 3.2 grey levels/px in 8 bit); an edge pixel is sharp if S_x ≥ `sharpness_threshold`.
         The edge threshold is our choice: with a tiny one (1e−4, used by some re-implementations) the
         1/255 quantisation steps in smooth regions count as sharp edges and blur can raise the score.
      5. R_x = #sharp edge pixels / #edge pixels (0 when there are no edges).
    Score = √(R_x² + R_y²) ∈ [0, √2]; higher is sharper. Very sensitive to noise (field notes).

    Args:
        image: 2D array; data_range: defaults to the dtype maximum for integers, else the image max.
    """
    arr = as_image(image, "image")
    if data_range is None:
        data_range = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(np.max(np.abs(arr)) or 1.0)
    scale = positive(data_range, "data_range")
    if int(width) < 1:
        raise ConfigError(f"width={width!r} is invalid; valid: an integer ≥ 1")
    img = arr.astype(np.float64) / scale
    med = ndimage.median_filter(img, size=3, mode="nearest")
    ratios = []
    win = np.ones(2 * int(width) + 1)
    for axis in (0, 1):
        # work along the last axis: rows of `a` run in the direction of the derivative
        a = np.moveaxis(img, axis, -1)
        m = np.pad(np.moveaxis(med, axis, -1), [(0, 0), (2, 2)], mode="edge")
        dom = m[:, 4:] - 2.0 * m[:, 2:-2] + m[:, :-4]
        diff = np.abs(np.diff(a, axis=-1, prepend=a[:, :1]))
        num = ndimage.convolve1d(np.abs(dom), win, axis=-1, mode="nearest")
        den = ndimage.convolve1d(diff, win, axis=-1, mode="nearest")
        s = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        edges = np.abs(ndimage.sobel(a, axis=-1, mode="nearest")) > edge_threshold
        n_edges = int(edges.sum())
        ratios.append(float(np.count_nonzero(edges & (s >= sharpness_threshold)) / n_edges) if n_edges else 0.0)
    return float(np.hypot(ratios[0], ratios[1]))
