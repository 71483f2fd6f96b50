"""2D PatchGAN discriminators of ZSE-GAN (D_S on sharp sections, D_B on blurred planes).

`PatchDiscriminator2D`: float (N, 1, H, W) → patch scores (N, 1, H/16 + 1, W/16 + 1) for 4 layers
(9×9 on 128×128 planes, 9×2 on 128×29 vertical sections). Layers: n_layers × [Conv2d k4 s2 p1,
norm from the second layer on, LeakyReLU 0.2], then Conv2d k2 s1 p1 to one channel, no activation
(raw scores: LSGAN targets 1/0, or logits for the log loss). Widths ndf·2^i. Zero padding and default
PyTorch init, as the notebook. Discriminators are used in training only, so per-instance
normalisation here never affects tiled inference.
"""

from __future__ import annotations

import torch
from torch import nn

from zse.errors import ConfigError
from zse.models.config import DiscriminatorConfig


def norm2d(kind: str, channels: int) -> nn.Module:
    """The 2D normalisation layer of a config's `norm` value ("instance", "batch", "none")."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown 2D norm '{kind}' (valid: instance, batch, none)")


class PatchDiscriminator2D(nn.Module):
    """PatchGAN on 2D slices: (N, 1, H, W) float → (N, 1, H', W') scores."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(cfg.n_layers):
            c_out = cfg.ndf * 2**i
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            if i > 0:
                layers.append(norm2d(cfg.norm, c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        if cfg.head == "pix2pix":  # 70×70 receptive field for n_layers 3 (pix2pix, CycleGAN, COMI)
            layers += [nn.Conv2d(c_in, 2 * c_in, 4, 1, 1), norm2d(cfg.norm, 2 * c_in), nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(2 * c_in, 1, 4, 1, 1))
        else:
            layers.append(nn.Conv2d(c_in, 1, 2, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_discriminator(cfg: DiscriminatorConfig) -> PatchDiscriminator2D:
    """A freshly initialised discriminator (default PyTorch init)."""
    return PatchDiscriminator2D(cfg)
