"""The model interface: what the pipeline needs from a model, and one predictor per worker process.

The pipeline never knows an architecture. It receives a `PredictorFactory`: a small picklable object
that travels to every Dask worker and, once per worker process, builds a `Predictor` on that worker's
device. `zse.models.registry.resolve()` turns a registry name, a zse checkpoint or a `.pt2` exported
program into such a factory.

Tensor contract (the same as for exported `.pt2` programs):
    input  float32 (N, 1, Z, Y, X) on the predictor's device, intensities mapped to [-1, 1]
    output float32 (N, 1, Z, Y, X), same shape, same range
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
    """

    name: str
    checksum: str
    margin_px: int | None
    input_zyx: tuple[int | None, int | None, int | None] | None
    translation_equivariant: bool
    core_px: int | None

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]: ...


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
