"""zse.models.networks: the generators (ZSE-GAN's 3D encoder/decoder, the `unet3d-gan` 3D U-Net) and 2D
PatchGAN discriminators, all config-driven. `build_enhancer(arch)`, `enhancer_radius_yx(arch)` and
`enhancer_is_equivariant(arch)` are the one place that maps an `ArchConfig` to the network that
enhances (G_S of ZSE-GAN, the U-Net of unet3d-gan) and to what the pipeline must know about it."""

from torch import nn

from zse.models.config import ArchConfig
from zse.models.networks.discriminators import PatchDiscriminator2D, build_discriminator
from zse.models.networks.generators import (
    Generator3D,
    build_generator,
    count_flops,
    count_parameters,
    impulse_radius_yx,
    receptive_radius_yx,
    structural_radius_yx,
)
from zse.models.networks.unet3d import UNet3D, build_unet


def build_enhancer(arch: ArchConfig) -> nn.Module:
    """The network that maps a blurred z-scan to the enhanced volume, freshly initialised."""
    if arch.kind == "dualgan-3d":
        from zse.models.networks.wdsr import build_wdsr_generator

        return build_wdsr_generator(arch.wdsr)
    if arch.kind == "cyclegan-2d":
        from zse.models.networks.resnet2d import build_planewise_generator

        return build_planewise_generator(arch.resnet2d)
    return build_unet(arch.unet) if arch.kind == "unet3d-gan" else build_generator(arch.generator)


def enhancer_radius_yx(arch: ArchConfig) -> int:
    """Structural receptive radius in y, x (px) of `build_enhancer(arch)`: the margin that makes tiling exact."""
    if arch.kind == "dualgan-3d":
        from zse.models.networks.wdsr import wdsr_radius_yx

        return wdsr_radius_yx(arch.wdsr)
    if arch.kind == "cyclegan-2d":
        from zse.models.networks.resnet2d import resnet2d_radius_yx

        return resnet2d_radius_yx(arch.resnet2d)
    if arch.kind != "unet3d-gan":
        return structural_radius_yx(arch.generator)
    u = arch.unet
    probe = UNet3D(u.model_copy(update={"widths": (2,) * len(u.widths), "norm": "none", "global_residual": False}))
    levels = len(u.widths) - 1
    bound = sum(2 ** lvl * (2 * u.convs + 2) for lvl in range(levels + 1))
    return impulse_radius_yx(probe, levels=levels, bound=bound)


def enhancer_is_equivariant(arch: ArchConfig) -> bool:
    """True when the enhancer has no per-tile statistics (instance norm), so tiles blend exactly."""
    if arch.kind == "unet3d-gan":
        return arch.unet.norm != "instance"
    if arch.kind == "dualgan-3d":
        return True  # no normalisation at all (weight normalisation is of the weights, not the data)
    if arch.kind == "cyclegan-2d":
        return arch.resnet2d.norm != "instance"
    return arch.generator.norm != "instance" and arch.generator.res_norm != "instance"


__all__ = ["Generator3D", "PatchDiscriminator2D", "UNet3D", "build_discriminator", "build_enhancer", "build_generator",
           "build_unet", "count_flops", "count_parameters", "enhancer_is_equivariant", "enhancer_radius_yx",
           "impulse_radius_yx", "receptive_radius_yx", "structural_radius_yx"]
