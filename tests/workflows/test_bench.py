"""`zse bench` on a tiny slide: runs every stage and writes a complete JSON table and its Markdown; the JSON
has every key README.md and BENCHMARKS.md document (zse.workflows.bench.keys, the one list); the JSON is
rewritten after every stage; the host-work timers count each stage once; the naive and MONAI stages give
back the input with the identity model (uint8 and uint16).

No timed assertions beyond the timers' own accounting: only that every number is there and positive.
Tiny slide (5 × 96 × 96), tiny tiles (32), so the whole file runs in about a minute on 2 cores.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zse.errors import ConfigError
from zse.models.testing import make_slide
from zse.pipeline.infer import PredictorFactory
from zse.workflows.bench.config import JSON_KEYS, BenchConfig, make_factory
from zse.workflows.bench.host import StageClock, array_level, host_work
from zse.workflows.bench.keys import JSON_DOC, applies, json_key_table
from zse.workflows.bench.stages import monai_stage, naive_stage
from zse.workflows.cli import cli, main

ROOT = Path(__file__).resolve().parents[2]
POSITIVE = ("model_only_tiles_per_s", "pipeline_tiles_per_s", "naive_tiles_per_s", "monai_tiles_per_s", "peak_host_mem_bytes",
            "host_ms_per_tile")


def _stages() -> str:
    try:
        import monai  # noqa: F401
    except ImportError:
        return "model,pipeline,pipeline-inproc,naive,host"
    return "model,pipeline,pipeline-inproc,naive,monai,host"


def _has(r: dict, dotted: str) -> bool:
    node: object = r
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _readme_bench_keys() -> list[str]:
    """JSON keys named in README.md's `zse bench` row (backticked snake_case words)."""
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `zse bench"))
    return [w for w in re.findall(r"`([^`]+)`", row) if re.fullmatch(r"[a-z][a-z0-9_.]*", w)]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory) -> dict:
    """One `zse bench` of every stage on a tiny slide (CPU, convnet:2; the host stage on its own tiny slide)."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "res" / "bench.json"
    args = ["bench", "--shape", "5,96,96", "--tile", "32", "--block", "64", "--batch-size", "2", "--repeat", "1",
            "--model", "convnet:2", "--stages", _stages(), "--host-shape", "3,160,96", "--workdir", str(tmp / "work"),
            "--out", str(out)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return {"json": json.loads(out.read_text()), "md": out.with_suffix(".md").read_text()}


def test_bench_writes_complete_json(tiny_bench) -> None:
    r = tiny_bench["json"]
    for key in JSON_KEYS:
        assert key in r, key
    assert r["complete"] is True
    assert r["device"] == "cpu" and r["model"] == "convnet:2" and r["tile"] == 32
    # overlap not given: zse enhance's for the model (convnet radius 4 -> 8), as the job itself set it
    assert r["overlap"] == r["stages"]["pipeline"]["overlap"] == r["stages"]["pipeline-inproc"]["overlap"] == 8
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
    assert st["pipeline"]["cluster"] == r["cluster"] == "local"
    assert r["ratios"]["pipeline_over_model"] > 0 and r["ratios"]["pipeline_over_naive"] > 0
    assert r["projection"]["per_device"]["hours"] > 0
    h = r["host"]
    assert h["slide_shape"] == [3, 160, 96] and h["missing_timers"] == [] and h["model"] == "identity"
    assert (h["tile"], h["overlap"]) == (r["tile"], r["overlap"])  # the benched model's lattice
    assert 0 < h["tiles_run"] <= h["lattice_tiles"]
    for part in ("read", "write", "markers", "output", "unit", "blend", "quantise"):
        assert h["stages_s"][part] > 0, part
    assert sum(v for k, v in h["stages_s"].items() if k != "other") <= h["wall_s"]  # each second counted once
    md = tiny_bench["md"]
    assert "(b)/(a)" in md and "(b)/(c)" in md and "zse bench" in md and "Versions:" in md and "ms per tile run" in md


def test_gpu_tasks_default_is_zse_enhances() -> None:
    from zse.workflows.enhance import enhance_command

    default = next(p.default for p in enhance_command.params if p.name == "gpu_tasks")
    assert BenchConfig().gpu_tasks_per_worker == default


def test_the_json_has_every_documented_key(tiny_bench) -> None:
    """BENCHMARKS.md holds the key table rendered from zse.workflows.bench.keys; README names keys of it;
    a real run's JSON has every key that applies to it and no top-level key left undocumented."""
    bench_md = (ROOT / "BENCHMARKS.md").read_text()
    assert json_key_table() in bench_md, "BENCHMARKS.md's JSON table is not zse.workflows.bench.keys.json_key_table()"
    readme_keys = _readme_bench_keys()
    assert "host_ms_per_tile" in readme_keys and "BENCHMARKS.md" in (ROOT / "README.md").read_text()
    for key in readme_keys:
        assert key in JSON_DOC, f"README names {key!r}, which zse.workflows.bench.keys does not document"
    r = tiny_bench["json"]
    stages = tuple(r["stages"]) + (("host",) if "host" in r else ())
    for key, (when, _) in JSON_DOC.items():
        if applies(when, device="cpu", stages=stages, amp=None, sweep=False):
            assert _has(r, key), f"documented key {key!r} ({when}) missing from the bench JSON"
    undocumented = [k for k in r if k not in JSON_DOC]
    assert not undocumented, f"bench JSON keys not in zse.workflows.bench.keys.JSON_DOC: {undocumented}"


def test_the_json_is_written_after_every_stage(tmp_path, monkeypatch) -> None:
    """A run stopped in a later stage (a GPU call's time limit) leaves the stages it finished."""
    import zse.workflows.bench.command as command

    def killed(*_a: object, **_k: object) -> None:
        raise RuntimeError("stopped in the naive stage")

    monkeypatch.setattr(command, "naive_stage", killed)
    out = tmp_path / "bench.json"
    args = ["bench", "--shape", "3,64,64", "--tile", "32", "--batch-size", "1", "--repeat", "1", "--model", "convnet:2",
            "--stages", "model,naive", "--no-io", "--workdir", str(tmp_path / "w"), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert isinstance(res.exception, RuntimeError) and "naive stage" in str(res.exception)
    r = json.loads(out.read_text())
    assert r["complete"] is False and r["stages"]["model"]["tiles_per_s"] > 0 and "naive" not in r["stages"]
    assert r["model_only_tiles_per_s"] == r["stages"]["model"]["tiles_per_s"]


def test_stage_clock_counts_nested_time_once() -> None:
    clock = StageClock()
    inner = clock.timed("inner", lambda: time.sleep(0.2))

    def outer_body() -> None:
        time.sleep(0.01)
        inner()

    outer = clock.timed("outer", outer_body)
    t0 = time.perf_counter()
    outer()
    total = time.perf_counter() - t0
    assert clock.seconds["inner"] >= 0.2 and clock.calls == {"inner": 1, "outer": 1}
    assert 0.01 <= clock.seconds["outer"] < 0.2  # the inner call's time is not counted again
    assert clock.seconds["inner"] + clock.seconds["outer"] <= total


def test_array_level_is_the_folder_of_the_output_level(tmp_path) -> None:
    import zarr

    for level in (0, 1, 12):
        a = zarr.create_array(str(tmp_path / "out.zarr" / str(level)), shape=(2, 2), dtype="u1")
        assert array_level(a) == level
    assert array_level(zarr.create_array(str(tmp_path / "x.zarr"), shape=(2, 2), dtype="u1")) == 0


@pytest.mark.parametrize("block", [256, 512])
def test_host_work_times_the_pyramid_of_both_kinds(tmp_path, block: int) -> None:
    """A slide with one pyramid level (1280 px > 1024): block 256 builds it in the pyramid tasks, block 512
    from the block in memory (levels 1..memory_levels); either way its time is "pyramid", not "write"."""
    from zse.pipeline.io.write import write_volume

    write_volume(tmp_path / "in.zarr", make_slide((3, 1280, 64), seed=2), progress=False)
    h = host_work(tmp_path / "in.zarr", tmp_path / "out.zarr", tile=64, overlap=16, block=block)
    assert h["missing_timers"] == []
    assert h["stages_s"]["pyramid"] > 0 and h["stages_s"]["write"] > 0 and h["stages_s"]["read"] > 0
    assert h["calls"]["pyramid"] >= 2 and h["block"] == block  # at least one write and one downsample of level 1
    assert sum(v for k, v in h["stages_s"].items() if k != "other") <= h["wall_s"]
    assert h["host_ms_per_tile"] == pytest.approx(1000 * h["host_s"] / h["tiles_run"])


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
    assert (f.name, f.margin_px, f.input_zyx, f.translation_equivariant, f.core_px) == (
        inner.name, inner.margin_px, inner.input_zyx, inner.translation_equivariant, inner.core_px)


def test_bad_options_are_one_line_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--model", "convnet:x"])
    assert exc.value.code == 2
    assert "convnet:WIDTH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--shape", "2,64,64"])
    assert "Z >= 3" in capsys.readouterr().err  # the plane minimum (zse.workflows.params.parse_shape)


def test_cluster_option_is_checked_before_any_stage(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "dask_cuda", None)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--cluster", "local-cuda", "--stages", "pipeline"])
    assert exc.value.code == 2 and 'pip install "zse[gpu]"' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--cluster", "slurm"])
    assert exc.value.code == 2 and "local-cuda" in capsys.readouterr().err


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
