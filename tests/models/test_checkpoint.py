"""Checkpoints: safe loading only, clear refusals, factories, exported programs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from zse.errors import ModelError
from zse.models.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointFactory,
    export_generator,
    load_checkpoint,
    save_checkpoint,
)
from zse.models.config import GeneratorConfig
from zse.models.export import ExportedProgramFactory, export_checkpoint
from zse.models.networks.generators import build_generator, structural_radius_yx
from zse.pipeline.infer import PredictorFactory

TINY = GeneratorConfig(widths=(4, 8, 8), n_res=1, in_kernel=(3, 3, 3), out_kernel=(3, 3, 3), out_padding=None,
                       norm="none", res_norm="none", upsample="trilinear", padding_yx="reflect", skip="add")


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_ckpt(path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    g = build_generator(TINY)
    obj = {"format": FORMAT, "version": VERSION, "kind": "training", "model_kind": "tiny",
           "arch": {"name": "tiny", "generator": TINY.model_dump(mode="json")}, "tile": {"z": 13, "yx": 16},
           "margin_px": structural_radius_yx(TINY), "translation_equivariant": True, "step": 3,
           "state": {"g_s": g.state_dict()}}
    save_checkpoint(obj, path)
    return g.eval()


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil(str(marker))}, bad)
    with pytest.raises(ModelError, match="refused"):
        load_checkpoint(bad)
    with pytest.raises(ModelError):
        CheckpointFactory(bad)
    assert not marker.exists()
    # a plain pickle file too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Evil(str(marker)), protocol=2))
    with pytest.raises(ModelError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_wrong_kinds_are_explained(tmp_path: Path) -> None:
    sd = tmp_path / "state_dict.pt"
    torch.save(build_generator(TINY).state_dict(), sd)
    with pytest.raises(ModelError, match="bare state_dict.*expected format 'zse-checkpoint'"):
        load_checkpoint(sd)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02not a checkpoint" * 16)
    with pytest.raises(ModelError, match="cannot be read"):
        load_checkpoint(junk)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="cannot be read"):
        load_checkpoint(text)
    lst = tmp_path / "list.pt"
    torch.save([1, 2], lst)
    with pytest.raises(ModelError, match="holds a list"):
        load_checkpoint(lst)
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_factory_protocol_and_inference_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "last.pt"
    g = _write_ckpt(ck)
    f = CheckpointFactory(ck)
    assert isinstance(f, PredictorFactory)
    assert f.margin_px == structural_radius_yx(TINY) and len(f.checksum) == 64
    f = pickle.loads(pickle.dumps(f))
    x = torch.rand(2, 1, 13, 16, 16) * 2 - 1
    with torch.no_grad():
        ref = g(x)
    out = f.build("cpu")(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, ref)
    small = export_generator(ck, tmp_path / "g_s16.pt", dtype="float16")
    f16 = CheckpointFactory(small)
    assert f16.margin_px == f.margin_px and small.stat().st_size < 10e6
    torch.testing.assert_close(f16.build("cpu")(x), ref, atol=2e-2, rtol=0)
    bf = CheckpointFactory(ck, amp="bf16").build("cpu")(x)
    assert bf.dtype == torch.float32 and (bf - ref).abs().max() < 0.05


def test_exported_program_equals_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "last.pt"
    _write_ckpt(ck)
    pt2 = export_checkpoint(ck, tmp_path / "g.pt2")
    ef = pickle.loads(pickle.dumps(ExportedProgramFactory(pt2)))
    assert isinstance(ef, PredictorFactory)
    assert ef.margin_px == structural_radius_yx(TINY) and ef.meta["tile"] == [13, 16, 16]
    cf = CheckpointFactory(ck)
    for n in (1, 3):  # dynamic batch
        x = torch.rand(n, 1, 13, 16, 16) * 2 - 1
        torch.testing.assert_close(ef.build("cpu")(x), cf.build("cpu")(x), atol=1e-6, rtol=1e-5)
    with pytest.raises(ModelError, match="cannot be loaded"):
        ExportedProgramFactory(ck)


def test_enhance_with_checkpoint_and_with_its_exported_program_give_the_same_output(tmp_path: Path) -> None:
    """Through the real CLI (`zse export`, `zse enhance --model`): a checkpoint and its .pt2 give identical slides."""
    import numpy as np

    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.workflows.cli import main

    ckpt = tmp_path / "tiny.pt"
    _write_ckpt(ckpt)
    pt2 = tmp_path / "tiny.pt2"
    main(["export", str(ckpt), str(pt2)])
    vol = np.random.default_rng(3).integers(0, 256, (13, 80, 96), dtype=np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, progress=False)
    outs = []
    for model in (ckpt, pt2):
        out = tmp_path / f"out-{model.suffix[1:]}.ome.zarr"
        main(["enhance", str(src), str(out), "--model", str(model), "--workers", "0", "--tile", "16", "--overlap", "8",
              "--no-skip-background", "--quiet"])
        outs.append(open_image(out).levels[0][...])
    assert not np.array_equal(outs[0], vol)  # the network does something
    np.testing.assert_array_equal(outs[0], outs[1])


def test_exported_program_with_other_tile_size_is_refused_clearly(tmp_path: Path, capsys) -> None:
    import numpy as np

    from zse.pipeline.io.write import write_volume
    from zse.workflows.cli import main

    ckpt = tmp_path / "tiny.pt"
    _write_ckpt(ckpt)
    pt2 = tmp_path / "tiny.pt2"
    main(["export", str(ckpt), str(pt2)])
    src = write_volume(tmp_path / "in.ome.zarr", np.zeros((13, 40, 40), np.uint8), progress=False)
    with pytest.raises(SystemExit) as exc:
        main(["enhance", str(src), str(tmp_path / "o.ome.zarr"), "--model", str(pt2), "--workers", "0", "--tile", "32", "--overlap", "8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--tile" in err and "16" in err and not (tmp_path / "o.ome.zarr").exists()
