"""`zse train`, `zse export`, `zse extract-rois` through the CLI entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from zse.pipeline.io.write import write_volume
from zse.workflows.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_train import Z, make_dataset, tiny_config  # noqa: E402


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _config_file(tmp_path: Path, data: Path, **extra) -> Path:
    d = tiny_config(data).model_dump(mode="json")
    d.update(extra)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_train_then_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "d", n=4)
    cfg = _config_file(tmp_path, tmp_path / "elsewhere")
    out = tmp_path / "run"
    rc = run_cli(["train", str(cfg), "--data", str(data), "--out", str(out), "--max-steps", "4", "--device", "cpu",
                  "--quiet", "--set", "train.log_every=2"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "last.pt").is_file() and (out / "g_s.pt").is_file()
    assert len((out / "train_log.csv").read_text().splitlines()) == 3
    rc = run_cli(["train", str(cfg), "--data", str(data), "--out", str(out), "--max-steps", "6", "--resume", "--quiet"])
    assert rc == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 6
    assert run_cli(["export", str(out / "last.pt"), str(tmp_path / "g.pt2")]) == 0
    assert run_cli(["export", str(out / "last.pt"), str(tmp_path / "g16.pt"), "--fp16"]) == 0
    assert run_cli(["export", str(out / "last.pt"), str(tmp_path / "g16.pt")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_train_refuses_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path, tmp_path, learning_rate=1)
    assert run_cli(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "zse: error:" in err and "unknown key 'learning_rate'" in err
    assert run_cli(["train", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert "presets: " in err and "notebook, paper, unet3d-gan" in err and "zse-gan-cpu" in err


def test_extract_rois_from_ome_zarr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = np.full((Z, 96, 160), 220, dtype=np.uint8)
    vol[:, 16:90, 20:150] = rng.integers(40, 140, (Z, 74, 130), dtype=np.uint8)
    slide = write_volume(tmp_path / "slide.ome.zarr", vol, voxel_size_um=(1, 1, 1), progress=False)
    sharp = write_volume(tmp_path / "sharp.ome.zarr", vol[Z // 2 : Z // 2 + 1], voxel_size_um=(1, 1, 1), progress=False)
    out = tmp_path / "rois"
    assert run_cli(["extract-rois", str(slide), str(out), "--n", "4", "--roi", "32", "--seed", "3",
                    "--in-focus", str(sharp)]) == 0
    assert len(list((out / "trainB").glob("*.npz"))) == 4
    assert (out / "split.json").is_file()
    from zse.models.data import RoiDataset

    ds = RoiDataset.load(out, z_planes=Z)
    assert ds.sharp2d.shape[1:] == (32, 32) and ds.sharp29.shape[1:] == (32, Z)
    assert run_cli(["extract-rois", str(slide), str(out), "--n", "4", "--roi", "32"]) == 2
