"""3D U-Net generator of `unet3d-gan` (after WFCON-Net's 3D U-Net GAN; configured by `UNetConfig`).

Input and output: float32 (N, 1, Z, Y, X) in [-1, 1] (the output may leave the range slightly; the
pipeline clips when it quantises). Any Z ≥ 1 works (down-sampling in z rounds up, up-sampling resizes to
the encoder level's exact size); Y and X must be divisible by 2^(levels − 1) for the tiled result to
equal the whole-volume one (the stride-2 phases), which the default tile 128 and overlaps that are
multiples of 8 satisfy.

Presets: `unet3d-gan-wfcon` is the reference (4 down-sampling blocks, instance norm, zero padding,
concatenated skips: per-tile statistics, so tiles seam); `unet3d-gan-cpu` and `unet3d-gan` are the
seam-safe variants that ship (no normalisation, reflect padding in y, x, additive skips, receptive
radius `structural_radius_yx` inside the margin the pipeline uses by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zse.models.config import UNetConfig
from zse.models.networks.generators import PadConv3d, make_norm3d


class LevelBlock(nn.Module):
    """`convs` × [PadConv3d k3 → norm → LeakyReLU 0.2]; with `residual`, the block's input (projected
    by a 1×1×1 conv when the width changes) is added before the last activation."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(cfg.convs):
            self.convs.append(PadConv3d(c_in if i == 0 else c_out, c_out, 3, 1, None, cfg.padding_z, cfg.padding_yx))
            self.norms.append(make_norm3d(cfg.norm, c_out))
        self.residual = cfg.residual_blocks
        self.proj: nn.Module = nn.Conv3d(c_in, c_out, 1) if (self.residual and c_in != c_out) else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = norm(conv(h))
            if i < last or not self.residual:
                h = self.act(h)
        if self.residual:
            h = self.act(h + self.proj(x))
        return h


class UNet3D(nn.Module):
    """forward: float32 (N, 1, Z, Y, X) → (N, 1, Z, Y, X). See `UNetConfig` for the layout."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = list(cfg.widths)
        n_down = len(w) - 1
        self.down_z = tuple(list(cfg.down_z[:n_down]) + [False] * max(0, n_down - len(cfg.down_z)))
        self.enc0 = LevelBlock(1, w[0], cfg)
        self.downs = nn.ModuleList()
        self.encs = nn.ModuleList()
        for lvl in range(n_down):
            self.downs.append(_Down(w[lvl], w[lvl], self.down_z[lvl], cfg))
            self.encs.append(LevelBlock(w[lvl], w[lvl + 1], cfg))
        self.ups = nn.ModuleList()
        self.decs = nn.ModuleList()
        for lvl in reversed(range(n_down)):
            self.ups.append(PadConv3d(w[lvl + 1], w[lvl], 3, 1, None, cfg.padding_z, cfg.padding_yx))
            c_in = 2 * w[lvl] if cfg.skip == "concat" else w[lvl]
            self.decs.append(LevelBlock(c_in, w[lvl], cfg))
        self.conv_out = nn.Conv3d(w[0], 1, 1)
        if cfg.global_residual:  # the untrained network is the identity
            for p in self.conv_out.parameters():
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc0(x)
        skips = [h]
        for down, enc in zip(self.downs, self.encs, strict=True):
            h = enc(down(h))
            skips.append(h)
        skips.pop()  # the bottom level is h itself
        for up, dec in zip(self.ups, self.decs, strict=True):
            s = skips.pop()
            h = up(F.interpolate(h, size=tuple(s.shape[2:]), mode="nearest"))
            h = dec(torch.cat([h, s], dim=1) if self.cfg.skip == "concat" else h + s)
        out = self.conv_out(h)
        return x + out if self.cfg.global_residual else out


class _Down(nn.Module):
    """Conv k3, stride (2 or 1, 2, 2) → LeakyReLU 0.2: the down-sampling block."""

    def __init__(self, c_in: int, c_out: int, down_z: bool, cfg: UNetConfig) -> None:
        super().__init__()
        self.conv = PadConv3d(c_in, c_out, 3, (2 if down_z else 1, 2, 2), None, cfg.padding_z, cfg.padding_yx)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def build_unet(cfg: UNetConfig) -> UNet3D:
    """A freshly initialised U-Net (PyTorch's default init; conv_out zero with a global residual)."""
    return UNet3D(cfg)
