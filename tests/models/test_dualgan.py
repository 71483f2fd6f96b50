"""dualgan-3d (3D-dualHRGAN, z super-resolution): voxel shuffle against a loop, shapes and the untrained
generator against linear interpolation, y-x translation equivariance, the radius by impulse against the
gradient of random weights, the gradient penalty of a linear critic, the simulator's LR/HR positions, a
tiny CPU training, resume == uninterrupted, export to .pt2 with sz× the planes, config errors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from zse.errors import ConfigError, ModelError
from zse.models.checkpoint import CheckpointFactory, load_checkpoint
from zse.models.config import WDSRConfig, config_from_dict, load_config
from zse.models.networks import build_enhancer, enhancer_is_equivariant, enhancer_radius_yx
from zse.models.networks.wdsr import (
    WNConv3d,
    build_critic,
    build_degrader,
    build_wdsr_generator,
    gradient_penalty,
    voxel_shuffle_3d,
    wdsr_radius_yx,
)
from zse.models.train import train

TINY_WDSR = {"width": 4, "n_blocks": 1, "expansion": 2, "degrader_width": 4, "critic_width": 4}
TINY_DATA = {"lr_planes": 6, "crop_z": 4, "crop_yx": 16, "phantoms": 1, "phantom_side": 24, "lr_g": 1e-3,
             "lr_critic": 1e-3}


def tiny_config(*, steps: int = 8, wdsr: dict[str, Any] | None = None, ckpt_every: int = 1000, **dualgan: Any) -> Any:
    return config_from_dict({
        "name": "dg-test",
        "arch": {"name": "dualgan-3d", "kind": "dualgan-3d", "wdsr": {**TINY_WDSR, **(wdsr or {})}},
        "dualgan": {**TINY_DATA, **dualgan},
        "data": {"z_planes": 5},
        "train": {"max_steps": steps, "log_every": 1, "image_every": 1000, "ckpt_every": ckpt_every, "batch_size": 2,
                  "tile_yx": 32},
    })


def _randomise(g: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the tail starts at g = 0: the untrained generator interpolates)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, WNConv3d):
                m.v.normal_()
                m.g.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return g


def _log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("scale", [(2, 1, 1), (3, 1, 1), (2, 2, 1), (1, 2, 3)])
def test_voxel_shuffle_equals_a_loop(scale: tuple[int, int, int]) -> None:
    sz, sy, sx = scale
    torch.manual_seed(0)
    x = torch.randn(2, 3 * sz * sy * sx, 3, 4, 5)
    want = torch.empty(2, 3, 3 * sz, 4 * sy, 5 * sx)
    for c in range(3):
        for a in range(sz):
            for b in range(sy):
                for d in range(sx):
                    for k in range(3):
                        for y in range(4):
                            for xx in range(5):
                                want[:, c, k * sz + a, y * sy + b, xx * sx + d] = x[:, c * sz * sy * sx + (a * sy + b) * sx + d, k, y, xx]
    torch.testing.assert_close(voxel_shuffle_3d(x, scale), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple"):
        voxel_shuffle_3d(torch.zeros(1, 5, 2, 2, 2), (2, 1, 1))


@pytest.mark.parametrize("sz", [2, 3])
def test_untrained_generator_is_linear_interpolation_at_the_convention_positions(sz: int) -> None:
    """(N, 1, Z, Y, X) → (N, 1, sz·Z, Y, X); output plane j lies at (j + 0.5)/sz − 0.5 input planes, which is
    torch's trilinear `align_corners=False` (edge planes clamped = replicate padding in z)."""
    g = build_wdsr_generator(WDSRConfig(scale_zyx=(sz, 1, 1), width=4, n_blocks=2))
    x = torch.rand(2, 1, 7, 9, 11) * 2 - 1
    y = g(x)
    assert y.shape == (2, 1, 7 * sz, 9, 11)
    want = torch.nn.functional.interpolate(x, scale_factor=(sz, 1, 1), mode="trilinear", align_corners=False)
    torch.testing.assert_close(y, want, atol=1e-5, rtol=0)


def test_degrader_and_critics_shapes() -> None:
    cfg = WDSRConfig(**TINY_WDSR)
    hr = torch.rand(2, 1, 12, 16, 16)
    assert build_degrader(cfg)(hr).shape == (2, 1, 6, 16, 16)
    # the untrained degrader is the mean of each LR plane's sz HR planes (its strided conv starts at zero)
    torch.testing.assert_close(build_degrader(cfg)(hr), 0.5 * (hr[:, :, 0::2] + hr[:, :, 1::2]))
    assert build_critic(cfg)(hr).shape == (2, 1, 3, 4, 4)


def test_generator_is_translation_equivariant_in_y_and_x() -> None:
    cfg = WDSRConfig(width=4, n_blocks=2)
    g = _randomise(build_wdsr_generator(cfg)).eval()
    r = wdsr_radius_yx(cfg)
    x = torch.rand(1, 1, 5, 40, 40) * 2 - 1
    dy, dx = 3, 5
    with torch.no_grad():
        a = g(x)
        b = g(torch.roll(x, (dy, dx), dims=(3, 4)))
    m = r + max(dy, dx)
    ref = torch.roll(a, (dy, dx), dims=(3, 4))[..., m:-m, m:-m]
    torch.testing.assert_close(b[..., m:-m, m:-m], ref, atol=1e-5, rtol=0)
    assert (a[..., m:-m, m:-m] - ref).abs().max() > 1e-2  # the shift is visible: the comparison can fail
    assert enhancer_is_equivariant(config_from_dict({"arch": {"kind": "dualgan-3d"}}).arch)


def _gradient_radius(g: torch.nn.Module, size: int = 41) -> int:
    """The farthest input pixel (y or x) that one central output voxel depends on, random weights."""
    x = torch.rand(1, 1, 5, size, size, requires_grad=True)
    g(x)[0, 0, 4, size // 2, size // 2].backward()
    assert x.grad is not None
    nz = torch.nonzero(x.grad[0, 0].abs().sum(0) > 0)
    return int((nz - size // 2).abs().max())


@pytest.mark.parametrize("n_blocks", [0, 1, 3])
def test_radius_by_impulse_equals_the_gradient_of_random_weights(n_blocks: int) -> None:
    cfg = WDSRConfig(width=4, n_blocks=n_blocks)
    r = wdsr_radius_yx(cfg)
    assert r == _gradient_radius(_randomise(build_wdsr_generator(cfg), seed=n_blocks))
    assert r == n_blocks + 2  # head k3, one k3 per block, tail k3 (the skip is 1×1 in y, x)
    assert enhancer_radius_yx(config_from_dict({"arch": {"kind": "dualgan-3d", "wdsr": {"n_blocks": n_blocks}}}).arch) == r


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared() -> None:
    """f(x) = w·x has gradient w everywhere: the penalty is (‖w‖₂ − 1)² whatever the interpolate."""

    class Linear(torch.nn.Module):
        def __init__(self, w: torch.Tensor) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(w)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1, 1)

    torch.manual_seed(0)
    w = torch.randn(1, 1, 3, 4, 5)
    crit = Linear(w)
    real, fake = torch.randn(3, 1, 3, 4, 5), torch.randn(3, 1, 3, 4, 5)
    gp = gradient_penalty(crit, real, fake, torch.tensor([0.0, 0.3, 1.0]))
    want = (float(w.norm()) - 1.0) ** 2
    assert gp.item() == pytest.approx(want, rel=1e-5)
    gp.backward()  # differentiable w.r.t. the critic: d/dw (‖w‖ − 1)² = 2(‖w‖ − 1)·w/‖w‖
    assert crit.w.grad is not None
    torch.testing.assert_close(crit.w.grad, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------ data


def test_simulated_hr_planes_lie_between_the_lr_planes() -> None:
    """On the fine μ grid the LR plane k is the midpoint of HR planes sz·k … sz·k + sz − 1 (positions ±dz/4 for
    sz = 2); the widefield OD varies smoothly in z, so the LR plane is close to the mean of its two HR planes
    and farther from the HR planes of its neighbours."""
    from zse.models.zsr_data import scene_od

    od = scene_od(3, lr_planes=6, sz=2, z_step_um=1.0, na=0.75, side=24)
    lr, hr = od["lr"], od["hr"]
    assert lr.shape == (6, 24, 24) and hr.shape == (12, 24, 24)
    own = np.abs(lr - 0.5 * (hr[0::2] + hr[1::2])).mean()
    shifted = np.abs(lr[1:] - 0.5 * (hr[1:-1:2] + hr[2::2])).mean()  # HR planes at −dz/4 … +dz/4 − dz/2
    assert own < 0.3 * shifted


# ------------------------------------------------------------------------------------------ training


def test_tiny_cpu_training_critics_learn_and_cycle_falls(tmp_path: Path) -> None:
    """60 steps on tiny simulator crops: with the paper's losses the critics' loss falls and their Wasserstein
    estimate on HR rises; with the adversarial term off on noise-free data the cycle L1 falls."""
    res = train(tiny_config(steps=60), tmp_path / "gan", progress=False)
    rows = _log(res.log)

    def quarter_means(key: str) -> tuple[float, float]:
        v = np.array([float(r[key]) for r in rows])
        n = len(v) // 4
        return float(v[:n].mean()), float(v[-n:].mean())

    d0, d1 = quarter_means("d_total")
    w0, w1 = quarter_means("wdist_hr")
    assert d1 < d0 - 1.0 and w1 > w0 + 1.0
    res = train(tiny_config(steps=60, lambda_adv=0.0, photons=1e9, read_noise=0.0), tmp_path / "cyc", progress=False)
    rows = _log(res.log)
    c0, c1 = quarter_means("cycle")
    assert c1 < 0.95 * c0
    ck = load_checkpoint(res.last_checkpoint)
    assert ck["scale_zyx"] == [2, 1, 1] and set(ck["state"]) == {"g_s", "g_b", "d_hr", "d_lr"}
    assert ck["margin_px"] == 4  # radius 3 rounded up to the stride period 4
    assert (tmp_path / "cyc" / "val_0000060.png").is_file()
    inf = CheckpointFactory(res.inference_checkpoint)
    assert inf.scale_zyx == (2, 1, 1)
    assert inf.build("cpu")(torch.zeros(1, 1, 5, 16, 16)).shape == (1, 1, 10, 16, 16)


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    straight = train(tiny_config(steps=6, n_critic=2, ckpt_every=3), tmp_path / "a", progress=False)
    train(tiny_config(steps=3, n_critic=2, ckpt_every=3), tmp_path / "b", progress=False)
    resumed = train(tiny_config(steps=6, n_critic=2, ckpt_every=3), tmp_path / "b", resume=True, progress=False)
    a = load_checkpoint(straight.last_checkpoint)
    b = load_checkpoint(resumed.last_checkpoint)
    assert a["step"] == b["step"] == 6
    for net in ("g_s", "g_b", "d_hr", "d_lr"):
        for k in a["state"][net]:
            torch.testing.assert_close(a["state"][net][k], b["state"][net][k], rtol=0, atol=0)
    assert float(_log(straight.log)[-1]["g_total"]) == float(_log(resumed.log)[-1]["g_total"])


def test_export_pt2_has_sz_times_the_planes(tmp_path: Path) -> None:
    from zse.models.export import ExportedProgramFactory, read_metadata
    from zse.workflows.cli import main

    res = train(tiny_config(steps=2), tmp_path / "run", progress=False)
    pt2 = tmp_path / "dg.pt2"
    main(["export", str(res.inference_checkpoint), str(pt2), "--tile", "5,32,32"])
    assert read_metadata(pt2)["scale_zyx"] == [2, 1, 1]
    ef, cf = ExportedProgramFactory(pt2), CheckpointFactory(res.inference_checkpoint)
    assert ef.scale_zyx == (2, 1, 1)
    for n in (1, 3):
        x = torch.rand(n, 1, 5, 32, 32) * 2 - 1
        y = ef.build("cpu")(x)
        assert y.shape == (n, 1, 10, 32, 32)
        torch.testing.assert_close(y, cf.build("cpu")(x), atol=1e-5, rtol=1e-5)


def test_export_refuses_a_program_whose_output_disagrees_with_scale_zyx(tmp_path: Path) -> None:
    from zse.models.export import check_program_output

    g = build_enhancer(config_from_dict({"arch": {"kind": "dualgan-3d", "wdsr": TINY_WDSR}}).arch)
    ep = torch.export.export(g, (torch.zeros(2, 1, 5, 16, 16),),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}})
    check_program_output(ep, (5, 16, 16), (2, 1, 1), "p.pt2")
    with pytest.raises(ModelError, match=r"scale_zyx \[1, 1, 1\].*\(N, 1, 5, 16, 16\)"):
        check_program_output(ep, (5, 16, 16), (1, 1, 1), "p.pt2")


# ------------------------------------------------------------------------------------------ configuration


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    for bad, pattern in [({"dualgan": {"crop_z": 40}}, "crop_z 40 exceeds lr_planes 29"),
                         ({"arch": {"wdsr": {"scale_zyx": [9, 1, 1]}}}, "whole numbers 1..8"),
                         ({"dualgan": {"lambda_gp": -1}}, "lambda_gp"),
                         ({"dualgan": {"unknown": 1}}, "unknown")]:
        with pytest.raises(ConfigError, match=pattern) as ex:
            config_from_dict(bad)
        assert "\n" not in str(ex.value)
    cfg = tiny_config(wdsr={"scale_zyx": (2, 2, 1)})
    with pytest.raises(ConfigError, match=r"z super-resolution data only.*\(sz, 1, 1\)") as ex:
        train(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(ex.value)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_presets_paper_numbers_and_cpu() -> None:
    paper, cpu = load_config("dualgan-3d"), load_config("dualgan-3d-cpu")
    for c in (paper, cpu):
        assert c.arch.kind == "dualgan-3d" and c.arch.wdsr.scale_zyx == (2, 1, 1)
        assert c.dualgan.lambda_gp == 10.0 and c.dualgan.lr_critic == 1e-4 and c.arch.wdsr.padding_yx == "reflect"
    assert paper.dualgan.lambda_cycle == 10.0


# ------------------------------------------------------------------------------------------ pipeline


def test_zse_enhance_with_a_tiny_dualgan_checkpoint_doubles_the_planes(tmp_path: Path) -> None:
    """A tiny dualgan-3d checkpoint (random weights) through `zse.enhance` on a tiny OME-Zarr: 2Z planes at half
    the z voxel size, and tiled = the generator once on the reflect-padded whole volume (≤ 1 LSB)."""
    import zarr

    import zse
    from zse.models.checkpoint import save_checkpoint
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume

    res = train(tiny_config(steps=1), tmp_path / "run", progress=False)
    ck = load_checkpoint(res.inference_checkpoint)
    g = _randomise(build_wdsr_generator(WDSRConfig(**TINY_WDSR)), seed=7).eval()
    ck["state"]["g_s"] = {k: v.detach().clone() for k, v in g.state_dict().items()}
    path = tmp_path / "dg.pt"
    save_checkpoint(ck, path)
    vol = np.random.default_rng(4).integers(0, 256, (5, 70, 90)).astype(np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, voxel_size_um=(1.5, 0.5, 0.5), progress=False)
    out = tmp_path / "out.ome.zarr"
    r = zse.enhance(src, out, str(path), tile=32, block=64, workers=0, progress=False, skip_background=False)
    margin = r.margin
    assert margin == ck["margin_px"] == 4
    img = open_image(out)
    assert img.meta.voxel_size_um == pytest.approx((0.75, 0.5, 0.5))
    got = np.asarray(zarr.open_array(str(out / "0"))[...])
    assert got.shape == (10, 70, 90)
    v = torch.from_numpy(vol.astype(np.float32) / 127.5 - 1.0)[None, None]
    vp = torch.nn.functional.pad(v, (margin,) * 4 + (0, 0), mode="reflect")
    with torch.no_grad():
        ref_f = g(vp)[0, 0, :, margin:-margin, margin:-margin].numpy()
    ref = np.clip(np.round((ref_f + 1.0) * 127.5), 0, 255)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


# ------------------------------------------------------------------------------------------ bundled weights


def test_bundled_weights_are_small_self_describing_and_from_the_cpu_preset() -> None:
    from zse.models.registry import BUNDLED, WEIGHTS_DIR, available, resolve

    path = WEIGHTS_DIR / "dualgan-3d.pt"
    assert "dualgan-3d" in BUNDLED and "dualgan-3d" in available()
    assert path.stat().st_size < 10e6
    ck = load_checkpoint(path)
    assert ck["kind"] == "inference" and ck["scale_zyx"] == [2, 1, 1] and ck["margin_px"] == 8
    # trained with the preset models/weights/README.md names (fields added since take their defaults)
    recorded = config_from_dict(ck["train_config"]).model_dump(mode="json")
    assert recorded == load_config("dualgan-3d-cpu").model_dump(mode="json")
    f = resolve("dualgan-3d")
    assert f.scale_zyx == (2, 1, 1)  # type: ignore[attr-defined]
    x = torch.rand(1, 1, 29, 24, 24) * 2 - 1
    y = f.build("cpu")(x)
    assert y.shape == (1, 1, 58, 24, 24) and torch.isfinite(y).all()
    lin = torch.nn.functional.interpolate(x, scale_factor=(2, 1, 1), mode="trilinear", align_corners=False)
    assert (y - lin).abs().mean() > 1e-3  # trained: no longer the untrained generator (linear interpolation)


def test_zse_enhance_with_the_bundled_model_on_a_tiny_ome_zarr(tmp_path: Path) -> None:
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.workflows.cli import main

    vol = np.random.default_rng(5).integers(90, 200, (6, 40, 44)).astype(np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, voxel_size_um=(1.0, 0.5, 0.5), progress=False)
    out = tmp_path / "out.ome.zarr"
    try:
        main(["enhance", str(src), str(out), "--model", "dualgan-3d", "--tile", "128", "--block", "128", "--workers",
              "0", "--no-skip-background", "--quiet"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    img = open_image(out)
    assert img.meta.voxel_size_um == pytest.approx((0.5, 0.5, 0.5))
    got = np.asarray(img.levels[0][...])
    assert got.shape == (12, 40, 44) and got.dtype == np.uint8
