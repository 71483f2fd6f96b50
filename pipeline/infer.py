"""The model interface: what the pipeline needs from a model, and one predictor per worker process.

The pipeline never knows an architecture. It receives a `PredictorFactory`: a small picklable object
that travels to every Dask worker and, once per worker process, builds a `Predictor` on that worker's
device. `zse.models.registry.resolve()` turns a registry name, a zse checkpoint or a `.pt2` exported
program into such a factory.

Tensor contract (the same as for exported `.pt2` programs):
    input  float32 (N, 1, Z, Y, X) on the predictor's device, intensities mapped to [-1, 1]
    output float32 (N, 1, Z·sz, Y, X), same range; sz = 1 (the same shape) unless the factory declares
           `scale_zyx` = (sz, 1, 1) (z super-resolution, `output_scale`; zse.pipeline.zscale)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class PredictorFactory(Protocol):
    """Picklable description of a model; `build` is called once per worker process.

    Attributes:
        name: what the user asked for (registry name or file name), for provenance.
        checksum: sha256 (hex) identifying weights and configuration; goes into the run record,
            so `--resume` with another model is refused.
        margin_px: receptive-field radius of the model in y and x, in pixels, or None if unknown.
            The default overlap and blending margin follow it (zse.pipeline.run.lattice_params).
        input_zyx: the (Z, Y, X) tile the model accepts, None per axis where any size goes; None when
            every axis is free (only exported programs with static dimensions fix any).
        translation_equivariant: True when the model is a pure convolution in y, x (no per-tile
            statistics): then tiled = untiled at the default overlap (the oracle tests).
        core_px: None for the pipeline's default tile (128), or the core side (px, tile minus overlap)
            the model runs best at when --tile is not given: FFT deconvolution, whose cost is per tile,
            asks for large tiles (zse.pipeline.run.tile_for).

    Optional attribute (absent = (1, 1, 1); read only through `output_scale`):
        scale_zyx: tuple[int, int, int], output size / input size per axis (z, y, x). (sz, 1, 1) with
            sz ≥ 1 is supported: the predictor maps (N, 1, Z, Y, X) to (N, 1, Z·sz, Y, X) and the output
            has Z·sz planes at z voxel size dz/sz (zse.pipeline.zscale). Lateral super-resolution
            (sy or sx ≠ 1) is not.
    """

    name: str
    checksum: str
    margin_px: int | None
    input_zyx: tuple[int | None, int | None, int | None] | None
    translation_equivariant: bool
    core_px: int | None

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]: ...


def output_scale(factory: PredictorFactory) -> int:
    """The z up-sampling factor sz ≥ 1 of `factory` (its `scale_zyx` = (sz, 1, 1); absent: 1).

    Raises ConfigError for anything else: lateral super-resolution (sy or sx ≠ 1) is not supported.
    """
    from zse.errors import ConfigError

    raw = getattr(factory, "scale_zyx", None)
    if raw is None:
        return 1
    scale = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
    if len(scale) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in scale):
        raise ConfigError(f"model {factory.name}: scale_zyx {raw!r} is invalid; valid: three whole numbers ≥ 1 (z, y, x)")
    if scale[1:] != (1, 1):
        raise ConfigError(f"model {factory.name} has scale_zyx {scale}; zse enhance supports z super-resolution only "
                          "(scale_zyx (sz, 1, 1), sz ≥ 1): lateral super-resolution (y or x) is not supported")
    return int(scale[0])


_CACHE: dict[tuple[str, str], Callable[[torch.Tensor], torch.Tensor]] = {}
_CACHE_LOCK = threading.Lock()


def get_predictor(factory: PredictorFactory, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the predictor for `factory` on `device`, building it once per process."""
    key = (factory.checksum, device)
    with _CACHE_LOCK:
        predictor = _CACHE.get(key)
        if predictor is None:
            predictor = factory.build(device)
            _CACHE[key] = predictor
    return predictor


def check_device(device: str) -> None:
    """Refuse `cuda[:i]` where no GPU is visible, with what to do instead (ConfigError)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        from zse.errors import ConfigError

        raise ConfigError(f"--device {device}: no CUDA GPU is visible here (torch {torch.__version__}); use --device cpu")
