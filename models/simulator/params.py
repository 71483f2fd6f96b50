"""Parameters of the synthetic z-scans (`zse.models.simulator`): `SynthParams`, the blur presets, the
cell size that owns random numbers, and the checks of shapes, seeds and dtypes.

Axes and units: volumes are (Z, Y, X) ``volume_zyx``; ``voxel_size_um`` = (z, y, x) in µm is what the
metadata records (z: the nominal stage step); ``z_step_um`` is the physical distance between focal
planes in the sample, used for the phantom's z sampling and the PSF defocus (a nominal 1 µm stage step
in a mounted section is ~1.3–1.5 µm in the sample, so ``z_step_um`` is also the knob for blur strength,
together with ``na``). Absorption μ is in 1/µm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zse.errors import ConfigError, validation_message
from zse.models import optics

CELL_PX = 256
"""Side (pixels) of the global cells that own random numbers and of the per-cell convolution windows."""

KINDS = ("z-scan", "ground-truth")
"""What can be rendered: the widefield z-scan and its optical-section ground truth."""

BLUR_PRESETS: dict[str, tuple[float, float]] = {
    # name: (na, z_step_um)
    "mild": (0.5, 1.0),
    "standard": (0.75, 1.0),
    "huron": (0.75, 1.4),  # best match to the real Huron ROIs' per-plane sharpness curve (docs/synth.md)
    "strong": (0.75, 2.0),
}


class SynthParams(BaseModel):
    """Every parameter of the phantom and of the image formation (frozen; unknown keys are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    na: float = Field(default=0.75, gt=0, lt=1.0, description="widefield objective NA (dry)")
    z_step_um: float = Field(default=1.0, gt=0, description="distance between focal planes in the sample, µm")
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    wavelength_um: float = Field(default=optics.DEFAULT_WAVELENGTH_UM, gt=0)
    refractive_index: float = Field(default=1.0, ge=1.0, description="medium of the widefield defocus")
    truth_na: float = Field(default=optics.HIGH_NA, gt=0)
    truth_refractive_index: float = Field(default=optics.HIGH_NA_INDEX, ge=1.0)
    section_um: float = Field(default=20.0, gt=0, description="section thickness, µm")
    section_wobble_um: float = Field(default=3.0, ge=0, description="std of the section mid-plane's axial offset over the slide, µm")
    background: float = Field(default=0.95, gt=0, le=1.0, description="I0 as a fraction of the dtype maximum")
    photons: float = Field(default=20000.0, gt=0, description="electrons at I0 (shot noise)")
    read_noise: float = Field(default=0.5, ge=0, description="read noise σ in 8-bit grey levels")
    neuropil_mu: float = Field(default=0.002, ge=0, description="mean neuropil absorption, 1/µm")
    granule_mu: float = Field(default=1.2, ge=0, description="absorption of neuropil granules per unit of texture excess")
    neurons_per_mm2: float = Field(default=1900.0, ge=0)
    glia_per_mm2: float = Field(default=1500.0, ge=0)
    fibres_per_mm2: float = Field(default=12000.0, ge=0)


# ---------------------------------------------------------------------------------------------- checks


def config_error(what: str, given: Any, valid: str) -> ConfigError:
    """The one-line ConfigError "WHAT 'GIVEN' is invalid; valid: VALID"."""
    return ConfigError(f"{what} {given!r} is invalid; valid: {valid}")


def check_shape(shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """Validate a (Z, Y, X) shape: Z ≥ 3, Y, X ≥ 1, integers."""
    try:
        shape = tuple(int(s) for s in shape_zyx)
    except (TypeError, ValueError):
        raise config_error("shape", tuple(shape_zyx), "three integers Z,Y,X with Z >= 3 and Y, X >= 1") from None
    if len(shape) != 3 or shape[0] < 3 or shape[1] < 1 or shape[2] < 1:
        raise config_error("shape", shape, "three integers Z,Y,X with Z >= 3 and Y, X >= 1")
    return shape  # type: ignore[return-value]


def make_params(**kwargs: Any) -> SynthParams:
    """Build `SynthParams`, turning validation errors into one-line ConfigErrors."""
    try:
        params = SynthParams(**kwargs)
    except ValidationError as exc:
        raise ConfigError(f"invalid synth option: {validation_message(exc)}") from None
    if not all(v > 0 and math.isfinite(v) for v in params.voxel_size_um):
        raise config_error("voxel_size_um", params.voxel_size_um, "three positive sizes (z, y, x) in µm")
    if params.voxel_size_um[1] != params.voxel_size_um[2]:
        raise config_error("voxel_size_um", params.voxel_size_um, "square pixels (y == x)")
    if params.truth_na >= params.truth_refractive_index:
        raise config_error("truth_na", params.truth_na, f"< truth_refractive_index ({params.truth_refractive_index})")
    if params.na >= params.refractive_index:
        raise config_error("na", params.na, f"< refractive_index ({params.refractive_index})")
    return params


def preset_params(
    blur: str | None = None,
    *,
    na: float | None = None,
    z_step_um: float | None = None,
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
) -> SynthParams:
    """`SynthParams` of a blur preset (`BLUR_PRESETS`; None = "standard"); `na` (objective NA) and
    `z_step_um` (focal step in the sample, µm), when given, replace the preset's values."""
    if blur is not None and blur not in BLUR_PRESETS:
        raise config_error("blur", blur, ", ".join(sorted(BLUR_PRESETS)))
    preset_na, preset_dz = BLUR_PRESETS[blur or "standard"]
    return make_params(
        na=na if na is not None else preset_na,
        z_step_um=z_step_um if z_step_um is not None else preset_dz,
        voxel_size_um=tuple(voxel_size_um),
    )


def check_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of `dtype` when it is uint8 or uint16; ConfigError otherwise."""
    dt = np.dtype(dtype)
    if dt.name not in ("uint8", "uint16"):
        raise config_error("dtype", dt.name, "uint8, uint16")
    return dt


def check_seed(seed: Any) -> int:
    """`seed` as an int when it is an integer ≥ 0 (bool refused); ConfigError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise config_error("seed", seed, "an integer >= 0")
    return int(seed)


def check_kind(kind: str) -> str:
    """`kind` when it is one of `KINDS`; ConfigError otherwise."""
    if kind not in KINDS:
        raise config_error("kind", kind, ", ".join(KINDS))
    return kind
