"""Synthetic brightfield z-scans of brain sections with an optical-section ground truth (`zse synth`).

- `params`: `SynthParams` (every parameter, lengths in µm, absorption in 1/µm), `BLUR_PRESETS`, `KINDS`,
  the checks of shapes, seeds and dtypes;
- `phantom`: the tissue (`phantom_mu`: absorption μ of neurons, glia, fibres and neuropil in a section
  with soft faces), deterministic per global cell of `CELL_PX` pixels;
- `formation`: the widefield z-scan and the optical-section truth of μ through `zse.models.optics`
  (`synthesize`, `synthesize_region`, `synth_dask`, `psf_attrs`, `synth_attrs`);
- `stats`: statistics for comparing synthetic with real stacks (`volume_stats`, `sharpness_curve`).

Volumes are (Z, Y, X) uint8 or uint16 arrays; brightfield (dark tissue on a light background). The
result depends only on (shape Z, seed, parameters): any window or slab of the same volume agrees bit
for bit. Usage and the comparison with the real Huron ROIs: docs/synth.md.
"""

from zse.models.simulator.formation import psf_attrs, synth_attrs, synth_dask, synthesize, synthesize_region
from zse.models.simulator.params import (
    BLUR_PRESETS,
    CELL_PX,
    KINDS,
    SynthParams,
    check_shape,
    config_error,
    make_params,
    preset_params,
)
from zse.models.simulator.phantom import phantom_mu
from zse.models.simulator.stats import dark_object_diameters_px, sharpness_curve, volume_stats

__all__ = [
    "BLUR_PRESETS",
    "CELL_PX",
    "KINDS",
    "SynthParams",
    "check_shape",
    "config_error",
    "dark_object_diameters_px",
    "make_params",
    "phantom_mu",
    "preset_params",
    "psf_attrs",
    "sharpness_curve",
    "synth_attrs",
    "synth_dask",
    "synthesize",
    "synthesize_region",
    "volume_stats",
]
