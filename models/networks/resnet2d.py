"""`cyclegan-2d` generator (COMI, Zhang et al. 2022): a 2D ResNet run on every z plane of a tile.

`ResNet2D` maps float32 planes (P, 1, Y, X) in [-1, 1] to (P, 1, Y, X):
    stem      Conv2d k7 (1 → ngf), norm, ReLU
    down ×2   Conv2d k3 stride 2 (ngf → 2·ngf → 4·ngf), norm, ReLU
    res ×n    [Conv2d k3, norm, ReLU, Conv2d k3, norm] + identity, at 4·ngf (no ReLU after the sum)
    up ×2     nearest up-sampling to the encoder level's exact size, Conv2d k3 (4·ngf → 2·ngf → ngf), norm, ReLU
    out       Conv2d k7 (ngf → 1), tanh; with `global_residual` the input is added (the authors' Keras
              code: ``Add()([tanh(c2), img])``) and `out` starts at zero, so the untrained network is the
              identity. The output is then not clamped to [-1, 1] (the pipeline clips when quantising).
Every convolution pads with `ResNet2DConfig.padding` ("reflect": CycleGAN's reflection padding; the
authors' Keras code pads with zeros). `PlanewiseGenerator` wraps it for the pipeline's (N, 1, Z, Y, X)
tensors: planes are batched into N·Z and put back, so a plane never sees its neighbours in z.

Receptive radius in y, x (structural, `resnet2d_radius_yx`): 3 (stem) + 1 + 2 (downs) + 8·n_res (two k3
convs per block at 1/4 resolution) + 2 + 1 (up convs) + 3 (out) = 12 + 8·n_res, plus 3 from the phases of
the nearest up-sampling: 15 + 8·n_res measured by impulse (31 px for the bundled n_res 2, 87 px for COMI's 9). Down-sampling by 4 makes the output depend on the tile's
phase modulo 4: checkpoints declare the radius rounded up to a multiple of 4 (`aligned_margin`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zse.models.config import ResNet2DConfig
from zse.models.networks.discriminators import norm2d


class _Block(nn.Module):
    """Conv2d (padding k//2 in the configured mode) → norm → optional ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, cfg: ResNet2DConfig, *, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, padding_mode=cfg.padding)
        self.norm = norm2d(cfg.norm, c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(x))
        return F.relu(h) if self.relu else h


class _Residual(nn.Module):
    def __init__(self, c: int, cfg: ResNet2DConfig) -> None:
        super().__init__()
        self.a = _Block(c, c, 3, cfg)
        self.b = _Block(c, c, 3, cfg, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class ResNet2D(nn.Module):
    """COMI's / CycleGAN's ResNet generator with nearest up-sampling: (P, 1, Y, X) → (P, 1, Y, X)."""

    def __init__(self, cfg: ResNet2DConfig) -> None:
        super().__init__()
        w = cfg.ngf
        self.cfg = cfg
        self.stem = _Block(1, w, 7, cfg)
        self.down1 = _Block(w, 2 * w, 3, cfg, stride=2)
        self.down2 = _Block(2 * w, 4 * w, 3, cfg, stride=2)
        self.res = nn.Sequential(*[_Residual(4 * w, cfg) for _ in range(cfg.n_res)])
        self.up1 = _Block(4 * w, 2 * w, 3, cfg)
        self.up2 = _Block(2 * w, w, 3, cfg)
        self.out = nn.Conv2d(w, 1, 7, padding=3, padding_mode=cfg.padding)
        if cfg.global_residual:
            with torch.no_grad():
                self.out.weight.zero_()
                self.out.bias.zero_()  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.stem(x)
        h1 = self.down1(h0)
        h = self.res(self.down2(h1))
        h = self.up1(F.interpolate(h, size=h1.shape[-2:], mode="nearest"))
        h = self.up2(F.interpolate(h, size=h0.shape[-2:], mode="nearest"))
        y = torch.tanh(self.out(h))
        return x + y if self.cfg.global_residual else y


class PlanewiseGenerator(nn.Module):
    """`ResNet2D` on every z plane: float32 (N, 1, Z, Y, X) → (N, 1, Z, Y, X), planes batched as N·Z."""

    def __init__(self, cfg: ResNet2DConfig) -> None:
        super().__init__()
        self.net = ResNet2D(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, z, h, w = x.shape  # one channel: (N, 1, Z, ...) and (N·Z, 1, ...) share the memory order
        return self.net(x.reshape(n * z, 1, h, w)).reshape(n, 1, z, h, w)


def build_planewise_generator(cfg: ResNet2DConfig) -> PlanewiseGenerator:
    """A freshly initialised planewise generator (default PyTorch init; `out` zero with `global_residual`)."""
    return PlanewiseGenerator(cfg)


def resnet2d_radius_yx(cfg: ResNet2DConfig) -> int:
    """Structural receptive radius in y, x (px) of `cfg`'s generator, by impulse (see
    `zse.models.networks.generators.impulse_radius_yx`): a copy with ngf 2, no normalisation and no
    global residual, every Conv2d weight positive and bias zero, so no path cancels."""
    from zse.models.networks.generators import impulse_radius_yx

    probe = PlanewiseGenerator(cfg.model_copy(update={"ngf": 2, "norm": "none", "global_residual": False}))
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    return impulse_radius_yx(probe, levels=2, z=1, bound=12 + 8 * cfg.n_res + 4)
