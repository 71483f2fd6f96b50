"""`dualgan-3d` networks (3D-dualHRGAN, Zhou et al.): the LR→HR generator, the HR→LR degrader, the critics.

Axes: tensors are (N, C, Z, Y, X), float32; scale factors (sz, sy, sx) are output size / input size.

- `WDSRGenerator` (LR→HR, the enhancer that `zse enhance` runs): conv k3 (1 → width) → `n_blocks`
  WDSR-B residual blocks [1×1×1 expand to width·expansion, ReLU, 1×1×1 shrink to ⌈width·low_rank⌉,
  3×3×3 back to width, + input] → conv k3 (width → sz·sy·sx) → `voxel_shuffle_3d`, plus the long skip:
  the input through a fixed-size conv initialised to linear interpolation (kernel 3 along each up-sampled
  axis, 1 elsewhere), voxel-shuffled to the same grid. Every conv is weight-normalised (`WNConv3d`:
  w = g·v/‖v‖ per output channel); the last body conv starts with g = 0, so the untrained generator is
  linear interpolation at the convention's positions and training learns a correction. No normalisation
  of activations, y-x padding "reflect": the generator is translation-equivariant in y, x (tiles blend
  exactly), with structural y-x radius `wdsr_radius_yx` = n_blocks + 2 px (+1 when sy or sx > 1).
- Output convention (shared with the pipeline): output plane j comes from input plane k = j // sz and lies
  at z_k + dz·((j − k·sz + 0.5)/sz − 0.5), i.e. input plane 0 at z0 gives planes at z0 + dz·((j + 0.5)/sz − 0.5)
  (the `align_corners=False` / voxel-shuffle convention).
- `Degrader` (HR→LR): 2 × [conv k3, LeakyReLU 0.2] → conv with kernel s+2, stride s, padding 1 per axis
  (the last conv strided by the factor; LR plane k sees HR planes s·k − 1 … s·k + s), plus a fixed
  skip (the mean of the s HR planes of each LR plane); the strided conv starts at zero.
- `Critic3D`: conv k3 → LeakyReLU 0.2 → 2 × [conv k4 stride 2, LeakyReLU 0.2] → conv k3 → 1 channel; no
  normalisation, no sigmoid (WGAN-GP). `critic_score` = the mean of its output map per sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zse.models.config import WDSRConfig

_TORCH_PAD = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant"}
Triple = tuple[int, int, int]


def voxel_shuffle_3d(x: torch.Tensor, scale_zyx: Triple) -> torch.Tensor:
    """Rearrange channels into space: (N, C·sz·sy·sx, Z, Y, X) → (N, C, Z·sz, Y·sy, X·sx).

    Channel c·(sz·sy·sx) + (a·sy + b)·sx + d of input voxel (k, y, x) goes to output voxel
    (k·sz + a, y·sy + b, x·sx + d) of channel c (PixelShuffle's order, in 3D)."""
    sz, sy, sx = (int(s) for s in scale_zyx)
    n, c, nz, ny, nx = x.shape
    r = sz * sy * sx
    if c % r:
        raise ValueError(f"voxel_shuffle_3d: {c} channels are not a multiple of sz·sy·sx = {r}")
    co = c // r
    v = x.reshape(n, co, sz, sy, sx, nz, ny, nx)
    return v.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, co, nz * sz, ny * sy, nx * sx)


def _pad(x: torch.Tensor, pad: Triple, padding_z: str, padding_yx: str) -> torch.Tensor:
    pz, py, px = pad
    if py or px:
        x = F.pad(x, (px, px, py, py, 0, 0), mode=_TORCH_PAD[padding_yx])
    if pz:
        x = F.pad(x, (0, 0, 0, 0, pz, pz), mode=_TORCH_PAD[padding_z])
    return x


class WNConv3d(nn.Module):
    """Weight-normalised 3D conv with "same" padding (separate modes in z and y, x): w = g·v/‖v‖₂ per output
    channel (Salimans & Kingma, as WDSR), bias b. (N, C_in, Z, Y, X) → (N, C_out, Z, Y, X)."""

    def __init__(self, c_in: int, c_out: int, kernel: Triple, padding_z: str, padding_yx: str) -> None:
        super().__init__()
        self.kernel, self.padding_z, self.padding_yx = tuple(kernel), padding_z, padding_yx
        v = torch.empty(c_out, c_in, *kernel)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.v = nn.Parameter(v)
        self.g = nn.Parameter(v.flatten(1).norm(dim=1))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def weight(self) -> torch.Tensor:
        norm = self.v.flatten(1).norm(dim=1).clamp(min=1e-12)
        return self.v * (self.g / norm).view(-1, 1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        x = _pad(x, (k[0] // 2, k[1] // 2, k[2] // 2), self.padding_z, self.padding_yx)
        return F.conv3d(x, self.weight(), self.bias)


class WDSRBlock(nn.Module):
    """WDSR-B: x + conv3(shrink(ReLU(expand(x)))) with 1×1×1 expand/shrink and a 3×3×3 conv."""

    def __init__(self, cfg: WDSRConfig) -> None:
        super().__init__()
        w, pz, pyx = cfg.width, cfg.padding_z, cfg.padding_yx
        low = max(1, math.ceil(w * cfg.low_rank))
        self.expand = WNConv3d(w, w * cfg.expansion, (1, 1, 1), pz, pyx)
        self.shrink = WNConv3d(w * cfg.expansion, low, (1, 1, 1), pz, pyx)
        self.conv = WNConv3d(low, w, (3, 3, 3), pz, pyx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.shrink(F.relu(self.expand(x))))


def _linear_weights(s: int) -> torch.Tensor:
    """(s, 3) weights of input planes k−1, k, k+1 for output sub-plane a (position (a + 0.5)/s − 0.5)."""
    w = torch.zeros(s, 3)
    for a in range(s):
        t = (a + 0.5) / s - 0.5
        if t < 0:
            w[a, 0], w[a, 1] = -t, 1 + t
        else:
            w[a, 1], w[a, 2] = 1 - t, t
    return w


class WDSRGenerator(nn.Module):
    """LR→HR generator (see the module docstring): (N, 1, Z, Y, X) → (N, 1, Z·sz, Y·sy, X·sx), float32."""

    def __init__(self, cfg: WDSRConfig) -> None:
        super().__init__()
        self.scale = tuple(int(s) for s in cfg.scale_zyx)
        r = self.scale[0] * self.scale[1] * self.scale[2]
        pz, pyx, w = cfg.padding_z, cfg.padding_yx, cfg.width
        self.head = WNConv3d(1, w, (3, 3, 3), pz, pyx)
        self.body = nn.Sequential(*[WDSRBlock(cfg) for _ in range(cfg.n_blocks)])
        self.tail = WNConv3d(w, r, (3, 3, 3), pz, pyx)
        ks = tuple(3 if s > 1 else 1 for s in self.scale)
        self.skip = WNConv3d(1, r, ks, pz, pyx)  # type: ignore[arg-type]
        with torch.no_grad():
            self.tail.g.zero_()  # untrained: output = the skip (linear interpolation)
            lw = [_linear_weights(s) if s > 1 else torch.ones(1, 1) for s in self.scale]
            v = torch.einsum("ai,bj,ck->abcijk", *lw).reshape(r, 1, *ks)
            self.skip.v.copy_(v)
            self.skip.g.copy_(v.flatten(1).norm(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tail(self.body(self.head(x)))
        return voxel_shuffle_3d(h + self.skip(x), self.scale)  # type: ignore[arg-type]


class Degrader(nn.Module):
    """HR→LR generator: (N, 1, Z·sz, Y·sy, X·sx) → (N, 1, Z, Y, X) (see the module docstring)."""

    def __init__(self, cfg: WDSRConfig) -> None:
        super().__init__()
        self.scale = tuple(int(s) for s in cfg.scale_zyx)
        w, pz, pyx = cfg.degrader_width, cfg.padding_z, cfg.padding_yx
        self.c1 = WNConv3d(1, w, (3, 3, 3), pz, pyx)
        self.c2 = WNConv3d(w, w, (3, 3, 3), pz, pyx)
        sz, sy, sx = self.scale
        self.down = nn.Conv3d(w, 1, (sz + 2, sy + 2, sx + 2), stride=(sz, sy, sx), padding=0)
        with torch.no_grad():
            self.down.weight.zero_()
            self.down.bias.zero_()  # type: ignore[union-attr]
        self.padding_z, self.padding_yx = pz, pyx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.c2(F.leaky_relu(self.c1(x), 0.2)), 0.2)
        h = _pad(h, (1, 1, 1), self.padding_z, self.padding_yx)
        return self.down(h) + F.avg_pool3d(x, self.scale, self.scale)  # type: ignore[arg-type]


class Critic3D(nn.Module):
    """WGAN critic on volumes: (N, 1, Z, Y, X) → (N, 1, Z', Y', X') score map (Z, Y, X ≥ 8 advised)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(1, w, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(2 * w, 4 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(4 * w, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def critic_score(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Critic value per sample: the mean of its score map, shape (N,)."""
    return critic(x).flatten(1).mean(dim=1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty E[(‖∇ₓ score(x̂)‖₂ − 1)²] at x̂ = α·real + (1 − α)·fake, α (N,) in [0, 1]
    (Gulrajani et al.); differentiable w.r.t. the critic's parameters (create_graph)."""
    a = alpha.view(-1, *([1] * (real.dim() - 1))).to(real)
    xh = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    grad = torch.autograd.grad(critic_score(critic, xh).sum(), xh, create_graph=True)[0]
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def build_wdsr_generator(cfg: WDSRConfig) -> WDSRGenerator:
    """The LR→HR generator of `cfg`, freshly initialised (the untrained one interpolates linearly)."""
    return WDSRGenerator(cfg)


def build_degrader(cfg: WDSRConfig) -> Degrader:
    return Degrader(cfg)


def build_critic(cfg: WDSRConfig) -> Critic3D:
    return Critic3D(cfg.critic_width)


def wdsr_radius_yx(cfg: WDSRConfig) -> int:
    """Structural receptive radius in y, x (px) of the LR→HR generator of `cfg`, by impulse (as
    `zse.models.networks.generators.impulse_radius_yx`): a copy of width 2 with every weight positive
    and bias zero (so no path cancels or is cut by a ReLU), impulses at the centre."""
    from zse.models.networks.generators import impulse_radius_yx

    probe = WDSRGenerator(cfg.model_copy(update={"width": 2, "expansion": 1, "low_rank": 1.0}))
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, WNConv3d):
                m.v.fill_(1.0)
                m.g.copy_(m.v.flatten(1).norm(dim=1) / m.v[0].numel())
                m.bias.zero_()
    return impulse_radius_yx(probe, levels=0, z=3, bound=cfg.n_blocks + 4)
