"""Bad inputs, outputs, models and options through the `zse` CLI.

Every case must end with exactly one line on stderr starting with `zse: error:`, exit status 2, no
traceback, and the input tree untouched (file hashes and mtimes). Most cases run `zse.workflows.cli.main`
in this process (the `zse_inproc` fixture: an exception escaping main() counts as a traceback); a few run
a real `zse` process to check what a user sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from zse_pipeline_helpers import assert_one_line_error, make_input, tree_digest

# What `--model X.pt` and `--model X.pt2` resolve to: imported here so that a broken module fails collection.
import zse.models.checkpoint  # noqa: F401
import zse.models.export  # noqa: F401

RUN = ("--model", "test-conv", "--block", "32", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")


def write_ome_by_hand(path: Path, data: np.ndarray, axes: str, *, ngff: str = "0.5", datasets: list[str] | None = None,
                      write_arrays: bool = True) -> Path:
    """An OME-Zarr group with metadata written by hand (zse's writer refuses what these tests need)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3 if ngff == "0.5" else 2)
    if write_arrays:
        arr = g.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape)
        arr[...] = data
    types = {"z": "space", "y": "space", "x": "space", "c": "channel", "t": "time"}
    axes_meta = [{"name": a, "type": types[a], **({"unit": "micrometer"} if types[a] == "space" else {})}
                 if a in types else {"name": a} for a in axes]
    paths = ["0"] if datasets is None else datasets
    ms = {"name": "hand", "axes": axes_meta,
          "datasets": [{"path": p, "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                       for p in paths]}
    if ngff == "0.5":
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [{"version": "0.4", **ms}]
    return path


def _u8(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)


def _bad_input(kind: str, path: Path) -> tuple[Path, tuple[str, ...]]:
    """Make input `kind` at `path`; returns (path, substrings the error line must contain)."""
    if kind == "missing":
        return path, ("no such file",)
    if kind == "plain-file":
        path.write_text("not zarr")
        return path, ("Zarr",)
    if kind == "empty-dir":
        path.mkdir()
        return path, ("Zarr",)
    if kind == "plain-zarr":
        g = zarr.open_group(str(path), mode="w")
        g.create_array("0", shape=(4, 16, 16), dtype="uint8")
        return path, ("multiscales",)
    if kind == "2d-yx":
        return write_ome_by_hand(path, _u8((16, 16)), "yx"), ("2-D", "zyx")
    if kind == "axes-tyx":
        return write_ome_by_hand(path, _u8((4, 16, 16)), "tyx"), ("tyx",)
    if kind == "axes-zyxq":
        return write_ome_by_hand(path, _u8((4, 16, 16, 2)), "zyxq"), ("zyxq",)
    if kind == "axes-xyz":
        return write_ome_by_hand(path, _u8((16, 16, 4)), "xyz"), ("xyz",)
    if kind == "two-planes":
        return make_input(path, (2, 32, 32)), ("2 z plane",)
    if kind == "one-plane-v04":
        return write_ome_by_hand(path, _u8((1, 16, 16)), "zyx", ngff="0.4"), ("1 z plane",)
    if kind == "float32":
        return write_ome_by_hand(path, np.zeros((4, 16, 16), np.float32), "zyx"), ("float32", "uint8")
    if kind == "float64-v04":
        return write_ome_by_hand(path, np.zeros((4, 16, 16), np.float64), "zyx", ngff="0.4"), ("float64",)
    if kind == "int16":
        return write_ome_by_hand(path, np.zeros((4, 16, 16), np.int16), "zyx"), ("int16",)
    if kind == "no-datasets":
        return write_ome_by_hand(path, _u8((4, 16, 16)), "zyx", datasets=[]), ("datasets",)
    if kind == "dataset-missing":
        return write_ome_by_hand(path, _u8((4, 16, 16)), "zyx", write_arrays=False), ("0",)
    raise AssertionError(kind)


BAD_INPUTS = ["missing", "plain-file", "empty-dir", "plain-zarr", "2d-yx", "axes-tyx", "axes-zyxq", "axes-xyz",
              "two-planes", "one-plane-v04", "float32", "float64-v04", "int16", "no-datasets", "dataset-missing"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_enhance(kind: str, tmp_path: Path, zse_inproc) -> None:
    src, needles = _bad_input(kind, tmp_path / "in.zarr")
    before = tree_digest(src) if src.is_dir() else None
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", src, out, *RUN)
    line = assert_one_line_error(proc, *needles)
    assert str(src) in line, f"the error does not name the input: {line!r}"
    assert not out.exists(), "an unusable input left an output behind"
    if before is not None:
        assert tree_digest(src) == before


@pytest.mark.parametrize("kind", ["missing", "plain-zarr", "2d-yx", "float32"])
def test_bad_input_info(kind: str, tmp_path: Path, zse_inproc) -> None:
    src, _ = _bad_input(kind, tmp_path / "in.zarr")
    before = tree_digest(src) if src.is_dir() else None
    proc = zse_inproc("info", src)
    line = assert_one_line_error(proc)
    assert str(src) in line
    if before is not None:
        assert tree_digest(src) == before


@pytest.mark.parametrize("kind", ["missing", "float32"])
def test_bad_input_real_process(kind: str, tmp_path: Path, run_zse) -> None:
    """What a user sees: a real `zse` process prints one line and exits 2."""
    src, needles = _bad_input(kind, tmp_path / "in.zarr")
    before = tree_digest(src) if src.is_dir() else None
    proc = run_zse("enhance", src, tmp_path / "out.zarr", *RUN)
    assert_one_line_error(proc, *needles)
    assert proc.stdout == ""
    if before is not None:
        assert tree_digest(src) == before


# ------------------------------------------------------------------------------------------ corrupt chunks


def _corrupt_first_chunk(src: Path, ngff: str) -> Path:
    """Overwrite the start of the first level-0 chunk (0.4) or shard (0.5) file with garbage."""
    f = src / "0" / "c" / "0" / "0" / "0" if ngff == "0.5" else src / "0" / "0" / "0" / "0"
    assert f.is_file(), sorted(p.relative_to(src) for p in src.rglob("*"))
    data = bytearray(f.read_bytes())
    data[: min(64, len(data))] = b"\xff" * min(64, len(data))
    f.write_bytes(bytes(data))
    return f


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_corrupt_chunk_no_skip_background(ngff: str, tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 64, 64), ngff=ngff)
    _corrupt_first_chunk(src, ngff)
    before = tree_digest(src)
    proc = zse_inproc("enhance", src, tmp_path / "out.zarr", *RUN, "--no-skip-background")
    line = assert_one_line_error(proc, "cannot read input")
    assert str(src) in line, f"the error does not name the input: {line!r}"
    assert tree_digest(src) == before


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_corrupt_chunk_default_options(ngff: str, tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 64, 64), ngff=ngff)
    _corrupt_first_chunk(src, ngff)
    before = tree_digest(src)
    proc = zse_inproc("enhance", src, tmp_path / "out.zarr", *RUN)
    line = assert_one_line_error(proc)
    assert str(src) in line, f"the error does not name the input: {line!r}"
    assert tree_digest(src) == before


def test_corrupt_chunk_dask_worker_real_process(tmp_path: Path, run_zse) -> None:
    """A real `zse` process with the default local Dask worker: the block task's InputError must arrive as one
    line (no worker log with tracebacks)."""
    src = make_input(tmp_path / "in.zarr", (3, 64, 64))
    _corrupt_first_chunk(src, "0.5")
    before = tree_digest(src)
    proc = run_zse("enhance", src, tmp_path / "out.zarr", "--model", "test-conv", "--block", "32", "--tile", "32",
                   "--overlap", "8", "--quiet", "--no-skip-background")
    line = assert_one_line_error(proc, "cannot read input")
    assert str(src) in line
    assert tree_digest(src) == before


# ------------------------------------------------------------------------------------------ outputs


def test_existing_output_without_overwrite(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before_in, before_out = tree_digest(small_input), tree_digest(out)
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert_one_line_error(proc, str(out), "--overwrite")
    assert tree_digest(out) == before_out
    assert tree_digest(small_input) == before_in


def test_output_is_input(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    before = tree_digest(small_input)
    for extra in (("--overwrite",), ()):
        proc = zse_inproc("enhance", small_input, small_input, *RUN, *extra)
        assert_one_line_error(proc, str(small_input))
        assert tree_digest(small_input) == before


def test_output_containing_input_is_refused(tmp_path: Path, zse_inproc) -> None:
    parent = tmp_path / "data"
    parent.mkdir()
    src = make_input(parent / "in.zarr", (3, 32, 32))
    before = tree_digest(src)
    proc = zse_inproc("enhance", src, parent, *RUN, "--overwrite")
    assert_one_line_error(proc, "input")
    assert src.exists() and tree_digest(src) == before


def test_output_inside_input_is_refused(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    before = tree_digest(small_input)
    proc = zse_inproc("enhance", small_input, small_input / "enhanced", *RUN)
    assert_one_line_error(proc, "input")
    assert tree_digest(small_input) == before


def test_resume_without_output_starts_fresh(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    """Batch scripts always pass --resume: with no OUT yet, the run simply starts (and completes)."""
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", small_input, out, *RUN, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert (out / ".zse" / "run.json").is_file()


def test_resume_on_foreign_output(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    """--resume on an OME-Zarr zse did not write (no run record) is refused and leaves it alone."""
    out = make_input(tmp_path / "other.zarr", (3, 32, 32), seed=4)
    before = tree_digest(out)
    proc = zse_inproc("enhance", small_input, out, *RUN, "--resume")
    assert_one_line_error(proc, str(out), "run record")
    assert tree_digest(out) == before


def test_resume_and_overwrite_exclude_each_other(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = make_input(tmp_path / "other.zarr", (3, 32, 32), seed=4)
    before = tree_digest(out)
    proc = zse_inproc("enhance", small_input, out, *RUN, "--resume", "--overwrite")
    assert_one_line_error(proc, "--resume", "--overwrite")
    assert tree_digest(out) == before


# ------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        (("--tile", "4"), "tile"),
        (("--tile", "32", "--overlap", "32"), "overlap"),
        (("--overlap", "8", "--margin", "5"), "margin"),
        (("--block", "8"), "block"),
        (("--batch-size", "0"), "batch_size"),
        (("--tissue-threshold", "1.5"), "tissue_threshold"),
        (("--device", "tpu"), "--device"),
    ],
    ids=["tile-4", "overlap-eq-tile", "margin-gt-half-overlap", "block-8", "batch-0", "threshold-1.5", "device-tpu"],
)
def test_bad_options(opts: tuple[str, ...], needle: str, tmp_path: Path, small_input: Path, zse_inproc) -> None:
    before = tree_digest(small_input)
    out = tmp_path / "out.zarr"
    base = dict(zip(RUN[0::2], RUN[1::2], strict=False))
    base.pop("--quiet", None)
    base.update(dict(zip(opts[0::2], opts[1::2], strict=True)))
    args = [a for kv in base.items() for a in kv] + ["--quiet"]
    proc = zse_inproc("enhance", small_input, out, *args)
    assert_one_line_error(proc, needle)
    assert not out.exists(), "a refused option left an output behind"
    assert tree_digest(small_input) == before


# ------------------------------------------------------------------------------------------ models and devices


def test_unknown_model_lists_names(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "out.zarr"
    args = list(RUN)
    args[1] = "nonexistent"
    proc = zse_inproc("enhance", small_input, out, *args)
    line = assert_one_line_error(proc, "nonexistent", "identity", "rl-deconv")
    assert not out.exists()
    assert "Traceback" not in line


def _model_args(model: Path | str) -> list[str]:
    args = list(RUN)
    args[1] = str(model)
    return args


@pytest.mark.parametrize("kind", ["dict-pt", "not-torch-pt", "empty-pt"])
def test_wrong_checkpoint(kind: str, tmp_path: Path, small_input: Path, zse_inproc) -> None:
    ckpt = tmp_path / "model.pt"
    if kind == "dict-pt":
        torch.save({"foo": 1}, ckpt)
    elif kind == "not-torch-pt":
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        ckpt.write_bytes(b"")
    before = tree_digest(small_input)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", small_input, out, *_model_args(ckpt))
    assert_one_line_error(proc, str(ckpt))
    assert not out.exists(), "an unusable model left an output behind"
    assert tree_digest(small_input) == before


@pytest.mark.parametrize("kind", ["garbage-pt2", "torch-save-pt2"])
def test_wrong_exported_program(kind: str, tmp_path: Path, small_input: Path, zse_inproc) -> None:
    prog = tmp_path / "model.pt2"
    if kind == "garbage-pt2":
        prog.write_bytes(np.random.default_rng(1).bytes(4096))
    else:
        torch.save({"foo": 1}, prog)
    before = tree_digest(small_input)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", small_input, out, *_model_args(prog))
    assert_one_line_error(proc, str(prog))
    assert not out.exists(), "an unusable model left an output behind"
    assert tree_digest(small_input) == before


class _Crop(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :, 1:-1, 1:-1]


def _export(module: torch.nn.Module, path: Path, *, dynamic_batch: bool) -> Path:
    example = torch.zeros(2 if dynamic_batch else 1, 1, 3, 32, 32)  # a batch of 1 would specialise the dim
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    torch.export.save(torch.export.export(module.eval(), (example,), dynamic_shapes=shapes), path)
    return path


def test_exported_program_wrong_output_shape(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    prog = _export(_Crop(), tmp_path / "crop.pt2", dynamic_batch=True)
    before = tree_digest(small_input)
    proc = zse_inproc("enhance", small_input, tmp_path / "out.zarr", *_model_args(prog))
    assert_one_line_error(proc, "shape")
    assert tree_digest(small_input) == before


def test_exported_program_static_batch(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3, padding=1), torch.nn.Tanh())
    prog = _export(net, tmp_path / "static.pt2", dynamic_batch=False)
    before = tree_digest(small_input)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", small_input, out, *_model_args(prog))
    assert_one_line_error(proc, str(prog), "batch")
    assert not out.exists()
    assert tree_digest(small_input) == before


def test_missing_model_file(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    for name in ("missing.pt2", "missing.pt"):
        proc = zse_inproc("enhance", small_input, tmp_path / "out.zarr", *_model_args(tmp_path / name))
        assert_one_line_error(proc, name)


def test_model_directory(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    d = tmp_path / "weights"
    d.mkdir()
    proc = zse_inproc("enhance", small_input, tmp_path / "out.zarr", *_model_args(d))
    assert_one_line_error(proc, str(d), "directory")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_gpu(device: str, tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "out.zarr"
    before = tree_digest(small_input)
    proc = zse_inproc("enhance", small_input, out, *RUN, "--device", device)
    assert_one_line_error(proc, "--device", "cpu")
    assert not out.exists()
    assert tree_digest(small_input) == before
