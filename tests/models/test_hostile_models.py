"""Hostile model files (issue 12): nothing in a `.pt`/`.pt2` runs code; bad ones are one-line ModelErrors.

Every test that could run code uses a payload that only creates a marker file in tmp_path, and checks
that the marker does not exist afterwards. CLI runs go through `zse.workflows.cli.main` in-process and
check the one-line error (exit 2, no traceback), that OUT was not created and that IN is unchanged.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from zse.errors import ModelError
from zse.models.checkpoint import FORMAT, VERSION, CheckpointFactory, save_checkpoint
from zse.models.config import GeneratorConfig
from zse.models.export import ExportedProgramFactory, export_checkpoint, read_metadata
from zse.models.networks.generators import build_generator, structural_radius_yx
from zse.models.registry import resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from zse_pipeline_helpers import assert_one_line_error, run_cli, tree_digest  # noqa: E402

TINY = GeneratorConfig(widths=(4, 8, 8), n_res=1, in_kernel=(3, 3, 3), out_kernel=(3, 3, 3), out_padding=None,
                       norm="none", res_norm="none", upsample="trilinear", padding_yx="reflect", skip="add")


class Evil:
    """Unpickling this runs `touch MARKER` (the attack a model file could carry)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------- helpers




def tiny_input(tmp_path: Path) -> Path:
    from zse.pipeline.io.write import write_volume

    path = tmp_path / "in.ome.zarr"
    if path.exists():
        return path
    return write_volume(path, np.full((3, 32, 32), 200, np.uint8), progress=False)


def assert_enhance_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Path, *needles: str) -> str:
    """`zse enhance IN OUT --model MODEL` exits 2 with one line naming MODEL; IN unchanged, OUT not created."""
    src = tiny_input(tmp_path)
    before = tree_digest(src)
    out = tmp_path / "out.ome.zarr"
    proc = run_cli(capsys, "enhance", src, out, "--model", model, "--workers", "0", "--quiet")
    line = assert_one_line_error(proc, str(model), *needles)
    assert not out.exists()
    assert tree_digest(src) == before
    return line


def ckpt_dict(**overrides: object) -> dict:
    torch.manual_seed(0)
    g = build_generator(TINY)
    obj = {"format": FORMAT, "version": VERSION, "kind": "training", "model_kind": "tiny",
           "arch": {"name": "tiny", "generator": TINY.model_dump(mode="json")}, "tile": {"z": 13, "yx": 16},
           "margin_px": structural_radius_yx(TINY), "translation_equivariant": True, "step": 3,
           "state": {"g_s": g.state_dict()}}
    obj.update(overrides)
    return obj


def rewrite_zip(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None],
                add: dict[str, bytes] | None = None) -> Path:
    """Copy the zip `src` to `dst`, each entry through `edit(name, data)` (None drops it), plus `add`."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zo:
        root = zi.namelist()[0].split("/")[0]
        for info in zi.infolist():
            data = edit(info.filename, zi.read(info.filename))
            if data is not None:
                zo.writestr(info.filename, data)
        for rel, data in (add or {}).items():
            zo.writestr(f"{root}/{rel}", data)
    return dst


def torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pt2_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two legitimate `.pt2` files: `zse export` of a tiny checkpoint, and torch.export.save of a plain conv net."""
    d = tmp_path_factory.mktemp("pt2")
    ck = d / "tiny.pt"
    save_checkpoint(ckpt_dict(), ck)
    zse_pt2 = export_checkpoint(ck, d / "zse-export.pt2")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(2, 1, 3, padding=1))
    batch = torch.export.Dim("batch", min=1, max=4096)
    ep = torch.export.export(net.eval(), (torch.zeros(2, 1, 3, 32, 32),), dynamic_shapes=({0: batch},))
    plain = d / "torch-save.pt2"
    torch.export.save(ep, plain)
    return {"zse-export": zse_pt2, "torch-export-save": plain}


def assert_refused_everywhere(capsys: pytest.CaptureFixture[str], tmp_path: Path, evil: Path, marker: Path,
                              *needles: str) -> None:
    """ExportedProgramFactory, resolve() and `zse enhance --model` all refuse `evil` in one line; no code ran."""
    with pytest.raises(ModelError) as info:
        ExportedProgramFactory(evil)
    msg = info.value.message
    assert str(evil) in msg and "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    with pytest.raises(ModelError):
        resolve(str(evil))
    with pytest.raises(ModelError):
        read_metadata(evil)
    assert not marker.exists(), "code in the model file ran"
    assert_enhance_refused(capsys, tmp_path, evil, *needles)
    assert not marker.exists(), "code in the model file ran"


# ---------------------------------------------------------------- .pt2: no code runs


@pytest.mark.parametrize("source", ["zse-export", "torch-export-save"])
def test_pt2_with_pickled_sample_inputs_is_refused_and_never_unpickled(
        source: str, pt2_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    payload = torch_bytes({"x": Evil(marker)})
    evil = rewrite_zip(pt2_files[source], tmp_path / "evil.pt2",
                       lambda name, data: payload if "/data/sample_inputs/" in name else data)
    assert_refused_everywhere(capsys, tmp_path, evil, marker, "refused")


@pytest.mark.parametrize("source", ["zse-export", "torch-export-save"])
def test_pt2_with_a_weight_marked_use_pickle_is_refused(
        source: str, pt2_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    payload = torch_bytes(Evil(marker))
    target: dict[str, str] = {}

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/model_weights_config.json"):
            cfg = json.loads(data)
            fqn = next(iter(cfg["config"]))
            cfg["config"][fqn]["use_pickle"] = True
            target["file"] = cfg["config"][fqn]["path_name"]
            return json.dumps(cfg).encode()
        return data

    tmp = rewrite_zip(pt2_files[source], tmp_path / "tmp.pt2", edit)
    evil = rewrite_zip(tmp, tmp_path / "evil.pt2",
                       lambda name, data: payload if name.endswith(f"data/weights/{target['file']}") else data)
    tmp.unlink()
    assert_refused_everywhere(capsys, tmp_path, evil, marker, "refused", "use_pickle")


def _program_edit(kind: str, marker: Path) -> Callable[[str, bytes], bytes]:
    """Code hidden in the program's JSON: torch evaluates shape expressions with sympify (eval), compiles
    guards_code into the module, and resolves node targets by attribute lookup under `torch`."""

    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith("models/model.json"):
            return data
        m = json.loads(data)
        if kind == "expr_str":
            text = json.dumps(m)
            sym = text.split('"expr_str": "', 1)[1].split('"', 1)[0]
            evil = f"(__import__('os').system('touch {marker}'), {sym})[1]"
            return text.replace(f'"expr_str": "{sym}"', f'"expr_str": {json.dumps(evil)}').encode()
        if kind == "guards_code":
            m["guards_code"] = [f"__import__('os').system('touch {marker}') == 0"]
        elif kind == "target":
            m["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
        elif kind == "node-name":
            m["graph_module"]["graph"]["nodes"][0]["name"] = f"x = __import__('os').system('touch {marker}')"
        return json.dumps(m).encode()

    return edit


@pytest.mark.parametrize("kind", ["expr_str", "guards_code", "target", "node-name"])
def test_pt2_with_code_in_the_program_json_is_refused(
        kind: str, pt2_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    evil = rewrite_zip(pt2_files["torch-export-save"], tmp_path / "evil.pt2", _program_edit(kind, marker))
    assert_refused_everywhere(capsys, tmp_path, evil, marker, "refused")


@pytest.mark.parametrize("rel", ["data.pkl", "data/aotinductor/model/model.so", "data/weights/model.pt",
                                 "data/constants/custom_obj_0"])
def test_pt2_with_entries_outside_the_allowed_layout_is_refused(
        rel: str, pt2_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    evil = rewrite_zip(pt2_files["torch-export-save"], tmp_path / "evil.pt2", lambda name, data: data,
                       add={rel: torch_bytes(Evil(marker))})
    assert_refused_everywhere(capsys, tmp_path, evil, marker, "refused", rel)


def test_legitimate_pt2_files_still_load_and_run(pt2_files: dict[str, Path]) -> None:
    for name, path in pt2_files.items():
        f = ExportedProgramFactory(path)
        z, y, x = (13, 16, 16) if name == "zse-export" else (3, 32, 32)
        assert f.input_zyx == (z, y, x)
        out = f.build("cpu")(torch.zeros(3, 1, z, y, x))
        assert out.shape == (3, 1, z, y, x) and torch.isfinite(out).all()
    with zipfile.ZipFile(pt2_files["zse-export"]) as zf:  # zse's own archives hold no pickle
        assert zf.read("zse-export/data/sample_inputs/model.pt") == b""
    meta = read_metadata(pt2_files["zse-export"])
    assert meta["format"] == "zse-exported-program" and meta["margin_px"] == structural_radius_yx(TINY)
    assert read_metadata(pt2_files["torch-export-save"]) == {}


def test_pt2_with_nan_weights_is_refused(pt2_files: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    nan = np.full(54, np.nan, np.float32).tobytes()  # the second conv's weight: 1·2·3·3·3 float32
    cfg = json.loads(zipfile.ZipFile(pt2_files["torch-export-save"]).read("torch-save/data/weights/model_weights_config.json"))
    file = cfg["config"]["2.weight"]["path_name"]
    bad = rewrite_zip(pt2_files["torch-export-save"], tmp_path / "nan.pt2",
                      lambda name, data: nan if name.endswith(f"data/weights/{file}") else data)
    with pytest.raises(ModelError, match=r"'2\.weight'.*NaN"):
        ExportedProgramFactory(bad)
    assert_enhance_refused(capsys, tmp_path, bad, "2.weight", "NaN")


@pytest.mark.parametrize("margin", ["abc", -3, 1.5, [1]])
def test_pt2_with_a_bad_margin_in_its_metadata_is_one_line(margin: object, pt2_files: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("extra/zse.json"):
            meta = json.loads(data)
            meta["margin_px"] = margin
            return json.dumps(meta).encode()
        return data

    bad = rewrite_zip(pt2_files["zse-export"], tmp_path / "bad.pt2", edit)
    assert_enhance_refused(capsys, tmp_path, bad, "margin_px")


# ---------------------------------------------------------------- .pt checkpoints: one-line errors


@pytest.mark.parametrize("margin", ["abc", -3, 1.5, True])
def test_checkpoint_with_a_bad_margin_is_one_line(margin: object, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    save_checkpoint(ckpt_dict(margin_px=margin), bad)
    line = assert_enhance_refused(capsys, tmp_path, bad, "margin_px")
    assert repr(margin) in line


def test_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ck = ckpt_dict()
    name = sorted(k for k, v in ck["state"]["g_s"].items() if v.is_floating_point())[1]
    ck["state"]["g_s"][name] = ck["state"]["g_s"][name].clone()
    ck["state"]["g_s"][name].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.pt"
    save_checkpoint(ck, bad)
    with pytest.raises(ModelError, match="NaN"):
        CheckpointFactory(bad)
    assert_enhance_refused(capsys, tmp_path, bad, f"'g_s.{name}'", "NaN")
    ck["state"]["g_s"][name].view(-1)[0] = float("inf")
    save_checkpoint(ck, bad)
    assert_enhance_refused(capsys, tmp_path, bad, f"'g_s.{name}'", "infinite")


def test_checkpoint_of_another_architecture_says_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = GeneratorConfig(**{**TINY.model_dump(), "widths": (4, 8, 16)})
    wrong_shape = tmp_path / "shape.pt"
    save_checkpoint(ckpt_dict(arch={"name": "tiny", "generator": other.model_dump(mode="json")}), wrong_shape)
    line = assert_enhance_refused(capsys, tmp_path, wrong_shape, "shape", "(8, 8")
    assert "Error(s) in loading state_dict" not in line
    fewer = ckpt_dict()
    dropped = sorted(fewer["state"]["g_s"])[:2]
    for k in dropped:
        del fewer["state"]["g_s"][k]
    fewer["state"]["g_s"]["extra.weight"] = torch.zeros(1)
    missing = tmp_path / "missing.pt"
    save_checkpoint(fewer, missing)
    assert_enhance_refused(capsys, tmp_path, missing, "2 missing", dropped[0], "1 unexpected", "extra.weight")


@pytest.mark.parametrize("arch", [{"name": "x", "kind": "foo"}, {"name": "x", "generator": {"widths": "wide"}}, "zse-gan"])
def test_checkpoint_with_an_unknown_architecture_is_one_line(arch: object, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "arch.pt"
    save_checkpoint(ckpt_dict(arch=arch), bad)
    assert_enhance_refused(capsys, tmp_path, bad, "architecture")


@pytest.mark.parametrize("state", [{"g_s": [1, 2]}, {"g_s": {"w": "text"}}, ["g_s"]])
def test_checkpoint_with_malformed_weights_is_one_line(state: object, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "state.pt"
    save_checkpoint(ckpt_dict(state=state), bad)
    assert_enhance_refused(capsys, tmp_path, bad)
