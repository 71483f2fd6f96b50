"""What one `zse bench` run measures (`BenchConfig`), the model it runs (`make_factory`) and its lattice.

The lattice of every stage and of the projection comes from the enhance options and
`zse.pipeline.run.lattice_params` (the one home of the default overlap and margin), so the naive loop,
MONAI and the projection cover exactly the tiles `zse enhance` covers.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zse.errors import ConfigError
from zse.models.testing import ConvNetFactory, wrap_predictor
from zse.workflows.bench.keys import JSON_KEYS

__all__ = ["CLUSTERS", "JSON_KEYS", "STAGES", "BenchConfig", "bench_lattice", "enhance_default", "make_factory"]

if TYPE_CHECKING:
    import torch

    from zse.pipeline.geometry import Lattice
    from zse.pipeline.infer import PredictorFactory
    from zse.pipeline.options import EnhanceOptions

STAGES = ("model", "pipeline", "pipeline-inproc", "naive", "monai", "host")
CLUSTERS = ("local", "local-cuda")


def enhance_default(name: str) -> Any:
    """The default of a `zse.workflows.enhance.enhance` keyword (the bench's defaults are zse enhance's)."""
    from zse.workflows.enhance import enhance

    return inspect.signature(enhance).parameters[name].default


class BenchConfig(BaseModel):
    """One bench run. shape: (Z, Y, X) voxels of the synthetic slide (unused with `input`); tile, overlap,
    block (px) and batch_size (tiles): as `zse enhance`'s, None = its defaults (tile and overlap follow
    the model: `resolved`); amp: None (fp32), "bf16" or "fp16"; cluster, workers, threads_per_worker,
    gpu_tasks_per_worker: the Dask stage's cluster (`zse.workflows.cluster.open_client`; gpu_tasks_per_worker
    defaults to zse enhance's --gpu-tasks); repeat: timed repeats of the model-only stage; stages: a subset
    of STAGES; input: an OME-Zarr to bench on instead of the synthetic slide; host_shape: (Z, Y, X) of the
    synthetic slide of the host stage (zse.workflows.bench.host; the input with `input`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "cpu"
    model: str = "convnet"
    shape: tuple[int, int, int] = (29, 1024, 1024)
    tile: int | None = None
    overlap: int | None = None
    block: int | None = None
    batch_size: int | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    workers: int | None = None
    threads_per_worker: int | None = None
    cluster: Literal["local", "local-cuda"] = "local"
    gpu_tasks_per_worker: int = Field(default_factory=lambda: int(enhance_default("gpu_tasks")), ge=1)
    repeat: int = 3
    stages: tuple[str, ...] = STAGES
    input: Path | None = None
    host_shape: tuple[int, int, int] = (29, 2048, 2048)

    def options(self) -> EnhanceOptions:
        """The enhance options of this run (zse.pipeline.options.make_options: the one validation)."""
        from zse.pipeline.options import make_options

        return make_options(tile=self.tile, overlap=self.overlap, block=self.block, batch_size=self.batch_size,
                            device=self.device)

    def batch(self) -> int:
        """Tiles per model call: --batch-size or zse enhance's default for the device."""
        return self.options().resolved_batch()

    def resolved(self, factory: PredictorFactory, shape_yx: tuple[int, int]) -> BenchConfig:
        """This config with tile and overlap as zse enhance sets them for `factory` on a (Y, X) slide."""
        lat = bench_lattice(shape_yx, self, factory)
        return self.model_copy(update={"tile": lat.tile, "overlap": lat.overlap})


def bench_lattice(shape_yx: tuple[int, int], cfg: BenchConfig, factory: PredictorFactory) -> Lattice:
    """The tile lattice zse enhance uses for a (Y, X) slide with `cfg`'s tile and overlap (None: the model's
    defaults, zse.pipeline.run.tile_for and lattice_params) and `factory`'s margin."""
    from zse.pipeline.geometry import Lattice
    from zse.pipeline.run import lattice_params, tile_for

    opts = cfg.options()
    overlap, margin = lattice_params(factory, opts, shape_yx)
    return Lattice(shape_yx=shape_yx, tile=tile_for(factory, opts, shape_yx), overlap=overlap, margin=margin)


@dataclass(frozen=True)
class WrappedFactory:
    """A registry factory with bench options (autocast `amp`, channels-last input) applied."""

    inner: PredictorFactory
    amp: str | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def checksum(self) -> str:
        return hashlib.sha256(f"{self.inner.checksum}:{self.amp}:{self.channels_last}".encode()).hexdigest()

    @property
    def margin_px(self) -> int | None:
        return self.inner.margin_px

    @property
    def input_zyx(self) -> tuple[int | None, int | None, int | None] | None:
        return self.inner.input_zyx

    @property
    def translation_equivariant(self) -> bool:
        return self.inner.translation_equivariant

    @property
    def core_px(self) -> int | None:
        return self.inner.core_px

    @property
    def scale_zyx(self) -> tuple[int, int, int]:
        return tuple(getattr(self.inner, "scale_zyx", (1, 1, 1)))  # type: ignore[return-value]

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return wrap_predictor(self.inner.build(device), device, self.amp, self.channels_last)


def make_factory(spec: str, *, amp: str | None = None, channels_last: bool = False,
                 compile: bool = False) -> PredictorFactory:
    """`convnet[:WIDTH]` (the stand-in zse.models.testing.ConvNetFactory) or anything
    `zse.models.registry.resolve` accepts, with the bench's precision and memory-format options."""
    if amp not in (None, "fp32", "bf16", "fp16"):
        raise ConfigError(f"--amp {amp!r} is invalid; valid: fp32, bf16, fp16")
    amp = None if amp == "fp32" else amp
    if spec == "convnet" or spec.startswith("convnet:"):
        try:
            width = int(spec.split(":", 1)[1]) if ":" in spec else 8
        except ValueError:
            raise ConfigError(f"--model {spec!r}: expected convnet or convnet:WIDTH (e.g. convnet:16)") from None
        return ConvNetFactory(width=width, amp=amp, channels_last=channels_last, compile=compile)
    from zse.models.registry import resolve

    inner = resolve(spec)
    if compile:
        raise ConfigError("--compile is only implemented for the bench stand-in convnet")
    return WrappedFactory(inner, amp, channels_last) if (amp or channels_last) else inner
