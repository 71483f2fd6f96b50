"""Generators and discriminators: shapes, parameter count, FLOPs, receptive field, seams, bf16."""

from __future__ import annotations

import pytest
import torch

from zse.errors import ConfigError
from zse.models.config import (
    DiscriminatorConfig,
    GeneratorConfig,
    config_from_dict,
    load_config,
    preset_names,
)
from zse.models.networks.discriminators import build_discriminator
from zse.models.networks.generators import (
    build_generator,
    count_flops,
    count_parameters,
    receptive_radius_yx,
    structural_radius_yx,
)


def _gen(preset: str) -> GeneratorConfig:
    return load_config(preset).arch.generator


def test_presets_load() -> None:
    assert {"notebook", "paper", "zse-gan"} <= set(preset_names())
    assert load_config("notebook").arch.name == "zse-gan-paper"
    assert load_config("paper").loss.kind == "paper-log"
    assert load_config("zse-gan").arch.generator.norm == "none"


def test_paper_parameter_count_and_shape() -> None:
    torch.manual_seed(0)
    g = build_generator(_gen("notebook"))
    assert count_parameters(g) == 1_472_209
    with torch.no_grad():  # shapes on the meta device (no compute), values on a smaller tile
        assert g.to("meta")(torch.zeros(2, 1, 29, 128, 128, device="meta")).shape == (2, 1, 29, 128, 128)
        g = build_generator(_gen("notebook"))
        y = g(torch.rand(1, 1, 29, 32, 32) * 2 - 1)
    assert y.shape == (1, 1, 29, 32, 32)
    assert y.dtype == torch.float32 and y.abs().max() <= 1


def test_zse_gan_shape_flops_margin() -> None:
    cfg = _gen("zse-gan")
    g = build_generator(cfg).eval()
    with torch.no_grad():
        y = g(torch.rand(1, 1, 29, 128, 128) * 2 - 1)
    assert y.shape == (1, 1, 29, 128, 128)
    flops = count_flops(g)
    assert flops <= 10e9, flops
    assert structural_radius_yx(cfg) == 33
    assert count_parameters(g) == 360_625


def test_paper_flops_and_structural_radius() -> None:
    cfg = _gen("notebook")
    assert structural_radius_yx(cfg) == 58
    assert 30e9 < count_flops(build_generator(cfg)) < 32e9


def test_gradient_probe_within_structural_radius() -> None:
    """Random weights: the measured gradient support never exceeds the structural radius."""
    cfg = _gen("zse-gan").model_copy(update={"widths": (4, 4, 4), "residual": False})
    torch.manual_seed(1)
    g = build_generator(cfg)
    r = receptive_radius_yx(g, z=5, size=96)
    assert 28 <= r <= structural_radius_yx(cfg) == 33


def test_zse_gan_tiles_blend_exactly() -> None:
    """Output of a 128-px tile equals the full-image output beyond margin_px from the tile edges
    (tile origins on multiples of 4: two stride-2 levels)."""
    cfg = _gen("zse-gan").model_copy(update={"widths": (4, 8, 8), "residual": False})
    m = structural_radius_yx(cfg)
    torch.manual_seed(2)
    g = build_generator(cfg).eval()
    x = torch.rand(1, 1, 9, 64, 256) * 2 - 1
    with torch.no_grad():
        full = g(x)
        x0 = 64
        tile = g(x[..., x0 : x0 + 128])
    torch.testing.assert_close(tile[..., m : 128 - m], full[..., x0 + m : x0 + 128 - m], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(tile[..., :4], full[..., x0 : x0 + 4], atol=1e-5)  # the border does differ


def test_instance_norm_is_not_tile_safe() -> None:
    cfg = _gen("notebook").model_copy(update={"widths": (2, 4, 4), "n_res": 1})
    torch.manual_seed(3)
    g = build_generator(cfg).eval()
    x = torch.rand(1, 1, 29, 64, 256) * 2 - 1
    with torch.no_grad():
        full, tile = g(x), g(x[..., 64:192])
    assert (tile[..., 60:68] - full[..., 124:132]).abs().max() > 1e-4


def test_discriminator_patch_maps() -> None:
    d = build_discriminator(DiscriminatorConfig())
    assert d(torch.zeros(1, 1, 128, 128)).shape == (1, 1, 9, 9)
    assert d(torch.zeros(1, 1, 128, 29)).shape == (1, 1, 9, 2)


def test_bf16_autocast_close_to_fp32() -> None:
    cfg = _gen("zse-gan").model_copy(update={"widths": (4, 8, 8), "residual": False})
    torch.manual_seed(4)
    g = build_generator(cfg).eval()
    x = torch.rand(1, 1, 29, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = g(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = g(x).float()
    assert (low - ref).abs().max() < 0.05


def test_unknown_key_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'arch\.generator\.widht'"):
        config_from_dict({"arch": {"generator": {"widht": [1, 2, 3]}}})
    with pytest.raises(ConfigError, match="loss.p"):
        config_from_dict({"loss": {"p": 2}})
    with pytest.raises(ConfigError, match="skip 'add'"):
        build_generator(GeneratorConfig(skip="add", upsample="transposed"))


def test_residual_generator_is_identity_at_init_and_learns_a_correction() -> None:
    """residual=True: tanh(atanh(x) + conv_out(h)) with conv_out zero-initialised gives back uint8 inputs exactly."""
    cfg = _gen("zse-gan").model_copy(update={"widths": (4, 4, 4), "residual": True})
    g = build_generator(cfg).eval()
    v = torch.randint(0, 256, (2, 1, 5, 32, 32)).float()
    with torch.no_grad():
        y = g(v / 127.5 - 1)
    torch.testing.assert_close(torch.round((y + 1) * 127.5), v)
    with torch.no_grad():
        g.conv_out.conv.bias.fill_(0.1)
        y2 = g(v / 127.5 - 1)
    assert (y2 > y).all()  # the residual branch does act
