"""unet3d-gan: the 3D U-Net, every loss term against a hand-computed value, the VGG loss from a local file
only, a tiny CPU training whose supervised loss falls, resume == uninterrupted, the checkpoint's
self-description, and the bundled weights beating the input on a synthetic slide."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_dataset  # tests/models is on sys.path (pytest rootdir-relative import)

from zse.errors import ConfigError, ModelError
from zse.models import metrics as M
from zse.models.checkpoint import CheckpointFactory, load_checkpoint
from zse.models.config import ArchConfig, UNetConfig, config_from_dict, load_config
from zse.models.losses import (
    highpass_yx,
    in_slice_planes,
    keep_loss,
    lsgan_discriminator,
    lsgan_generator,
    supervised_l1,
    take_planes,
)
from zse.models.networks import (
    build_enhancer,
    enhancer_is_equivariant,
    enhancer_radius_yx,
    receptive_radius_yx,
)
from zse.models.networks.vgg import load_vgg19_features, vgg19_trunk, vgg_loss
from zse.models.train import train

Z = 13


# ------------------------------------------------------------------------------------------ network


def test_untrained_unet_is_the_identity_and_keeps_shapes() -> None:
    g = build_enhancer(ArchConfig(kind="unet3d-gan", unet=UNetConfig(widths=(4, 8, 8)))).eval()
    for shape in ((1, 1, 29, 32, 32), (2, 1, 7, 24, 40)):
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(g(x), x)


def test_structural_radius_bounds_the_trained_receptive_field() -> None:
    """The architecture's radius (positive-weight impulse probe) equals the gradient probe's on random
    weights: the margin a checkpoint declares is the real dependence."""
    arch = ArchConfig(kind="unet3d-gan", unet=UNetConfig(widths=(4, 4, 4), global_residual=False))
    g = build_enhancer(arch)
    assert enhancer_radius_yx(arch) == receptive_radius_yx(g, z=9, size=96)


def test_instance_norm_unet_is_not_equivariant() -> None:
    assert enhancer_is_equivariant(ArchConfig(kind="unet3d-gan"))
    assert not enhancer_is_equivariant(ArchConfig(kind="unet3d-gan", unet=UNetConfig(norm="instance")))


def test_wfcon_reference_preset_builds_with_four_down_sampling_blocks() -> None:
    cfg = load_config("unet3d-gan-wfcon")
    assert len(cfg.arch.unet.widths) == 5 and cfg.arch.unet.norm == "instance" and cfg.arch.unet.skip == "concat"
    g = build_enhancer(cfg.arch).eval()
    with torch.no_grad():
        assert g(torch.zeros(1, 1, 29, 32, 32)).shape == (1, 1, 29, 32, 32)


# ------------------------------------------------------------------------------------------ losses


def test_supervised_l1_and_lsgan_terms_by_hand() -> None:
    out = torch.tensor([0.5, -0.5, 0.0, 1.0]).view(1, 1, 1, 2, 2)
    truth = torch.tensor([0.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 2, 2)
    assert supervised_l1(out, truth).item() == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)
    s = torch.tensor([1.0, 0.0, 0.5])
    assert lsgan_generator(s).item() == pytest.approx(0.5 * (0 + 1 + 0.25) / 3)
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5])
    assert lsgan_discriminator(real, fake).item() == pytest.approx(0.5 * ((0 + 0.25) / 2 + (0 + 0.25) / 2))


def test_highpass_and_keep_loss_by_hand() -> None:
    """A constant plane has no high-pass; a single bright pixel keeps 1 − (its Gaussian weight) at its
    centre; the keep loss is the mean |HP(out) − HP(x)|, blind to a brightness offset."""
    flat = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(highpass_yx(flat, 1.0), torch.zeros_like(flat))
    spot = torch.zeros((1, 1, 9, 9))
    spot[0, 0, 4, 4] = 1.0
    t = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-(t**2) / 2)
    k = k / k.sum()
    assert highpass_yx(spot, 1.0)[0, 0, 4, 4].item() == pytest.approx(1 - float(k[3] ** 2), abs=1e-6)
    assert keep_loss(spot + 0.5, spot, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    want = float(highpass_yx(spot, 1.0).abs().mean())
    assert keep_loss(torch.zeros_like(spot), spot, 1.0).item() == pytest.approx(want, rel=1e-6)


def test_in_slice_planes_pick_around_the_sharpest_plane() -> None:
    x = torch.zeros((2, 1, 9, 16, 16))
    x[0, 0, 2] = torch.rand(16, 16)  # sample 0: sharp at plane 2
    x[1, 0, 7] = torch.rand(16, 16)  # sample 1: sharp at plane 7
    k, i = in_slice_planes(x, 1, random.Random(0))
    assert k.tolist() == [2, 7]
    assert all(abs(a - b) <= 1 for a, b in zip(i.tolist(), k.tolist(), strict=True))
    torch.testing.assert_close(take_planes(x, k), torch.stack([x[0, :, 2], x[1, :, 7]]))


# ------------------------------------------------------------------------------------------ VGG


def test_vgg_loss_with_random_local_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = vgg19_trunk("relu1_2")
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()} | {"classifier.0.weight": torch.zeros(2, 2)}, path)
    net = load_vgg19_features(path, "relu1_2")
    a = torch.rand(1, 1, 2, 16, 16) * 2 - 1
    b = torch.rand(1, 1, 2, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feats(v: torch.Tensor) -> torch.Tensor:
        g = ((v[0].transpose(0, 1) + 1) / 2).expand(-1, 3, -1, -1)  # (Z, 3, Y, X)
        h = torch.conv2d((g - mean) / std, ref[0].weight, ref[0].bias, padding=1).relu()
        return torch.conv2d(h, ref[2].weight, ref[2].bias, padding=1).relu()

    want = (feats(a) - feats(b)).abs().mean()
    assert vgg_loss(net, a, b).item() == pytest.approx(want.item(), rel=1e-5)
    assert vgg_loss(net, a, a).item() == 0.0
    assert not any(p.requires_grad for p in net.parameters())


def test_vgg_loss_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="never downloads"):
        load_vgg19_features(tmp_path / "missing.pth")
    with pytest.raises(ModelError, match="never downloads"):
        load_vgg19_features(None)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="lacks|shape"):
        load_vgg19_features(tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="vgg_weights"):
        config_from_dict({"physics": {"lambda_vgg": 0.01}})


# ------------------------------------------------------------------------------------------ training


def tiny_unet_config(data: Path, finetune_start: int = 20, **train_kw: object) -> object:
    t = {"max_steps": 30, "log_every": 5, "image_every": 15, "ckpt_every": 1000, "seed": 0, "batch_size": 2, "tile_yx": 16}
    t.update(train_kw)
    return config_from_dict({
        "name": "tiny-unet",
        "arch": {"name": "tiny-unet", "kind": "unet3d-gan", "unet": {"widths": [4, 8], "down_z": [True]},
                 "discriminator": {"ndf": 4, "n_layers": 2}},
        "physics": {"lambda_l1": 2.0, "lambda_adv": 0.05, "lambda_keep": 1.0, "finetune_start": finetune_start},
        "optim": {"lr_g": 3e-3, "lr_d": 1e-3},
        "data": {"path": str(data), "z_planes": Z, "val_fraction": 0.2, "crop_yx": 16, "flips": True,
                 "pairs": {"na": [0.7], "z_step_um": [1.2], "section_um": [6.0, 8.0], "focus_shift": 1,
                           "phantom_seeds": 1, "phantom_side": 64}},
        "train": t,
    })


def _log(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_cpu_training_supervised_loss_falls_and_checkpoint_describes_itself(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", n=6, z=Z, s=32)
    cfg = tiny_unet_config(root)
    res = train(cfg, tmp_path / "run", progress=False)  # type: ignore[arg-type]
    rows = _log(res.log)
    l1 = [float(r["l1"]) for r in rows]
    assert res.step == 30 and len(rows) == 6
    assert np.mean(l1[-2:]) < 0.8 * np.mean(l1[:2]), l1
    assert rows[-1]["adv"] != "" and rows[0]["adv"] == ""  # the real-data phase started at step 20
    assert (tmp_path / "run" / "supervised.pt").is_file() and (tmp_path / "run" / "val_0000015.png").is_file()
    ck = load_checkpoint(res.inference_checkpoint)
    assert ck["model_kind"] == "tiny-unet" and ck["arch"]["kind"] == "unet3d-gan" and ck["translation_equivariant"]
    assert ck["margin_px"] % 2 == 0 and ck["margin_px"] >= enhancer_radius_yx(cfg.arch)  # type: ignore[attr-defined]
    f = CheckpointFactory(res.inference_checkpoint)
    x = torch.rand(1, 1, Z, 16, 16) * 2 - 1
    assert f.build("cpu")(x).shape == x.shape
    # the same machinery as ZSE-GAN: `zse export` to a PyTorch program, equal to the checkpoint
    from zse.models.export import ExportedProgramFactory, export_checkpoint

    pt2 = export_checkpoint(res.last_checkpoint, tmp_path / "unet.pt2")
    ef = ExportedProgramFactory(pt2)
    assert ef.margin_px == ck["margin_px"]
    for n in (1, 2):
        xb = torch.rand(n, 1, Z, 16, 16) * 2 - 1
        torch.testing.assert_close(ef.build("cpu")(xb), f.build("cpu")(xb), atol=1e-5, rtol=1e-5)


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", n=6, z=Z, s=32)
    # resume inside the real-data phase (from step 8): D, its Adam state and the plane draws must be restored too
    straight = train(tiny_unet_config(root, 8, max_steps=24, ckpt_every=12), tmp_path / "a", progress=False)  # type: ignore[arg-type]
    train(tiny_unet_config(root, 8, max_steps=12, ckpt_every=12), tmp_path / "b", progress=False)  # type: ignore[arg-type]
    resumed = train(tiny_unet_config(root, 8, max_steps=24, ckpt_every=12), tmp_path / "b", resume=True, progress=False)  # type: ignore[arg-type]
    a = load_checkpoint(straight.last_checkpoint)["state"]
    b = load_checkpoint(resumed.last_checkpoint)["state"]
    for net in ("g_s", "d"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ bundled weights


def test_bundled_unet3d_gan_beats_the_input_on_a_synthetic_slide() -> None:
    """The shipped weights on a slide of an unseen seed and PSF: closer to the optical-section truth than
    the input on in-slice planes and vertical sections, and no structure invented above or below."""
    from zse.models.registry import resolve
    from zse.models.simulator import synthesize
    from zse.pipeline.intensity import from_unit, to_unit

    x, gt = synthesize((29, 96, 96), 7, na=0.75, z_step_um=1.4)
    pred = resolve("unet3d-gan").build("cpu")
    torch.set_num_threads(2)
    with torch.inference_mode():
        y = from_unit(pred(to_unit(torch.from_numpy(x), "uint8")[None, None])[0, 0], "uint8").numpy().astype(np.uint8)
    s_in, s_out = M.synthetic_scores(x, gt, section_step=8), M.synthetic_scores(y, gt, section_step=8)
    assert s_out["ssim_planes"] > s_in["ssim_planes"] + 0.05, (s_in["ssim_planes"], s_out["ssim_planes"])
    assert s_out["ssim_xz"] > s_in["ssim_xz"] + 0.05 and s_out["ssim_yz"] > s_in["ssim_yz"] + 0.05
    assert s_out["mae_empty"] <= s_in["mae_empty"] or math.isnan(s_in["mae_empty"])
