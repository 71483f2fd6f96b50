"""3D generators of ZSE-GAN (G_S: blurred z-scan → sharp volume, G_B: sharp → blurred).

Both generators share one architecture, `Generator3D`, defined directly in zse's axis order:
input and output are float32 (N, 1, Z, Y, X) in [-1, 1], same shape. The authors' notebook works on
(N, C, Y, X, Z); its kernels are re-ordered to (z, y, x) here (its Conv3d k(5,5,6) on (Y,X,Z) is
k(6,5,5) on (Z,Y,X)), which is the same network up to a permutation of weight axes.

Variants are `GeneratorConfig` values:
    `zse-gan-paper` (notebook): instance norm, batch-norm residual blocks, zero padding, transposed
        convolutions (z 29→15→8→16→32, the depth-6 output kernel crops back to 29); 1,472,209
        parameters, ~31 GFLOP per 29×128×128 tile. Per-tile statistics → seams when tiled.
    `zse-gan` (default): no normalisation, reflect padding in y, x, conv-then-resize upsampling with
        additive skips; a pure convolution in y, x with a small receptive field (see
        `receptive_radius_yx`), so overlapping tiles blend exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zse.errors import ConfigError
from zse.models.config import GeneratorConfig, Triple

_TORCH_PAD = {"reflect": "reflect", "replicate": "replicate"}


def make_norm3d(kind: str, channels: int) -> nn.Module:
    """InstanceNorm3d (affine=False, per-sample statistics), BatchNorm3d or Identity."""
    if kind == "instance":
        return nn.InstanceNorm3d(channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm '{kind}' (valid: instance, batch, none)")


class PadConv3d(nn.Module):
    """Conv3d with separate padding modes in z and in (y, x).

    With zero padding in both, this is exactly `nn.Conv3d(..., padding=padding)` (same parameters,
    same state-dict keys `conv.weight`, `conv.bias`).

    Shapes: (N, C_in, Z, Y, X) → (N, C_out, Z', Y', X').
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: Triple | int,
        stride: Triple | int = 1,
        padding: Triple | int | None = None,
        padding_z: str = "zeros",
        padding_yx: str = "zeros",
    ) -> None:
        super().__init__()
        k = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        if padding is None:
            padding = tuple(e // 2 for e in k)
        pad = (padding,) * 3 if isinstance(padding, int) else tuple(padding)
        self.pad = pad
        self.padding_z = padding_z
        self.padding_yx = padding_yx
        native = padding_z == "zeros" and padding_yx == "zeros"
        self.conv = nn.Conv3d(c_in, c_out, k, stride, padding=pad if native else 0)
        self._native = native

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._native:
            pz, py, px = self.pad
            if py or px:
                mode = _TORCH_PAD.get(self.padding_yx, "constant")
                x = F.pad(x, (px, px, py, py, 0, 0), mode=mode)
            if pz:
                mode = _TORCH_PAD.get(self.padding_z, "constant")
                x = F.pad(x, (0, 0, 0, 0, pz, pz), mode=mode)
        return self.conv(x)


class ConvNormAct(nn.Module):
    """PadConv3d → norm → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: Triple | int, stride: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.conv = PadConv3d(c_in, c_out, kernel, stride, None, cfg.padding_z, cfg.padding_yx)
        self.norm = make_norm3d(cfg.norm, c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """conv k3 → norm → LeakyReLU(0.2) → conv k3 → norm → + input → LeakyReLU(0.2) (the notebook)."""

    def __init__(self, channels: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.conv1 = PadConv3d(channels, channels, 3, 1, None, cfg.padding_z, cfg.padding_yx)
        self.norm1 = make_norm3d(cfg.res_norm, channels)
        self.conv2 = PadConv3d(channels, channels, 3, 1, None, cfg.padding_z, cfg.padding_yx)
        self.norm2 = make_norm3d(cfg.res_norm, channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.act(h + x)


class UpStage(nn.Module):
    """One decoder stage, ×2 in z, y, x.

    "transposed": ConvTranspose3d(k3, s2, p1, output_padding 1) → norm → ReLU (size 2·n).
    "trilinear"/"nearest": PadConv3d k3 at the coarse level → norm → ReLU → resize to `size`
    (the matching encoder level's size), so no checkerboard and any Z works.
    """

    def __init__(self, c_in: int, c_out: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.mode = cfg.upsample
        if self.mode == "transposed":
            self.conv: nn.Module = nn.ConvTranspose3d(c_in, c_out, 3, 2, 1, 1)
        else:
            self.conv = PadConv3d(c_in, c_out, 3, 1, None, cfg.padding_z, cfg.padding_yx)
        self.norm = make_norm3d(cfg.norm, c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        if self.mode == "transposed":
            return self.act(self.norm(self.conv(x)))
        h = self.act(self.norm(self.conv(x)))
        if self.mode == "trilinear":
            return F.interpolate(h, size=size, mode="trilinear", align_corners=False)
        return F.interpolate(h, size=size, mode="nearest")


_RESIDUAL_CLAMP = 0.999  # atanh(±0.999) = ±3.8: uint8 0 and 255 still round back to themselves


class Generator3D(nn.Module):
    """ZSE-GAN 3D generator. forward: float32 (N, 1, Z, Y, X) in [-1, 1] → same shape, tanh output.

    Y and X must be divisible by 4. With `upsample="transposed"` Z must satisfy
    4·ceil(ceil(Z/2)/2) − (out_kernel_z − 1 − 2·out_padding_z) = Z (true for Z = 29 with the
    notebook's k(6,5,5), p(1,2,2)).
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.skip == "add" and cfg.upsample == "transposed":
            raise ConfigError("generator skip 'add' needs a resize upsample (trilinear or nearest), not 'transposed'")
        self.cfg = cfg
        w0, w1, w2 = cfg.widths
        self.conv_in = ConvNormAct(1, w0, cfg.in_kernel, 1, cfg)
        self.down1 = ConvNormAct(w0, w1, 3, 2, cfg)
        self.down2 = ConvNormAct(w1, w2, 3, 2, cfg)
        self.res = nn.Sequential(*[ResBlock3d(w2, cfg) for _ in range(cfg.n_res)])
        self.up1 = UpStage(w2, w1, cfg)
        self.up2 = UpStage(w1, w0, cfg)
        out_pad = cfg.out_padding if cfg.out_padding is not None else tuple(k // 2 for k in cfg.out_kernel)
        self.conv_out = PadConv3d(w0, 1, cfg.out_kernel, 1, out_pad, cfg.padding_z, cfg.padding_yx)
        if cfg.residual:  # start as the identity: the correction conv_out(h) is zero before training
            for p in self.conv_out.parameters():
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.conv_in(x)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        h = self.res(e2)
        h = self.up1(h, tuple(e1.shape[2:]))
        if self.cfg.skip == "add":
            h = h + e1
        h = self.up2(h, tuple(e0.shape[2:]))
        if self.cfg.skip == "add":
            h = h + e0
        if self.cfg.residual:
            return torch.tanh(torch.atanh(x.clamp(-_RESIDUAL_CLAMP, _RESIDUAL_CLAMP)) + self.conv_out(h))
        return torch.tanh(self.conv_out(h))


def build_generator(cfg: GeneratorConfig) -> Generator3D:
    """A freshly initialised generator (default PyTorch init, as the notebook)."""
    return Generator3D(cfg)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_flops(module: nn.Module, shape: tuple[int, ...] = (1, 1, 29, 128, 128)) -> int:
    """FLOPs (2 × multiply-adds, torch.utils.flop_counter) of one forward pass of `shape`.

    Counted on a copy on the meta device: no memory, no compute.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta").eval()
    x = torch.zeros(shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(x)
    return int(counter.get_total_flops())


def _probe_positions(size: int) -> list[tuple[int, int]]:
    c = size // 2
    return [(c + oy, c + ox) for oy in range(4) for ox in range(4)]  # all phases of two stride-2 levels


def receptive_radius_yx(module: nn.Module, z: int = 29, size: int = 160) -> int:
    """Receptive-field radius in y, x (pixels) of a model with its actual weights (gradient probe).

    For 16 output positions near the centre (all phases of the two stride-2 levels; one batched
    backward pass) the gradient of the output column (all z) with respect to a random input is
    computed in eval mode; the radius is the largest |dy| or |dx| with a nonzero gradient. `size`
    must exceed twice the radius.
    """
    was_training = module.training
    module.eval()
    pos = _probe_positions(size)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((len(pos), 1, z, size, size), generator=gen) * 2 - 1).requires_grad_(True)
    y = module(x)
    sum(y[n, 0, :, py, px].sum() for n, (py, px) in enumerate(pos)).backward()
    radius = 0
    grad = x.grad
    if grad is None:  # pragma: no cover - backward() above always fills it
        raise RuntimeError("no gradient reached the probe input")
    for n, (py, px) in enumerate(pos):
        nz = torch.nonzero(grad[n].abs().sum(dim=(0, 1)) > 0)
        if len(nz):
            radius = max(radius, int((nz[:, 0] - py).abs().max()), int((nz[:, 1] - px).abs().max()))
    module.train(was_training)
    return radius


def structural_radius_yx(cfg: GeneratorConfig, z: int = 5, size: int | None = None) -> int:
    """Receptive-field radius in y, x of the architecture `cfg` (pixels), independent of weights.

    See `impulse_radius_yx`; the probe is a copy with widths 2 and no normalisation. z = 5 works for
    both upsampling kinds (5 → 3 → 2 → 4 → 8 → 5 on the notebook's transposed path) and is cheap. For
    instance-normalised models the true dependence is the whole tile (per-tile statistics); this is
    the radius of the convolution path.
    """
    probe_cfg = cfg.model_copy(update={"widths": (2, 2, 2), "norm": "none", "res_norm": "none"})
    bound = cfg.in_kernel[1] // 2 + 3 + 8 * cfg.n_res + 12 + cfg.out_kernel[1] // 2
    return impulse_radius_yx(Generator3D(probe_cfg), levels=2, z=z, bound=bound, size=size)


def impulse_radius_yx(probe: nn.Module, *, levels: int, z: int = 5, bound: int = 64, size: int | None = None) -> int:
    """Structural receptive-field radius in y, x (pixels) of a narrow, un-normalised copy `probe` of a
    network with `levels` stride-2 down-sampling levels.

    All conv weights are set positive and biases zero, then unit impulses at every stride phase in y
    (x fixed) and in x (y fixed) go through in one batch: every activation is ≥ 0, so the support of
    each response is exactly the structural receptive field (no path cancels or is cut by a ReLU);
    the radius is the farthest response from its impulse. `bound` is a guess of the radius; the probe
    doubles its field until the response fits.
    """
    g = probe.eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    period = 2 ** levels
    if size is None:
        size = period * ((2 * bound + 16) // period + 1)
    c = size // 2
    pos = [(c + p, c) for p in range(period)] + [(c, c + p) for p in range(1, period)]
    x = torch.zeros((len(pos), 1, z, size, size))
    for n, (py, px) in enumerate(pos):
        x[n, 0, z // 2, py, px] = 1.0
    with torch.no_grad():
        y = g(x)
    radius = 0
    for n, (py, px) in enumerate(pos):
        nz = torch.nonzero(y[n, 0].abs().sum(dim=0) > 0)
        radius = max(radius, int((nz[:, 0] - py).abs().max()), int((nz[:, 1] - px).abs().max()))
    if radius >= size // 2 - 4:
        return impulse_radius_yx(g, levels=levels, z=z, bound=bound, size=2 * size)
    return radius
