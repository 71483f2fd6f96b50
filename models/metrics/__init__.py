"""Image-quality metrics for z-stack enhancement (numpy/scipy only; see docs/metrics.md).

2D metrics take (Y, X) planes or vertical sections (Z, X)/(Z, Y); stack helpers take (Z, Y, X); the
engine of `zse evaluate` (`evaluate_rois`) takes a list of `Roi`; its first-screen table is declared in
`summary` (`SUMMARY_METRICS`, `summary_rows`).
"""

from .engine import Roi, evaluate_rois
from .faithful import empty_planes, nearest_focus_copy, real_scores, synthetic_scores, tissue_planes
from .focus import (
    FM_T_MATCHED,
    FM_T_PAPER,
    average_gradient,
    delta_dom,
    fm,
    forward_gradient,
    gradient_histogram,
    gradient_magnitude,
)
from .information import entropy, hellinger, mutual_information
from .piqe import PiqeResult, im2double, piqe, piqe_details
from .reference import mse, pearson, psnr, rmse, ssim, ssim_map
from .seams import lattice_lines, lattice_seam_score, roi_lines, seam_score
from .spectral import SpectralCoverage, noise_sigma_immerkaer, spectral_coverage
from .stack import focal_plane, focus_curve, plane_table, reference_table, section_table, sections
from .summary import SUMMARY_METRICS, SummaryMetric, format_summary, summary_rows

__all__ = [
    "FM_T_MATCHED",
    "FM_T_PAPER",
    "PiqeResult",
    "Roi",
    "SUMMARY_METRICS",
    "SpectralCoverage",
    "SummaryMetric",
    "average_gradient",
    "delta_dom",
    "empty_planes",
    "nearest_focus_copy",
    "real_scores",
    "synthetic_scores",
    "tissue_planes",
    "entropy",
    "evaluate_rois",
    "fm",
    "focal_plane",
    "focus_curve",
    "format_summary",
    "forward_gradient",
    "gradient_histogram",
    "gradient_magnitude",
    "hellinger",
    "im2double",
    "lattice_lines",
    "lattice_seam_score",
    "mse",
    "mutual_information",
    "noise_sigma_immerkaer",
    "pearson",
    "piqe",
    "piqe_details",
    "plane_table",
    "psnr",
    "reference_table",
    "rmse",
    "roi_lines",
    "seam_score",
    "section_table",
    "sections",
    "spectral_coverage",
    "ssim",
    "ssim_map",
    "summary_rows",
]
