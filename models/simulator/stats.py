"""Summary statistics of z-stacks for comparing synthetic and real ones (docs/synth.md,
benchmarks/synth_vs_real.py).

Comparison with the real Huron ROIs (200 trainB files, 128×128×29, 1 µm voxels) against 24 synthetic
ROIs of the same shape (`volume_stats`), blur preset "huron" (NA 0.75, 1.4 µm step): mean 140.5 vs
136.9, median 150 vs 146, p5 53 vs 39, p95 195 vs 202; sharpest plane 14 vs 14; sharpness (mean
gradient, `sharpness_curve`) at the peak 17.1 vs 23.4, at the end planes 3.8 vs 5.8 (ends/peak 0.22 vs
0.25); dark objects' median diameter 12.2 vs 11.3 px. Full table, the "standard" preset (1 µm step) and
known gaps: docs/synth.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from zse.models.metrics import focus_curve


def sharpness_curve(volume_zyx: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude per plane (grey levels per pixel, forward differences), float64 (Z,).

    The curve of docs/synth.md's comparison: `zse.models.metrics.focus_curve` with the
    "forward-gradient" measure (not its default "gradient", central differences, which gives other
    values).
    """
    return focus_curve(volume_zyx, "forward-gradient")


def dark_object_diameters_px(plane_yx: np.ndarray, *, fraction: float = 0.45, min_area_px: int = 20) -> np.ndarray:
    """Equivalent diameters (px) of dark objects: pixels below `fraction` × the plane's 99.5th percentile,
    lightly smoothed (σ 1 px), connected components of at least `min_area_px` pixels."""
    p = ndi.gaussian_filter(np.asarray(plane_yx, dtype=np.float32), 1.0)
    mask = p < fraction * np.percentile(plane_yx, 99.5)
    labels, n = ndi.label(mask)
    if n == 0:
        return np.zeros(0)
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= min_area_px]
    return 2.0 * np.sqrt(areas / np.pi)


def volume_stats(volumes_zyx: Sequence[np.ndarray]) -> dict[str, Any]:
    """Summary statistics of a set of uint8 (Z, Y, X) volumes, for comparing synthetic and real stacks."""
    vols = [np.asarray(v) for v in volumes_zyx]
    flat = np.concatenate([v.ravel() for v in vols]).astype(np.float32)
    curves = np.stack([sharpness_curve(v) for v in vols])
    curve = curves.mean(axis=0)
    mid = vols[0].shape[0] // 2
    diam = np.concatenate([dark_object_diameters_px(v[int(np.argmax(c))]) for v, c in zip(vols, curves, strict=True)])
    return {
        "mean": float(flat.mean()),
        "percentiles": {str(q): float(np.percentile(flat, q)) for q in (1, 5, 25, 50, 75, 95, 99.5)},
        "sharpness_curve": [round(float(c), 2) for c in curve],
        "sharpest_plane": int(np.argmax(curve)),
        "end_to_peak": float((curve[0] + curve[-1]) / 2 / curve.max()),
        "mid_plane_sharpness": float(curve[mid]),
        "dark_object_diameter_px": {
            "count_per_roi": float(len(diam) / len(vols)),
            "p25": float(np.percentile(diam, 25)) if len(diam) else 0.0,
            "median": float(np.median(diam)) if len(diam) else 0.0,
            "p75": float(np.percentile(diam, 75)) if len(diam) else 0.0,
        },
    }
