"""Loss terms against hand-computed values (constant discriminators and tensors)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from zse.errors import ConfigError
from zse.models.config import LossConfig, WeightSpec
from zse.models.losses import (
    Draws,
    ImagePool,
    cycle_loss,
    discriminator_loss,
    generator_loss,
    notebook_alpha,
    notebook_cycle_weights,
    plane_weights,
    section,
)


class ConstD(nn.Module):
    """A 'discriminator' answering the constant c on a 2×2 patch map; records input shapes."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.full((x.shape[0], 1, 2, 2), self.c)


def test_notebook_vectors() -> None:
    a, w = notebook_alpha(29), notebook_cycle_weights(29)
    assert a[0] == a[28] == 1.67 and a[14] == 1.0 and min(a) == 1.0
    assert w[0] == 3.05 and w[14] == 1.03 and w[28] == 2.97
    assert len(a) == len(w) == 29


def test_weight_kinds() -> None:
    fd = plane_weights(WeightSpec(kind="focus-distance", lo=1.0, hi=2.0), 5)
    assert fd.tolist() == [2.0, 1.5, 1.0, 1.5, 2.0]
    x = torch.zeros(1, 1, 3, 8, 8)
    x[0, 0, 1, ::2, ::2] = 1.0  # plane 1 is the sharpest
    s = plane_weights(WeightSpec(kind="sharpness", lo=1.0, hi=3.0), 3, x)
    assert s[1] == 1.0 and s[0] == 3.0 and s[2] == 3.0
    v = plane_weights(WeightSpec(kind="vector", values=(1.0, 2.0, 3.0)), 3)
    assert v.tolist() == [1.0, 2.0, 3.0]


def test_cycle_max_and_mean() -> None:
    x = torch.zeros(1, 1, 3, 4, 4)
    rec = torch.stack([torch.full((4, 4), v) for v in (0.1, 0.2, 0.4)])[None, None]
    w = torch.tensor([3.0, 1.0, 2.0])
    assert cycle_loss(rec, x, w, "max").item() == pytest.approx(0.8)  # max(0.3, 0.2, 0.8)
    assert cycle_loss(rec, x, w, "mean").item() == pytest.approx((0.3 + 0.2 + 0.8) / 3)


def test_cycle_l2_and_charbonnier_by_hand() -> None:
    x = torch.zeros(1, 1, 3, 4, 4)
    rec = torch.stack([torch.full((4, 4), v) for v in (0.1, 0.2, 0.4)])[None, None]
    w = torch.tensor([3.0, 1.0, 2.0])
    assert cycle_loss(rec, x, w, "mean", "l2").item() == pytest.approx((3 * 0.01 + 0.04 + 2 * 0.16) / 3)
    eps = 1e-3
    ch = [math.sqrt(v * v + eps * eps) - eps for v in (0.1, 0.2, 0.4)]
    assert cycle_loss(rec, x, w, "max", "charbonnier").item() == pytest.approx(max(3 * ch[0], ch[1], 2 * ch[2]), rel=1e-5)
    # smooth at the identity: the gradient at rec = x is 0 (L1's subgradient there is ±w)
    r0 = x.clone().requires_grad_(True)
    cycle_loss(r0, x, w, "mean", "charbonnier").backward()
    assert r0.grad is not None and float(r0.grad.abs().max()) == 0.0
    with pytest.raises(ConfigError, match="cycle norm"):
        cycle_loss(rec, x, w, "mean", "huber")


def test_section_orientation() -> None:
    v = torch.rand(1, 1, 3, 4, 5)
    assert section(v, 1, 0).shape == (1, 1, 5, 3)  # xz at y=1 as (X, Z)
    assert section(v, 2, 1).shape == (1, 1, 4, 3)  # yz at x=2 as (Y, Z)
    assert torch.equal(section(v, 1, 0)[0, 0, :, 0], v[0, 0, 0, 1, :])


def _tensors():
    z = 3
    x = torch.zeros(1, 1, z, 4, 4)
    fake = torch.full((1, 1, z, 4, 4), 0.5)
    rec = torch.full((1, 1, z, 4, 4), 0.2)
    idt_b = torch.full((1, 1, z, 4, 4), 0.1)
    idt_s = torch.full((1, 1, z, 4, 4), 0.3)
    return x, fake, rec, idt_b, idt_s


def test_generator_loss_lsgan_by_hand() -> None:
    x, fake, rec, idt_b, idt_s = _tensors()
    cfg = LossConfig(p=0.35, lambda_cycle=10.5, lambda_identity=0.5, cycle_reduce="max")
    alpha = torch.tensor([1.5, 1.0, 2.0])
    cyc_w = torch.tensor([1.0, 3.0, 2.0])
    dr = Draws(g_b=0, g_s=2, g_j=1, g_o=0, d_s=0, d_j=0, d_o=1, d_b_real=1, d_b_fake=2)
    d_s, d_b = ConstD(0.4), ConstD(-0.5)
    total, t = generator_loss(x, fake, rec, idt_b, idt_s, d_s, d_b, cfg, alpha, cyc_w, dr)
    adv_b = 1.5 * (-0.5 - 1) ** 2  # α[0]·(b − 1)²
    adv_xy = 2.0 * 0.65 * (0.4 - 1) ** 2  # α[2]·(1 − p)·(a − 1)²
    adv_v = 0.35 * 0.5 * (0.4 - 1) ** 2
    cyc = max(1.0 * 0.2, 3.0 * 0.2, 2.0 * 0.2)
    idt = 0.1 + abs(0.3 - 0.5)
    expect = adv_b + adv_xy + adv_v + 10.5 * cyc + 0.5 * idt
    assert total.item() == pytest.approx(expect, rel=1e-6)
    assert t["g_cycle"].item() == pytest.approx(0.6) and t["g_identity"].item() == pytest.approx(0.3)
    assert d_s.shapes == [(1, 1, 4, 4), (1, 1, 4, 3)]  # horizontal plane, then xz section (X, Z)


def test_discriminator_loss_lsgan_by_hand() -> None:
    x, fake, rec, _, _ = _tensors()
    y2d, y29 = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 3)
    cfg = LossConfig(p=0.35, d_factor=0.5)
    alpha = torch.tensor([1.5, 1.0, 2.0])
    dr = Draws(g_b=0, g_s=0, g_j=0, g_o=0, d_s=2, d_j=1, d_o=1, d_b_real=0, d_b_fake=1)
    a, b = 0.4, -0.5
    total, t = discriminator_loss(x, y2d, y29, fake, rec, ConstD(a), ConstD(b), cfg, alpha, dr)
    s_real = 0.65 * (a - 1) ** 2 + 0.35 * (a - 1) ** 2
    s_fake = 2.0 * 0.65 * a**2 + 0.35 * 0.5 * a**2
    b_real = 1.5 * (b - 1) ** 2
    b_fake = 1.0 * b**2
    assert t["d_s"].item() == pytest.approx(0.5 * (s_real + s_fake), rel=1e-6)
    assert t["d_b"].item() == pytest.approx(0.5 * (b_real + b_fake), rel=1e-6)
    assert total.item() == pytest.approx(t["d_s"].item() + t["d_b"].item(), rel=1e-6)


def test_paper_log_loss_by_hand() -> None:
    x, fake, rec, idt_b, idt_s = _tensors()
    cfg = LossConfig(kind="paper-log", p=0.5, lambda_cycle=0.0, lambda_identity=0.0)
    alpha = torch.ones(3)
    dr = Draws(0, 0, 0, 0, 0, 0, 0, 0, 0)
    total, _ = generator_loss(x, fake, rec, idt_b, idt_s, ConstD(0.0), ConstD(0.0), cfg, alpha, alpha, dr)
    # logits 0 → −log σ(0) = log 2 per term; weights 1 + (1 − p) + p/2
    assert total.item() == pytest.approx(math.log(2) * (1 + 0.5 + 0.25), rel=1e-6)


def test_image_pool() -> None:
    pool = ImagePool(2)
    rng = random.Random(0)
    a, b, c = (torch.full((1, 1, 2, 2, 2), v) for v in (1.0, 2.0, 3.0))
    assert torch.equal(pool.query(a, rng), a) and torch.equal(pool.query(b, rng), b)
    outs = [pool.query(c, random.Random(s)).flatten()[0].item() for s in range(20)]
    assert set(outs) <= {1.0, 2.0, 3.0} and len(set(outs)) > 1
    st = pool.state_dict()
    p2 = ImagePool(0)
    p2.load_state_dict(st, "cpu")
    assert p2.size == 2 and len(p2.images) == 2
    assert torch.equal(ImagePool(0).query(a, rng), a)


def test_fidelity_term_by_hand() -> None:
    x, fake, rec, idt_b, idt_s = _tensors()
    cfg = LossConfig(lambda_cycle=0.0, lambda_identity=0.0, lambda_fidelity=2.0, fidelity_sigma=1.5)
    dr = Draws(0, 0, 0, 0, 0, 0, 0, 0, 0)
    ones = torch.ones(3)
    total, t = generator_loss(x, fake, rec, idt_b, idt_s, ConstD(1.0), ConstD(1.0), cfg, ones, ones, dr)
    assert t["g_fidelity"].item() == pytest.approx(0.5)  # low-pass of a constant is the constant
    assert total.item() == pytest.approx(2.0 * 0.5)
    from zse.models.losses import gaussian_lowpass_yx

    v = torch.rand(1, 1, 2, 12, 12)
    lp = gaussian_lowpass_yx(v, 2.0)
    assert lp.shape == v.shape and lp.std() < v.std() and abs(lp.mean() - v.mean()) < 0.05


def test_l2_fidelity_by_hand() -> None:
    x, fake, rec, idt_b, idt_s = _tensors()
    alpha = torch.ones(3)
    dr = Draws(0, 0, 0, 0, 0, 0, 0, 0, 0)
    cfg = LossConfig(lambda_cycle=10.0, lambda_identity=1.0, lambda_fidelity=3.0, fidelity_norm="l2")
    total, t = generator_loss(x, fake, rec, idt_b, idt_s, ConstD(1.0), ConstD(1.0), cfg, alpha, alpha, dr)
    # D scores 1 → no adversarial loss; cycle 0.2, identity 0.1 + 0.2, fidelity (0.5 − 0)² (constants)
    assert t["g_fidelity"].item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(10.0 * 0.2 + 1.0 * 0.3 + 3.0 * 0.25, rel=1e-6)


def test_identity_term_may_be_skipped_only_when_off() -> None:
    x, fake, rec, _, _ = _tensors()
    ones, dr = torch.ones(3), Draws(0, 0, 0, 0, 0, 0, 0, 0, 0)
    _, t = generator_loss(x, fake, rec, None, None, ConstD(1.0), ConstD(1.0), LossConfig(lambda_identity=0.0), ones, ones, dr)
    assert t["g_identity"].item() == 0.0
    with pytest.raises(ValueError, match="lambda_identity"):
        generator_loss(x, fake, rec, None, None, ConstD(1.0), ConstD(1.0), LossConfig(lambda_identity=0.5), ones, ones, dr)
