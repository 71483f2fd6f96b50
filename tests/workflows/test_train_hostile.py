"""`zse train` with hostile configs and run folders (issue 12): one-line errors, no overwritten or escaped runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from test_train import make_dataset, tiny_config  # noqa: E402
from zse_pipeline_helpers import assert_one_line_error, run_cli, tree_digest  # noqa: E402


def config_file(tmp_path: Path, data: Path, **changes: object) -> Path:
    d = tiny_config(data).model_dump(mode="json")
    for key, value in changes.items():
        node = d
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_train_refuses_to_overwrite_an_earlier_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "d", n=4)
    cfg = config_file(tmp_path, data)
    out = tmp_path / "run"
    args = ["train", cfg, "--out", out, "--max-steps", "2", "--device", "cpu", "--quiet"]
    assert run_cli(capsys, *args).returncode == 0
    before = tree_digest(out)
    proc = run_cli(capsys, *args)
    assert_one_line_error(proc, str(out), "already holds a training run", "--resume", "--out")
    assert tree_digest(out) == before  # the first run's checkpoints are untouched
    assert run_cli(capsys, *args[:4], "--max-steps", "3", "--resume", "--quiet").returncode == 0
    # a file where the run folder should be
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(run_cli(capsys, "train", cfg, "--out", tmp_path / "afile", "--quiet"), "is a file")


@pytest.mark.parametrize("name", ["../escaped", "ABSOLUTE", "a/b", "..", ".", ""])
def test_run_name_must_be_one_folder_name(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if name == "ABSOLUTE":
        name = str(tmp_path / "escaped-absolute")
    monkeypatch.chdir(work)
    data = make_dataset(tmp_path / "d", n=4)
    cfg = config_file(tmp_path, data)
    proc = run_cli(capsys, "train", cfg, "--set", f"name={name}", "--max-steps", "1", "--quiet")
    assert_one_line_error(proc, "'name'", "one folder name" if name else "valid string")  # `name=` is YAML null
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "tiny.yaml", "work"]
    assert list(work.iterdir()) == []
    # the same name in the YAML file itself
    cfg = config_file(tmp_path, data, name=name)
    assert_one_line_error(run_cli(capsys, "train", cfg, "--quiet"), "'name'", "one folder name")
    assert list(work.iterdir()) == []


def test_binary_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(run_cli(capsys, "train", bad, "--out", tmp_path / "o"), str(bad), "UTF-8")
    bad.write_bytes(b"name: x\x00\x01\x02\nloss: {p: 0.3}\n")  # UTF-8, but control characters YAML refuses
    assert_one_line_error(run_cli(capsys, "train", bad, "--out", tmp_path / "o"), str(bad), "not valid YAML")
    bad.write_text("loss:\n  p: [0.3\n  kind: lsgan\n")
    line = assert_one_line_error(run_cli(capsys, "train", bad, "--out", tmp_path / "o"), str(bad), "not valid YAML", "line")
    assert len(line) < 400
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("item", ["loss.p=[0.3", "loss.p={a: b", "loss.p=: :", "=3"])
def test_bad_yaml_in_set_is_one_line(item: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, tmp_path)
    proc = run_cli(capsys, "train", cfg, "--set", item, "--out", tmp_path / "o")
    assert_one_line_error(proc, "--set", repr(item))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("change", [{"arch__kind": "foo"}, {"arch__generator__widths": "wide"},
                                    {"arch__generator__norm": ["a\nb"]}])
def test_unknown_architecture_in_a_config_is_one_line(change: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, tmp_path, **change)
    key = "'" + next(iter(change)).replace("__", ".") + "'"
    assert_one_line_error(run_cli(capsys, "train", cfg, "--out", tmp_path / "o"), str(cfg), key)
    assert not (tmp_path / "o").exists()


def test_resume_from_a_damaged_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from zse.models.checkpoint import save_checkpoint

    data = make_dataset(tmp_path / "d", n=4)
    cfg = config_file(tmp_path, data)
    out = tmp_path / "run"
    assert run_cli(capsys, "train", cfg, "--out", out, "--max-steps", "2", "--quiet").returncode == 0
    ck = torch.load(out / "last.pt", weights_only=True)
    del ck["optim"]
    save_checkpoint(ck, out / "last.pt")
    proc = run_cli(capsys, "train", cfg, "--out", out, "--max-steps", "3", "--resume", "--quiet")
    assert_one_line_error(proc, "--resume", str(out / "last.pt"))
    proc = run_cli(capsys, "train", cfg, "--out", out / "g_s.pt", "--resume", "--quiet")
    assert_one_line_error(proc, "is a file")
    save_checkpoint(torch.load(out / "g_s.pt", weights_only=True), out / "last.pt")
    proc = run_cli(capsys, "train", cfg, "--out", out, "--max-steps", "3", "--resume", "--quiet")
    assert_one_line_error(proc, "--resume", "training checkpoint")
