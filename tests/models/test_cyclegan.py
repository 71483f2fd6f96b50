"""cyclegan-2d (COMI): the planewise 2D ResNet generator, its radius, the 70×70 PatchGAN, the VGG content
loss from a local file only, a tiny CPU training, resume == uninterrupted, export, and tiled == whole
volume through `zse.enhance` at the checkpoint's own margin."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from test_train import make_dataset  # tests/models is on sys.path (pytest rootdir-relative import)

from zse.errors import ConfigError, ModelError
from zse.models.checkpoint import (
    FORMAT,
    NORMALISATION,
    VERSION,
    CheckpointFactory,
    load_checkpoint,
    save_checkpoint,
)
from zse.models.config import (
    ArchConfig,
    Config,
    DiscriminatorConfig,
    ResNet2DConfig,
    config_from_dict,
    load_config,
)
from zse.models.networks import (
    build_discriminator,
    build_enhancer,
    enhancer_is_equivariant,
    receptive_radius_yx,
)
from zse.models.networks.resnet2d import build_planewise_generator, resnet2d_radius_yx
from zse.models.networks.vgg import vgg19_trunk, vgg_loss_2d
from zse.models.train import train
from zse.models.train_physics import aligned_margin

Z = 13


def _randomise_out(g: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The output conv starts at zero (global residual: the identity); give it random weights."""
    torch.manual_seed(seed)
    with torch.no_grad():
        torch.nn.init.normal_(g.net.out.weight, std=0.3)
    return g.eval()


# ------------------------------------------------------------------------------------------ generator


def test_planewise_generator_is_the_2d_net_on_each_plane_separately() -> None:
    g = _randomise_out(build_planewise_generator(ResNet2DConfig(ngf=4, n_res=1, norm="none")))
    x = torch.rand(2, 1, 3, 24, 20) * 2 - 1
    with torch.no_grad():
        got = g(x)
        want = torch.stack([torch.stack([g.net(x[n, :, k][None])[0] for k in range(3)], dim=1) for n in range(2)])
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    # planes are independent: changing plane 0 leaves planes 1, 2 unchanged
    x2 = x.clone()
    x2[:, :, 0] = 0.5
    with torch.no_grad():
        torch.testing.assert_close(g(x2)[:, :, 1:], got[:, :, 1:])
    assert not torch.allclose(g(x2)[:, :, 0], got[:, :, 0])


@pytest.mark.parametrize("shape", [(1, 1, 29, 32, 32), (2, 1, 5, 21, 30)])
def test_untrained_generator_is_the_identity_and_keeps_shapes(shape: tuple[int, ...]) -> None:
    g = build_enhancer(ArchConfig(kind="cyclegan-2d", resnet2d=ResNet2DConfig(ngf=4, n_res=2))).eval()
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), x)
    g2 = build_planewise_generator(ResNet2DConfig(ngf=4, n_res=1, global_residual=False)).eval()
    with torch.no_grad():
        y = g2(x)
    assert y.shape == x.shape and y.abs().max() <= 1


@pytest.mark.parametrize("n_res", [0, 1, 2])
def test_radius_by_impulse_equals_the_gradient_of_random_weights(n_res: int) -> None:
    """The structural radius (positive-weight impulse) is the real dependence of a random-weight network
    (gradient probe), and lies within the hand count 12 + 8·n_res (+ ≤ 3 for the nearest up-sampling phase)."""
    cfg = ResNet2DConfig(ngf=4, n_res=n_res, norm="none")
    r = resnet2d_radius_yx(cfg)
    g = _randomise_out(build_planewise_generator(cfg))
    assert r == receptive_radius_yx(g, z=1, size=4 * ((2 * r + 24) // 4))
    assert 12 + 8 * n_res <= r <= 15 + 8 * n_res


def test_paper_preset_is_comi_and_not_seam_safe() -> None:
    cfg = load_config("cyclegan-2d")
    assert (cfg.arch.resnet2d.ngf, cfg.arch.resnet2d.n_res, cfg.arch.resnet2d.norm) == (64, 9, "instance")
    assert (cfg.cyclegan.lambda_adv, cfg.cyclegan.lambda_content, cfg.cyclegan.lambda_cycle) == (1.0, 1.0, 0.001)
    assert cfg.optim.lr_g == 1e-4 and tuple(cfg.optim.betas) == (0.5, 0.99) and cfg.optim.schedule == "linear-decay"
    assert not enhancer_is_equivariant(cfg.arch)  # instance norm: per-tile statistics
    assert aligned_margin(cfg) % 4 == 0 and aligned_margin(cfg) >= resnet2d_radius_yx(cfg.arch.resnet2d)
    cpu = load_config("cyclegan-2d-cpu")
    assert enhancer_is_equivariant(cpu.arch) and cpu.cyclegan.lambda_content == 0
    code = load_config("cyclegan-2d-code")
    assert code.cyclegan.lambda_adv == 0.001 and code.cyclegan.cycle_space == "vgg"


# ------------------------------------------------------------------------------------------ discriminator


def _gradient_extent(d: torch.nn.Module, size: int) -> tuple[int, int]:
    """Height and width of the input region that reaches the centre output score (gradient probe)."""
    torch.manual_seed(0)
    x = (torch.rand(1, 1, size, size) * 2 - 1).requires_grad_(True)
    s = d(x)
    s[0, 0, s.shape[2] // 2, s.shape[3] // 2].backward()
    assert x.grad is not None
    nz = torch.nonzero(x.grad[0, 0].abs() > 0)
    return int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1)


def test_pix2pix_head_gives_the_70_pixel_patchgan() -> None:
    """pix2pix / CycleGAN's PatchGAN (3 stride-2 k4 layers, k4 s1, k4 s1 head) sees 70×70 pixels per score."""
    d = build_discriminator(DiscriminatorConfig(ndf=4, n_layers=3, norm="none", head="pix2pix"))
    assert _gradient_extent(d, 160) == (70, 70)
    # ZSE-GAN's k2 head is a smaller patch: the option matters
    assert _gradient_extent(build_discriminator(DiscriminatorConfig(ndf=4, n_layers=3, norm="none")), 160)[0] < 70


# ------------------------------------------------------------------------------------------ VGG


def _random_vgg_file(tmp_path: Path, layer: str = "relu1_2") -> tuple[Path, torch.nn.Sequential]:
    torch.manual_seed(0)
    ref = vgg19_trunk(layer)
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()}, path)
    return path, ref


def test_vgg_loss_2d_with_random_local_weights(tmp_path: Path) -> None:
    from zse.models.networks.vgg import load_vgg19_features

    path, ref = _random_vgg_file(tmp_path)
    net = load_vgg19_features(path, "relu1_2", setting="cyclegan.vgg_weights")
    a, b = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feats(v: torch.Tensor) -> torch.Tensor:
        g = ((v + 1) / 2).expand(-1, 3, -1, -1)
        h = torch.conv2d((g - mean) / std, ref[0].weight, ref[0].bias, padding=1).relu()
        return torch.conv2d(h, ref[2].weight, ref[2].bias, padding=1).relu()

    diff = feats(a) - feats(b)
    assert vgg_loss_2d(net, a, b).item() == pytest.approx(diff.abs().mean().item(), rel=1e-5)
    assert vgg_loss_2d(net, a, b, "mse").item() == pytest.approx((diff**2).mean().item(), rel=1e-5)
    assert vgg_loss_2d(net, a, a, "mse").item() == 0.0


def test_content_term_needs_a_local_vgg_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vgg_weights"):
        config_from_dict({"cyclegan": {"lambda_content": 1.0}})
    with pytest.raises(ConfigError, match="vgg_weights"):
        config_from_dict({"cyclegan": {"lambda_content": 0.0, "lambda_cycle": 1.0, "cycle_space": "vgg"}})
    root = make_dataset(tmp_path / "d", n=4, z=Z, s=32)
    cfg = tiny_config(root, cyclegan={"lambda_content": 1.0, "vgg_weights": str(tmp_path / "missing.pth")})
    with pytest.raises(ModelError, match=r"not found \(cyclegan.vgg_weights\).*never downloads"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_training_with_the_content_term_from_a_random_weights_file(tmp_path: Path) -> None:
    path, _ = _random_vgg_file(tmp_path, "relu2_2")
    root = make_dataset(tmp_path / "d", n=4, z=Z, s=32)
    cfg = tiny_config(root, max_steps=4, log_every=2,
                      cyclegan={"lambda_content": 1.0, "vgg_weights": str(path), "vgg_layer": "relu2_2",
                                "cycle_space": "vgg", "lambda_cycle": 1.0})
    res = train(cfg, tmp_path / "run", progress=False)
    rows = _log(res.log)
    assert res.step == 4 and all(float(r["content"]) > 0 and float(r["cycle"]) >= 0 for r in rows)


# ------------------------------------------------------------------------------------------ training


def tiny_config(data: Path, cyclegan: dict | None = None, schedule: str = "linear-decay", **train_kw: object) -> Config:
    t = {"max_steps": 40, "log_every": 5, "image_every": 20, "ckpt_every": 1000, "seed": 0, "batch_size": 4, "tile_yx": 32}
    t.update(train_kw)
    return config_from_dict({
        "name": "tiny-cyclegan",
        "arch": {"name": "tiny-cyclegan", "kind": "cyclegan-2d", "resnet2d": {"ngf": 4, "n_res": 1, "norm": "none"},
                 "discriminator": {"ndf": 4, "n_layers": 3, "norm": "none", "head": "pix2pix"}},
        "cyclegan": {"lambda_cycle": 10.0, "lambda_identity": 5.0, "distance": "mse", **(cyclegan or {})},
        "optim": {"lr_g": 2e-3, "lr_d": 2e-3, "betas": [0.5, 0.99], "schedule": schedule},
        "data": {"path": str(data), "z_planes": Z, "val_fraction": 0.2, "crop_yx": 32, "flips": True,
                 "reals": "files-matched"},
        "train": t,
    })


def _log(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tiny_cpu_training_discriminator_loss_falls_and_checkpoint_describes_itself(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", n=6, z=Z, s=32)
    cfg = tiny_config(root)
    res = train(cfg, tmp_path / "run", progress=False)
    rows = _log(res.log)
    d = [float(r["d_total"]) for r in rows]
    assert res.step == 40 and len(rows) == 8
    assert np.mean(d[-2:]) < 0.7 * np.mean(d[:2]), d  # D learns to tell in-focus from blurred planes
    assert max(float(r["cycle"]) for r in rows) < 0.1  # G_B undoes G_S (mean squared, in [-1, 1] units)
    assert float(rows[-1]["val_change"]) > 0  # G_S left the identity it started from
    assert (tmp_path / "run" / "val_0000020.png").is_file() and (tmp_path / "run" / "val_0000040.png").is_file()
    assert float(rows[-1]["lr_g"]) == 0.0  # linear decay to zero over the second half
    ck = load_checkpoint(res.inference_checkpoint)
    assert ck["arch"]["kind"] == "cyclegan-2d" and ck["translation_equivariant"] and ck["kind"] == "inference"
    assert ck["margin_px"] == 24 and set(ck["state"]) == {"g_s"}  # radius 23 rounded up to the period 4
    f = CheckpointFactory(res.inference_checkpoint)
    x = torch.rand(1, 1, Z, 32, 32) * 2 - 1
    assert f.build("cpu")(x).shape == x.shape


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", n=4, z=Z, s=32)
    # a constant rate: the linear decay follows train.max_steps, which the two halves change
    straight = train(tiny_config(root, schedule="constant", max_steps=8, ckpt_every=4), tmp_path / "a", progress=False)
    train(tiny_config(root, schedule="constant", max_steps=4, ckpt_every=4), tmp_path / "b", progress=False)
    resumed = train(tiny_config(root, schedule="constant", max_steps=8, ckpt_every=4), tmp_path / "b", resume=True,
                    progress=False)
    a = load_checkpoint(straight.last_checkpoint)["state"]
    b = load_checkpoint(resumed.last_checkpoint)["state"]
    assert set(a) == {"g_s", "g_b", "d_s", "d_b"}
    for net in a:
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=0)


def test_tiny_training_on_the_real_rois(tmp_path: Path, huron_dir: Path) -> None:
    cfg = config_from_dict({**load_config("cyclegan-2d-cpu").model_dump(mode="json"), "name": "real"})
    cfg = config_from_dict({**cfg.model_dump(mode="json"),
                            "arch": {**cfg.arch.model_dump(mode="json"), "resnet2d": {"ngf": 4, "n_res": 1, "norm": "none"}},
                            "data": {**cfg.data.model_dump(mode="json"), "path": str(huron_dir), "crop_yx": 32},
                            "train": {**cfg.train.model_dump(mode="json"), "max_steps": 3, "log_every": 1,
                                      "image_every": 3, "batch_size": 2}})
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.step == 3 and all(np.isfinite(float(r["g_total"])) for r in _log(res.log))


# ------------------------------------------------------------------------------------------ pipeline


def _checkpoint_file(tmp_path: Path, n_res: int = 2) -> tuple[Path, torch.nn.Module, int]:
    """An inference checkpoint of a random-weight seam-safe generator with the margin training declares."""
    cfg = config_from_dict({"arch": {"name": "cg-test", "kind": "cyclegan-2d",
                                     "resnet2d": {"ngf": 4, "n_res": n_res, "norm": "none"}}})
    g = _randomise_out(build_enhancer(cfg.arch), seed=3)
    margin = aligned_margin(cfg)
    obj = {"format": FORMAT, "version": VERSION, "kind": "inference", "model_kind": "cg-test",
           "arch": cfg.arch.model_dump(mode="json"), "normalisation": NORMALISATION, "tile": {"z": 5, "yx": 128},
           "margin_px": margin, "translation_equivariant": enhancer_is_equivariant(cfg.arch), "zse_version": "test",
           "step": 0, "state": {"g_s": {k: v.detach().clone() for k, v in g.state_dict().items()}}}
    path = tmp_path / "cg.pt"
    save_checkpoint(obj, path)
    return path, g, margin


def _slide(tmp_path: Path, shape: tuple[int, int, int] = (5, 150, 170)) -> tuple[Path, np.ndarray]:
    from zse.pipeline.io.write import write_volume

    vol = np.random.default_rng(4).integers(0, 256, shape).astype(np.uint8)
    return write_volume(tmp_path / "in.ome.zarr", vol, voxel_size_um=(1.5, 0.5, 0.5), progress=False), vol


def test_tiled_equals_whole_volume_through_zse_enhance(tmp_path: Path) -> None:
    """At the checkpoint's margin (radius rounded up to the stride period 4) and the default overlap (2 ×
    margin), `zse.enhance` equals the network applied once to the reflect-padded whole volume (≤ 1 LSB);
    a margin below the radius does not (the oracle can fail)."""
    import zse

    path, g, margin = _checkpoint_file(tmp_path)
    assert margin == 32  # radius 31
    src, vol = _slide(tmp_path)
    res = zse.enhance(src, tmp_path / "out.ome.zarr", str(path), tile=128, block=256, workers=0, progress=False,
                      skip_background=False)
    assert (res.overlap, res.margin) == (64, 32)
    got = np.asarray(zarr.open_array(str(tmp_path / "out.ome.zarr" / "0"))[...])
    v = torch.from_numpy(vol.astype(np.float32) / 127.5 - 1.0)[None, None]
    vp = torch.nn.functional.pad(v, (margin,) * 4 + (0, 0), mode="reflect")
    with torch.no_grad():
        ref_f = g(vp)[0, 0, :, margin:-margin, margin:-margin].numpy()
    ref = np.clip(np.round((ref_f + 1.0) * 127.5), 0, 255)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    zse.enhance(src, tmp_path / "small.ome.zarr", str(path), tile=128, overlap=16, margin=8, block=256, workers=0,
                progress=False, skip_background=False)
    small = np.asarray(zarr.open_array(str(tmp_path / "small.ome.zarr" / "0"))[...])
    assert np.abs(small.astype(int) - ref.astype(int)).max() > 1


def test_export_to_pt2_equals_the_checkpoint_and_enhances(tmp_path: Path) -> None:
    import zse
    from zse.models.export import ExportedProgramFactory, export_checkpoint

    path, _, margin = _checkpoint_file(tmp_path, n_res=1)
    pt2 = export_checkpoint(path, tmp_path / "cg.pt2", tile=(5, 64, 64))
    ef, cf = ExportedProgramFactory(pt2), CheckpointFactory(path)
    assert ef.margin_px == margin == 24
    for n in (1, 3):
        x = torch.rand(n, 1, 5, 64, 64) * 2 - 1
        torch.testing.assert_close(ef.build("cpu")(x), cf.build("cpu")(x), atol=1e-5, rtol=1e-5)
    src, _ = _slide(tmp_path, (5, 80, 90))
    zse.enhance(src, tmp_path / "a.ome.zarr", str(pt2), tile=64, block=128, workers=0, progress=False,
                skip_background=False)
    zse.enhance(src, tmp_path / "b.ome.zarr", str(path), tile=64, block=128, workers=0, progress=False,
                skip_background=False)
    a = np.asarray(zarr.open_array(str(tmp_path / "a.ome.zarr" / "0"))[...]).astype(int)
    b = np.asarray(zarr.open_array(str(tmp_path / "b.ome.zarr" / "0"))[...]).astype(int)
    assert np.abs(a - b).max() <= 1


# ------------------------------------------------------------------------------------------ bundled weights


def test_bundled_weights_are_small_self_describing_and_from_the_cpu_preset() -> None:
    from zse.models.registry import BUNDLED, WEIGHTS_DIR, available

    path = WEIGHTS_DIR / "cyclegan-2d.pt"
    assert "cyclegan-2d" in BUNDLED and "cyclegan-2d" in available() and path.stat().st_size < 10e6
    ck = load_checkpoint(path)
    assert ck["kind"] == "inference" and ck["step"] == 1600 and ck["translation_equivariant"] is True
    assert ck["margin_px"] == 32 == aligned_margin(load_config("cyclegan-2d-cpu"))  # radius 31
    recorded = config_from_dict(ck["train_config"]).model_dump(mode="json")
    assert recorded == load_config("cyclegan-2d-cpu").model_dump(mode="json")
    assert recorded["cyclegan"]["lambda_content"] == 0.0  # trained without the VGG content term


def test_zse_enhance_with_the_bundled_model_on_a_tiny_ome_zarr(tmp_path: Path) -> None:
    from zse.pipeline.io.ngff import open_image
    from zse.workflows.cli import main

    src, vol = _slide(tmp_path, (4, 72, 80))
    try:
        main(["enhance", str(src), str(tmp_path / "out.ome.zarr"), "--model", "cyclegan-2d", "--tile", "128",
              "--block", "128", "--workers", "0", "--no-skip-background", "--quiet"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    out = open_image(tmp_path / "out.ome.zarr")
    got = np.asarray(out.levels[0][...])
    assert got.shape == vol.shape and got.dtype == vol.dtype and out.meta.voxel_size_um == (1.5, 0.5, 0.5)
    assert not np.array_equal(got, vol)  # the model changes the planes
