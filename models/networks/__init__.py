"""zse.models.networks: ZSE-GAN's 3D generators and 2D PatchGAN discriminators (config-driven)."""

from zse.models.networks.discriminators import PatchDiscriminator2D, build_discriminator
from zse.models.networks.generators import (
    Generator3D,
    build_generator,
    count_flops,
    count_parameters,
    receptive_radius_yx,
    structural_radius_yx,
)

__all__ = ["Generator3D", "PatchDiscriminator2D", "build_discriminator", "build_generator", "count_flops",
           "count_parameters", "receptive_radius_yx", "structural_radius_yx"]
