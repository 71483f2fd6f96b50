"""Data layout, ROI extraction, CPU smoke training, checkpoint round trip, resume == uninterrupted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from zse.errors import ConfigError, InputError
from zse.models.checkpoint import CheckpointFactory, load_checkpoint
from zse.models.config import Config, config_from_dict
from zse.models.data import RoiDataset, extract_rois, split_names
from zse.models.train import train

Z, S = 13, 16


def make_dataset(root: Path, n: int = 8, z: int = Z, s: int = S, seed: int = 0) -> Path:
    """n stacks in the ZSE-GAN layout: trainB/*.npz (Y, X, Z) z-last, trainA2D (s, s), trainA29 (s, z)."""
    rng = np.random.default_rng(seed)
    for d in ("trainB", "trainA2D", "trainA29"):
        (root / d).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:s, 0:s]
    for i in range(n):
        blobs = 128 + 80 * np.sin(yy / 2.0 + i) * np.cos(xx / 3.0)
        focus = np.exp(-((np.arange(z) - z // 2) ** 2) / 8.0)
        vol = (blobs[..., None] * focus + 200 * (1 - focus) + rng.normal(0, 4, (s, s, z))).clip(0, 255)
        np.savez(root / "trainB" / f"B_{i:03d}.npz", vol.astype(np.uint8))
        tifffile.imwrite(root / "trainA2D" / f"A_{i:03d}.tif", blobs.clip(0, 255).astype(np.uint8))
        tifffile.imwrite(root / "trainA29" / f"A_{i:03d}.tif", blobs[:, :z].clip(0, 255).astype(np.uint8))
    return root


def tiny_config(data: Path, loss: dict | None = None, data_kw: dict | None = None, **train_kw) -> Config:
    t = {"max_steps": 40, "log_every": 5, "image_every": 1000, "ckpt_every": 1000, "seed": 0}
    t.update(train_kw)
    return config_from_dict({
        "name": "tiny",
        "arch": {"name": "tiny", "generator": {"widths": [4, 8, 8], "n_res": 1, "in_kernel": [3, 3, 3],
                                               "out_kernel": [3, 3, 3], "out_padding": None, "norm": "none",
                                               "res_norm": "none", "upsample": "trilinear", "padding_yx": "reflect",
                                               "skip": "add"},
                 "discriminator": {"ndf": 4, "n_layers": 3}},
        "loss": {"alpha": {"kind": "focus-distance", "lo": 1.0, "hi": 1.67},
                 "cycle_weights": {"kind": "focus-distance", "lo": 1.03, "hi": 3.05}, "pool_size": 4, **(loss or {})},
        "optim": {"lr_g": 1e-3, "lr_d": 1e-3},
        "data": {"path": str(data), "z_planes": Z, "val_fraction": 0.2, **(data_kw or {})},
        "train": t,
    })


def test_reader_converts_z_last_and_splits(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    ds = RoiDataset.load(root, z_planes=Z, val_fraction=0.2)
    raw = np.load(root / "trainB" / ds.train_names[0])["arr_0"]
    assert ds.blurred.shape[1:] == (Z, S, S)
    assert np.array_equal(ds.blurred[0].numpy(), np.moveaxis(raw, -1, 0))
    assert len(ds.train_names) + len(ds.val_names) == 8 and ds.val_names
    assert split_names(ds.train_names + ds.val_names, 0.2, 0) == (sorted(ds.train_names), sorted(ds.val_names))
    x, y2d, y29 = ds.sample(np.random.default_rng(0), 2)
    assert x.shape == (2, 1, Z, S, S) and y2d.shape == (2, 1, S, S) and y29.shape == (2, 1, S, Z)
    assert x.min() >= -1 and x.max() <= 1
    v = torch.tensor([0, 255], dtype=torch.uint8)
    from zse.models.data import to_unit
    assert to_unit(v, "uint8").tolist() == [-1.0, 1.0]
    with pytest.raises(InputError, match="planes"):
        RoiDataset.load(root, z_planes=29)
    with pytest.raises(InputError, match="trainB"):
        RoiDataset.load(tmp_path)


def test_sharpest_plane_reals(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", s=32)
    ds = RoiDataset.load(root, z_planes=Z, val_fraction=0.2)
    r = ds.with_sharpest_plane_reals()
    assert torch.equal(r.blurred, ds.blurred) and torch.equal(r.val, ds.val)
    stacks = ds.blurred.numpy().astype(np.float64)
    lap = (-4 * stacks[:, :, 1:-1, 1:-1] + stacks[:, :, :-2, 1:-1] + stacks[:, :, 2:, 1:-1] + stacks[:, :, 1:-1, :-2]
           + stacks[:, :, 1:-1, 2:])
    best = lap.reshape(*lap.shape[:2], -1).var(axis=-1).argmax(axis=1)
    assert (best == Z // 2).mean() > 0.5  # the synthetic stacks are in focus at the centre plane
    expect = np.stack([stacks[i, k] for i, k in enumerate(best)])
    assert np.array_equal(r.sharp2d.numpy(), expect)
    n = len(ds.train_names)
    assert r.sharp29.shape == (2 * n, 32, Z)  # x offsets 0 and Z of each plane
    assert np.array_equal(r.sharp29[n + 1].numpy(), expect[1][:, Z : 2 * Z])
    x, y2d, y29 = r.sample(np.random.default_rng(0), 3, crop=16)
    assert y2d.shape == (3, 1, 16, 16) and y29.shape == (3, 1, 16, Z)
    narrow = RoiDataset(ds.blurred[..., :Z - 1], ds.val, ds.sharp2d, ds.sharp29, ds.dtype, ds.train_names, ds.val_names)
    with pytest.raises(InputError, match="too narrow"):
        narrow.with_sharpest_plane_reals()


def test_huron_layout_reads(huron_dir: Path) -> None:
    ds = RoiDataset.load(huron_dir, z_planes=29, val_fraction=0.05)
    assert ds.blurred.shape[1:] == (29, 128, 128) and ds.sharp29.shape[1:] == (128, 29)
    assert 1 <= len(ds.val_names) < 30


def test_smoke_training_loss_falls_and_checkpoint_round_trips(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    res = train(tiny_config(root, image_every=20), tmp_path / "run", progress=False)
    assert res.step == 40 and res.stopped_by == "max_steps"
    rows = list(csv.DictReader(open(res.log)))
    g = [float(r["g_total"]) for r in rows]
    assert np.mean(g[-2:]) < np.mean(g[:2]), g
    assert (tmp_path / "run" / "val_0000020.png").stat().st_size > 1000
    ck = load_checkpoint(res.last_checkpoint)
    assert ck["step"] == 40 and ck["model_kind"] == "tiny" and set(ck["state"]) == {"g_s", "g_b", "d_s", "d_b"}
    assert ck["margin_px"] > 0 and ck["zse_version"] and ck["rng"]["torch"].dtype == torch.uint8
    assert len(ck["pools"]["fake_s"]["images"]) == 4
    inf = CheckpointFactory(res.inference_checkpoint)
    assert inf.margin_px == ck["margin_px"] and res.inference_checkpoint.stat().st_size < 10e6
    x = torch.rand(1, 1, Z, S, S) * 2 - 1
    torch.testing.assert_close(inf.build("cpu")(x), CheckpointFactory(res.last_checkpoint).build("cpu")(x))


CPU_VARIANT = ({"cycle_warmup_steps": 9, "lambda_identity": 0.0, "fidelity_norm": "l2", "lambda_fidelity": 1.0},
               {"reals": "sharpest-plane"})
OPTIONS_VARIANT = ({"cycle_norm": "charbonnier", "lambda_identity": 0.0}, {"reals": "files-matched"})


@pytest.mark.parametrize(("loss", "data_kw"), [(None, None), CPU_VARIANT, OPTIONS_VARIANT],
                         ids=["notebook", "zse-gan-cpu-losses", "issue-11-options"])
def test_resume_equals_uninterrupted(tmp_path: Path, loss: dict | None, data_kw: dict | None) -> None:
    root = make_dataset(tmp_path / "d")
    straight = train(tiny_config(root, loss, data_kw, max_steps=12, ckpt_every=6), tmp_path / "a", progress=False)
    train(tiny_config(root, loss, data_kw, max_steps=6), tmp_path / "b", progress=False)
    resumed = train(tiny_config(root, loss, data_kw, max_steps=12), tmp_path / "b", resume=True, progress=False)
    if data_kw and data_kw.get("reals") == "files-matched":  # the same run with one Adam per generator
        sep = tiny_config(root, loss, data_kw, max_steps=12)
        sep = sep.model_copy(update={"optim": sep.optim.model_copy(update={"separate_generators": True})})
        assert set(load_checkpoint(train(sep, tmp_path / "c", progress=False).last_checkpoint)["optim"]) == {"g_s", "g_b", "d"}
    a, b = load_checkpoint(straight.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert a["step"] == b["step"] == 12
    for net in ("g_s", "g_b", "d_s", "d_b"):
        for k, v in a["state"][net].items():
            assert torch.equal(v, b["state"][net][k]), (net, k)
    other = tiny_config(root, max_steps=12).model_copy(update={"loss": tiny_config(root, loss).loss.model_copy(update={"p": 0.1})})
    with pytest.raises(ConfigError, match="different configuration"):
        train(other, tmp_path / "b", resume=True, progress=False)
    with pytest.raises(InputError, match="no checkpoint"):
        train(tiny_config(root), tmp_path / "nothing", resume=True, progress=False)


def test_time_limit_still_saves(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", n=3)
    res = train(tiny_config(root, max_steps=10_000, max_minutes=0.001), tmp_path / "t", progress=False)
    assert res.stopped_by == "max_minutes" and res.step < 10_000
    assert load_checkpoint(res.last_checkpoint)["step"] == res.step


def _slide(z: int = Z, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = np.full((z, h, w), 220, dtype=np.uint8)
    vol[:, 20:90, 10:110] = rng.integers(40, 140, (z, 70, 100), dtype=np.uint8)  # dark tissue
    return vol


def test_extract_rois_from_array(tmp_path: Path) -> None:
    vol = _slide()
    meta = extract_rois(vol, tmp_path / "rois", n=5, roi=32, seed=1, val_fraction=0.2)
    assert len(meta["rois"]) == 5
    for r in meta["rois"]:
        assert 20 - 16 <= r["y"] and r["y"] + 32 <= 90 + 16 and 0 <= r["focal_plane"] < Z
    ds = RoiDataset.load(tmp_path / "rois", z_planes=Z)
    assert ds.blurred.shape[1:] == (Z, 32, 32) and ds.sharp29.shape[1:] == (32, Z)
    split = json.loads((tmp_path / "rois" / "split.json").read_text())
    assert sorted(split["train"] + split["val"]) == sorted(ds.train_names + ds.val_names)
    r0 = meta["rois"][0]
    raw = np.load(tmp_path / "rois" / "trainB" / f"{r0['name']}.npz")["arr_0"]
    assert np.array_equal(np.moveaxis(raw, -1, 0), vol[:, r0["y"] : r0["y"] + 32, r0["x"] : r0["x"] + 32])
    again = extract_rois(vol, tmp_path / "rois2", n=5, roi=32, seed=1, val_fraction=0.2)
    assert again["rois"] == meta["rois"]
    with pytest.raises(InputError, match="tissue"):
        extract_rois(np.full((Z, 64, 64), 200, np.uint8), tmp_path / "none", n=2, roi=32)


def test_cycle_warmup_keeps_cycle_gradient_off_g_s(tmp_path: Path) -> None:
    """In the warm-up G_S gets no gradient from the cycle term: with every other G_S term off
    (adversarial weights 0 via p = 0 and α = 0, no fidelity, no identity), G_S must not change in the
    warm-up and must change after it."""
    root = make_dataset(tmp_path / "d")
    loss = {"cycle_warmup_steps": 3, "lambda_identity": 0.0, "lambda_fidelity": 0.0, "p": 0.0,
            "alpha": {"kind": "vector", "values": [0.0] * Z}}
    cfg = tiny_config(root, loss, max_steps=3)
    a = train(cfg, tmp_path / "w", progress=False)
    g0 = load_checkpoint(a.last_checkpoint)["state"]["g_s"]
    from zse.models.networks.generators import build_generator

    torch.manual_seed(cfg.train.seed)  # train() seeds, then builds G_S first
    init = build_generator(cfg.arch.generator).state_dict()
    assert all(torch.equal(g0[k], init[k]) for k in init)
    b = train(tiny_config(root, loss, max_steps=5), tmp_path / "w", resume=True, progress=False)
    g1 = load_checkpoint(b.last_checkpoint)["state"]["g_s"]
    assert any(not torch.equal(g1[k], init[k]) for k in init)


def test_files_matched_reals_take_the_stacks_brightness(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    ds = RoiDataset.load(root, z_planes=Z, val_fraction=0.2)
    bright = RoiDataset(ds.blurred, ds.val, (ds.sharp2d.int() // 2 + 120).to(torch.uint8), ds.sharp29, ds.dtype,
                        ds.train_names, ds.val_names)
    ref = bright.with_sharpest_plane_reals().sharp2d.float()
    m = bright.with_matched_reals()
    assert abs(float(m.sharp2d.float().mean()) - float(ref.mean())) < 1.0
    assert abs(float(m.sharp2d.float().std()) - float(ref.std())) < 1.0
    assert m.sharp2d.shape == bright.sharp2d.shape and m.sharp29.shape == bright.sharp29.shape


def test_resumed_step_refuses_a_checkpoint_without_a_whole_step_count(tmp_path: Path) -> None:
    from zse.errors import ModelError
    from zse.models.train import resumed_step

    last = tmp_path / "last.pt"
    assert resumed_step({"step": 7}, last) == 7
    for bad in ({}, {"step": None}, {"step": "7"}, {"step": 7.0}, {"step": True}):
        with pytest.raises(ModelError, match="no step count"):
            resumed_step(bad, last)
