"""Stage 4 of the pipeline: the model interface and batched inference on tiles.

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
            The default blending margin is taken from it.
        translation_equivariant: True when the model is a pure convolution in y, x (no per-tile
            statistics); used only for documentation and warnings.
    """

    name: str
    checksum: str
    margin_px: int | None

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
