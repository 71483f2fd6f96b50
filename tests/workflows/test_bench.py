"""`zse bench` on a tiny slide: runs every stage and writes a complete JSON table and its Markdown; the naive
and MONAI stages give back the input with the identity model (uint8 and uint16).

No timed assertions: only that every number is there and positive. Tiny slide (5 × 96 × 96), tiny tiles
(32, overlap 8), so the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from zse.errors import ConfigError
from zse.models.testing import make_slide
from zse.pipeline.infer import PredictorFactory
from zse.workflows.bench.config import JSON_KEYS, BenchConfig, make_factory
from zse.workflows.bench.stages import monai_stage, naive_stage
from zse.workflows.cli import cli, main

POSITIVE = ("model_only_tiles_per_s", "pipeline_tiles_per_s", "naive_tiles_per_s", "monai_tiles_per_s", "peak_host_mem_bytes")


def _stages() -> str:
    try:
        import monai  # noqa: F401
    except ImportError:
        return "model,pipeline,pipeline-inproc,naive"
    return "model,pipeline,pipeline-inproc,naive,monai"


def test_bench_writes_complete_json(tmp_path) -> None:
    out = tmp_path / "res" / "bench.json"
    args = ["bench", "--shape", "5,96,96", "--tile", "32", "--overlap", "8", "--block", "64", "--batch-size", "2",
            "--repeat", "1", "--model", "convnet:2", "--stages", _stages(), "--workdir", str(tmp_path / "work"), "--out", str(out)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    for key in JSON_KEYS:
        assert key in r, key
    assert r["device"] == "cpu" and r["model"] == "convnet:2" and r["tile"] == 32 and r["overlap"] == 8
    assert r["slide_shape"] == [5, 96, 96]
    for key in POSITIVE:
        if key == "monai_tiles_per_s" and "monai" not in _stages():
            continue
        assert isinstance(r[key], (int, float)) and r[key] > 0, (key, r[key])
    assert r["peak_device_mem_bytes"] is None  # CPU
    for v in ("torch", "zarr", "dask", "numpy", "cpu"):
        assert r["versions"][v], v
    # the same lattice for every stage
    st = r["stages"]
    assert st["pipeline"]["lattice_tiles"] == st["naive"]["lattice_tiles"] == r["lattice_tiles"] > 0
    assert 0 < st["pipeline"]["tiles_run_unique"] <= st["pipeline"]["lattice_tiles"]
    assert st["pipeline"]["tiles_evaluated"] >= st["pipeline"]["tiles_run_unique"]
    assert r["ratios"]["pipeline_over_model"] > 0 and r["ratios"]["pipeline_over_naive"] > 0
    assert r["projection"]["per_device"]["hours"] > 0
    md = out.with_suffix(".md").read_text()
    assert "(b)/(a)" in md and "(b)/(c)" in md and "zse bench" in md and "Versions:" in md


def test_slide_has_tissue_and_background() -> None:
    vol = make_slide((4, 128, 160), seed=1)
    assert vol.dtype == np.uint8 and vol.shape == (4, 128, 160)
    zmean = vol.mean(axis=0)
    assert zmean[0, 0] > 225 and zmean[64, 80] < 215  # light empty corner, darker tissue centre
    assert np.array_equal(vol, make_slide((4, 128, 160), seed=1))


def test_convnet_factory_is_picklable_and_shape_preserving() -> None:
    import torch

    f = make_factory("convnet:3")
    g = pickle.loads(pickle.dumps(f))
    assert g == f and f.margin_px == 4 and len(f.checksum) == 64
    assert make_factory("convnet:4").checksum != f.checksum
    x = torch.rand(2, 1, 3, 16, 16) * 2 - 1
    with torch.inference_mode():
        y = f.build("cpu")(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and float(y.abs().max()) <= 1.0
    assert isinstance(f, PredictorFactory) and f.input_zyx is None and f.translation_equivariant


def test_wrapped_registry_factory_declares_the_inner_models_contract() -> None:
    inner = make_factory("unsharp")
    f = make_factory("unsharp", amp="bf16", channels_last=True)
    assert isinstance(f, PredictorFactory) and f != inner and f.checksum != inner.checksum
    assert (f.name, f.margin_px, f.input_zyx, f.translation_equivariant) == (
        inner.name, inner.margin_px, inner.input_zyx, inner.translation_equivariant)


def test_bad_options_are_one_line_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--model", "convnet:x"])
    assert exc.value.code == 2
    assert "convnet:WIDTH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--shape", "2,64,64"])
    assert "Z >= 3" in capsys.readouterr().err  # the plane minimum (zse.workflows.params.parse_shape)


def test_missing_monai_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "monai", None)
    monkeypatch.setitem(sys.modules, "monai.inferers", None)
    with pytest.raises(ConfigError, match=r'pip install "zse\[bench\]"'):
        monai_stage(None, None, None, BenchConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("stage", ["naive", "monai"])
def test_naive_and_monai_stages_give_back_the_input_with_the_identity_model(tmp_path, dtype: str, stage: str) -> None:
    """Intensities go to the model range and back through zse.pipeline.intensity, for every dtype zse reads."""
    if stage == "monai":
        pytest.importorskip("monai")
    import zarr

    from zse.pipeline.io.write import write_volume

    vol = make_slide((3, 70, 90), seed=4).astype(dtype) * (257 if dtype == "uint16" else 1)
    write_volume(tmp_path / "in.zarr", vol, progress=False)
    cfg = BenchConfig(model="identity", tile=32, overlap=8, block=64, batch_size=2)
    run = naive_stage if stage == "naive" else monai_stage
    run(tmp_path / "in.zarr", tmp_path / "out.zarr", make_factory("identity"), cfg)
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, vol)
