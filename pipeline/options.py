"""The one home of the enhancement options and their defaults (a frozen pydantic model)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zse.errors import ConfigError, validation_message
from zse.pipeline.geometry import check_lattice
from zse.pipeline.io.write import check_block

SCHEMA_VERSION = 1
DEFAULT_TILE = 128
DEFAULT_BLOCK = {"cpu": 1024, "cuda": 2048}
DEFAULT_BATCH = {"cpu": 4, "cuda": 16}


class EnhanceOptions(BaseModel):
    """Options of one `zse enhance` run. Fields marked (output) change the result and enter the run hash.

    tile, overlap, margin: lattice in pixels (output); None follow the model (`zse.pipeline.run.tile_for`,
        `lattice_params`: tile DEFAULT_TILE, or larger for models with a preferred core; overlap and margin
        from the receptive radius). block: y-x side of one Dask task (changes the
    storage layout, not the values). batch_size: tiles per model call. device: "cpu" or "cuda[:i]".
    ngff: output version. skip_background: copy blocks/tiles without tissue through (output).
    tissue_threshold: a low-resolution pixel is tissue when darker than (1 − t)·background (output).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    tile: int | None = None
    overlap: int | None = Field(None, ge=0)
    margin: int | None = Field(None, ge=0)
    block: int | None = None
    batch_size: int | None = Field(None, ge=1)
    device: str = "cpu"
    ngff: Literal["0.4", "0.5"] = "0.5"
    skip_background: bool = True
    tissue_threshold: float = Field(0.08, gt=0, lt=1)

    @property
    def device_kind(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"

    def resolved_block(self) -> int:
        return self.block or DEFAULT_BLOCK[self.device_kind]

    def resolved_batch(self) -> int:
        return self.batch_size or DEFAULT_BATCH[self.device_kind]


def make_options(**kwargs: object) -> EnhanceOptions:
    """Build EnhanceOptions, turning validation errors into a one-line ConfigError."""
    try:
        opts = EnhanceOptions(**kwargs)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid enhance option: {validation_message(exc)}") from None
    if not (opts.device == "cpu" or opts.device.startswith("cuda")):
        raise ConfigError(f"--device {opts.device!r} is invalid; valid: cpu, cuda, cuda:N")
    if opts.tile is not None:
        check_lattice(opts.tile, opts.overlap, opts.margin if opts.overlap is not None else None)
    if opts.block is not None:
        check_block(opts.block)
    return opts
