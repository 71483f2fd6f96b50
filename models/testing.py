"""Stand-ins for tests, benchmarks and `zse bench`: a random-weight conv net and a synthetic slide.

- `ConvNetFactory`: a PredictorFactory of `layers` random 3×3×3 convolutions (receptive radius =
  `layers` px), picklable, so Dask workers build it like any registry model; options for autocast
  precision, channels-last memory format and torch.compile (`wrap_predictor`).
- `make_slide`: a synthetic brightfield z-stack, uint8 (Z, Y, X), with tissue and empty background.
- `rel_l2`: relative L2 error of one tensor against a reference.

Nothing here is a trained model: the numbers it produces only measure speed and exactness.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def make_convnet(width: int, layers: int, seed: int) -> torch.nn.Sequential:
    """`layers` Conv3d(3×3×3, padding 1) of `width` channels (1 in, 1 out), He-initialised from `seed`;
    ReLU between them, tanh at the end; in eval mode on the CPU."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    mods: list[torch.nn.Module] = []
    chans = [1] + [width] * (layers - 1) + [1]
    for k in range(layers):
        conv = torch.nn.Conv3d(chans[k], chans[k + 1], 3, padding=1)
        with torch.no_grad():
            fan_in = chans[k] * 27
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            assert conv.bias is not None
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.01)
        mods.append(conv)
        mods.append(torch.nn.ReLU() if k < layers - 1 else torch.nn.Tanh())
    return torch.nn.Sequential(*mods).eval()


@dataclass(frozen=True)
class ConvNetFactory:
    """Random-weight 3D conv net (stand-in for zse-gan): `layers` 3×3×3 convs of `width` channels.

    Output = clamp(x + 0.25·net(x), −1, 1) on float32 (N, 1, Z, Y, X) in [-1, 1]. Receptive radius =
    `layers` pixels, so with margin ≥ layers tiled inference equals whole-volume inference. Options:
    autocast precision `amp` (None, "bf16", "fp16"), `channels_last` (channels_last_3d memory format),
    `compile` (torch.compile).
    """

    width: int = 8
    layers: int = 4
    seed: int = 0
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        return f"convnet:{self.width}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(f"zse-bench-convnet-v1:{self.width}:{self.layers}:{self.seed}:{self.amp}".encode()).hexdigest()

    @property
    def margin_px(self) -> int | None:
        return self.layers

    @property
    def input_zyx(self) -> tuple[int | None, int | None, int | None] | None:
        return None  # any tile

    @property
    def translation_equivariant(self) -> bool:
        return True  # convolutions only

    @property
    def core_px(self) -> int | None:
        return None  # the pipeline's default tile

    def flops_per_voxel(self) -> int:
        chans = [1] + [self.width] * (self.layers - 1) + [1]
        return sum(2 * 27 * chans[k] * chans[k + 1] for k in range(self.layers))

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        import torch

        net = make_convnet(self.width, self.layers, self.seed).to(device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # missing from torch's stubs
        model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(net) if self.compile else net

        def convnet_predictor(x: torch.Tensor) -> torch.Tensor:
            return torch.clamp(x + 0.25 * model(x), -1.0, 1.0)

        return wrap_predictor(convnet_predictor, device, self.amp, self.channels_last)


def wrap_predictor(fn: Callable[[torch.Tensor], torch.Tensor], device: str, amp: str | None,
                   channels_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` under autocast `amp` (None, "bf16", "fp16") and/or with channels_last_3d input; the output is
    float32, contiguous. Without either option, `fn` itself."""
    import torch

    if not amp and not channels_last:
        return fn
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
    dev_type = torch.device(device).type

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        ctx = torch.autocast(dev_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            out = fn(batch)
        return out.float().contiguous()

    return predictor


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖₂ / ‖b‖₂ over all elements, in float64 (b's norm floored at 1e-30)."""
    import torch

    return float(torch.linalg.vector_norm(a.double() - b.double()) / torch.linalg.vector_norm(b.double()).clamp_min(1e-30))


def make_slide(shape_zyx: tuple[int, int, int], seed: int = 0, tissue_fraction: float = 0.6) -> np.ndarray:
    """Synthetic brightfield z-stack, uint8 (Z, Y, X): dark blurred blobs (cells) on a light background.

    The tissue is an ellipse covering about `tissue_fraction` of the slide; the rest is empty background
    (~235 ± 2), so tissue skipping has something to skip. Each cell is in focus at its own z and blurs
    with |z − z0|.
    """
    from scipy import ndimage

    nz, ny, nx = shape_zyx
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    # ellipse of area tissue_fraction·Y·X: π·a·b = f·Y·X with a/b = Y/X
    a = math.sqrt(tissue_fraction / math.pi) * ny
    b = math.sqrt(tissue_fraction / math.pi) * nx
    inside = ((yy - ny / 2) / a) ** 2 + ((xx - nx / 2) / b) ** 2 <= 1.0
    texture = ndimage.gaussian_filter(rng.standard_normal((ny, nx)).astype(np.float32), 6) * 6
    od = np.zeros((nz, ny, nx), dtype=np.float32)
    n_cells = int(inside.sum() / 300)
    cy = rng.integers(0, ny, n_cells)
    cx = rng.integers(0, nx, n_cells)
    keep = inside[cy, cx]
    cy, cx = cy[keep], cx[keep]
    cz = rng.integers(0, nz, cy.size)
    amp = rng.uniform(0.5, 1.5, cy.size).astype(np.float32)
    np.add.at(od, (cz, cy, cx), amp * 60.0)
    od = ndimage.gaussian_filter(od, sigma=(2.5, 2.5, 2.5), truncate=3.0)
    out = 235.0 - (inside * (40.0 + texture))[None] - od * 40.0
    out += rng.normal(0.0, 2.0, size=out.shape).astype(np.float32)
    return np.round(out).clip(0, 255).astype(np.uint8)
