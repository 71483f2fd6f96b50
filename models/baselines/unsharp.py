"""Per-plane 2-D unsharp mask: the "plain sharpening" baseline every enhancement method must beat.

y_k = x_k + amount · (x_k − G_σ ∗ x_k) for every plane k, on the [-1, 1] model range, clipped back
to [-1, 1]. G_σ is a normalised Gaussian of σ = ``sigma_px`` pixels truncated at ⌈4σ⌉ px, applied
separably in y and x with reflect padding (replicate where a tile is too small to reflect); planes
are independent (nothing happens along z).

Why it is a baseline: sharpening and noise alone raise the no-reference sharpness numbers (FM, mean
gradient) and change PIQE without recovering any out-of-focus information, so a z-stack enhancement
method that does not beat this on the same numbers has shown nothing (docs/quality.md).

Tiled inference is exact: the output at a pixel depends only on input pixels within ⌈4σ⌉ px
(``margin_px``), so with margin ≥ that radius tiles agree to float precision.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from zse.errors import ConfigError

ALGORITHM_VERSION = "unsharp/1"


def _gaussian_1d(sigma: float, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(torch.float32)


def _pad_reflect_2d(x: torch.Tensor, r: int) -> torch.Tensor:
    """Pad (B, 1, Y, X) by r on both sides of y and x: reflect, in steps, replicate if too small."""
    out = x
    while r > 0:
        step = min(r, out.shape[-2] - 1, out.shape[-1] - 1)
        if step <= 0:
            return F.pad(out, (r, r, r, r), mode="replicate")
        out = F.pad(out, (step, step, step, step), mode="reflect")
        r -= step
    return out


class UnsharpPredictor:
    """Callable on float32 (N, 1, Z, Y, X) in [-1, 1] → same shape, in [-1, 1]."""

    def __init__(self, sigma_px: float, amount: float, radius: int, device: str) -> None:
        self.amount = float(amount)
        self.radius = int(radius)
        k = _gaussian_1d(sigma_px, self.radius).to(torch.device(device))
        self.ky = k.view(1, 1, -1, 1)
        self.kx = k.view(1, 1, 1, -1)

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 5 or batch.shape[1] != 1:
            raise ConfigError(f"unsharp expects a (N, 1, Z, Y, X) tensor; got shape {tuple(batch.shape)}")
        if self.amount == 0.0:
            return batch
        n, _, nz, ny, nx = batch.shape
        x = batch.to(torch.float32).reshape(n * nz, 1, ny, nx)
        r = self.radius
        blur = F.conv2d(F.conv2d(_pad_reflect_2d(x, r), self.ky.to(x.device)), self.kx.to(x.device))
        y = x + self.amount * (x - blur)
        return y.clamp_(-1.0, 1.0).reshape(n, 1, nz, ny, nx).to(batch.dtype)


@dataclass(frozen=True)
class UnsharpFactory:
    """`PredictorFactory` of the per-plane unsharp mask (picklable).

    sigma_px: Gaussian σ of the blur that is subtracted (pixels, > 0); amount: gain of the detail
    layer (≥ 0; 0 gives the identity). margin_px = ⌈4σ⌉, the exact receptive radius.
    """

    sigma_px: float = 2.0
    amount: float = 1.0
    name: str = "unsharp"
    checksum: str = field(init=False)
    margin_px: int | None = field(init=False)
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma_px, int | float) and math.isfinite(self.sigma_px) and self.sigma_px > 0):
            raise ConfigError(f"unsharp sigma_px={self.sigma_px!r} is invalid; valid: a number > 0")
        if not (isinstance(self.amount, int | float) and math.isfinite(self.amount) and self.amount >= 0):
            raise ConfigError(f"unsharp amount={self.amount!r} is invalid; valid: a number ≥ 0")
        blob = json.dumps({"algorithm": ALGORITHM_VERSION, "sigma_px": float(self.sigma_px), "amount": float(self.amount)},
                          sort_keys=True)
        object.__setattr__(self, "checksum", hashlib.sha256(blob.encode()).hexdigest())
        object.__setattr__(self, "margin_px", int(math.ceil(4.0 * float(self.sigma_px))))

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        assert self.margin_px is not None
        return UnsharpPredictor(float(self.sigma_px), float(self.amount), self.margin_px, device)


__all__ = ["UnsharpFactory", "UnsharpPredictor"]
