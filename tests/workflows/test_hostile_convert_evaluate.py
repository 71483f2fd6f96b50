"""`zse convert` and `zse evaluate` with hostile inputs (issue 12, items 9 and 11).

Damaged TIFFs (a truncated strip or tile, a page chain cut short, a tile that does not decode) end in one
line `zse: error: …` naming the file and plane, exit 2, and leave no output behind; a report folder that
is, holds or lies inside an input is refused before anything is written; the inputs' trees (hashes and
mtimes) are unchanged after every refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from zse_pipeline_helpers import assert_one_line_error, run_cli, tree_digest  # noqa: E402


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """`assert_one_line_error`, and nothing else on stderr."""
    line = assert_one_line_error(proc, *needles)
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [line], proc.stderr
    return line


STACK = np.random.default_rng(0).integers(0, 60000, (5, 64, 80), dtype=np.uint16)


def write_stack(path: Path, *, tile: tuple[int, int] | None = None, compression: str | None = None,
                ome: bool = False, data: np.ndarray = STACK) -> Path:
    """A (Z, Y, X) uint16 stack: one page per plane, stripped or tiled; OME-TIFF with a voxel size if `ome`."""
    meta = {"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5} if ome else {"axes": "ZYX"}
    tifffile.imwrite(path, data, photometric="minisblack", tile=tile, compression=compression, metadata=meta)
    return path


def last_segment(path: Path) -> tuple[int, int, int]:
    """(plane, offset, byte count) of the last strip/tile of level 0 in the file."""
    with tifffile.TiffFile(path) as tif:
        best = (0, 0, 0)
        for i, page in enumerate(tif.series[0].levels[0].pages):
            for off, n in zip(page.dataoffsets, page.databytecounts, strict=True):
                if off + n > best[1] + best[2]:
                    best = (i, int(off), int(n))
    return best


def cut(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


# ----------------------------------------------------------------------------- convert: damaged TIFFs
@pytest.mark.parametrize("layout", ["stripped", "tiled-zlib", "ome-stripped", "per-plane"])
def test_truncated_strip_refused_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    if layout == "per-plane":
        for z in range(3):
            write_stack(src / f"sec_z{z}.tif", tile=(32, 32), compression="zlib", data=STACK[z])
        damaged = src / "sec_z1.tif"
        inputs = [src]
    else:
        tile, comp = ((32, 32), "zlib") if layout == "tiled-zlib" else (None, None)
        damaged = write_stack(src / "stack.tif", tile=tile, compression=comp, ome=layout.startswith("ome"))
        inputs = [damaged]
    plane, off, n = last_segment(damaged)
    cut(damaged, off + n // 2)  # half of the last strip/tile is missing
    before = tree_digest(src)
    out = tmp_path / "out.ome.zarr"
    proc = run_cli(capsys, "convert", *inputs, out, "--voxel-size", "2,0.5,0.5", "--quiet")
    line = one_line(proc, damaged.name, "truncated")
    if layout == "tiled-zlib":  # the cut falls in the data (tifffile puts the other layouts' IFDs after it)
        assert f"plane {plane}" in line and "tile" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert tree_digest(src) == before


def test_truncated_ome_stack_real_process_prints_one_line(tmp_path: Path) -> None:
    """Cut the end off an OME-TIFF (its OME-XML and the later pages' IFDs): tifffile's own complaints must
    not reach stderr, and the damage must not pass as a shorter stack."""
    src = write_stack(tmp_path / "stack.ome.tif", ome=True)
    cut(src, src.stat().st_size - 300)
    before = tree_digest(tmp_path)
    out = tmp_path / "out.ome.zarr"
    proc = subprocess.run([sys.executable, "-c", "from zse.workflows.cli import main; main()", "convert", str(src),
                           str(out), "--voxel-size", "2,0.5,0.5", "--quiet"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    one_line(proc, "stack.ome.tif")
    assert not out.exists() and tree_digest(tmp_path) == before


def _corrupt_tile(path: Path, plane: int) -> None:
    """Overwrite the middle of the first tile of `plane` with bytes that do not inflate (file size kept)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[0].pages[plane]
        off, n = int(page.dataoffsets[0]), int(page.databytecounts[0])
    data = bytearray(path.read_bytes())
    data[off + 2: off + n - 4] = bytes(range(256)) * ((n - 6) // 256) + bytes((n - 6) % 256)
    path.write_bytes(bytes(data))


def test_corrupt_tile_mid_write_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = write_stack(src / "stack.tif", tile=(32, 32), compression="zlib")
    _corrupt_tile(bad, plane=3)
    before = tree_digest(src)
    out = tmp_path / "out.ome.zarr"
    proc = run_cli(capsys, "convert", bad, out, "--voxel-size", "2,0.5,0.5", "--quiet", "--block", "32")
    one_line(proc, "stack.tif", "plane 3")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert tree_digest(src) == before
    # with --overwrite of an earlier good output: the failed run leaves nothing that looks finished
    good = write_stack(tmp_path / "good.tif", tile=(32, 32), compression="zlib")
    assert run_cli(capsys, "convert", good, out, "--voxel-size", "2,0.5,0.5", "--quiet").returncode == 0
    proc = run_cli(capsys, "convert", bad, out, "--voxel-size", "2,0.5,0.5", "--quiet", "--overwrite", "--block", "32")
    one_line(proc, "stack.tif", "plane 3")
    if out.exists():  # only the earlier, finished output may remain
        record = zarr.open_group(str(out), mode="r").attrs["zse"]
        assert record["source"] == ["good.tif"] and record["status"] == "complete"
    assert tree_digest(src) == before


def test_tiff_with_no_first_page_is_one_line(tmp_path: Path) -> None:
    """A TIFF header whose first-IFD offset points past the end: one line (no tifffile log line)."""
    src = tmp_path / "head.tif"
    src.write_bytes(b"II*\x00" + b"\xff" * 20)
    out = tmp_path / "out.ome.zarr"
    proc = subprocess.run([sys.executable, "-c", "from zse.workflows.cli import main; main()", "convert", str(src),
                           str(out), "--voxel-size", "1,1,1"], capture_output=True, text=True, timeout=120)
    one_line(proc, "head.tif")
    assert not out.exists()


@pytest.mark.parametrize(("kind", "needle"), [
    ("folder.tif", "holds no TIFF files"),
    ("empty.tif", "is not a TIFF file"),
    ("text.tif", "is not a TIFF file"),
])
def test_convert_non_tiff_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, needle: str) -> None:
    src = tmp_path / kind
    if kind == "folder.tif":
        src.mkdir()
    else:
        src.write_bytes(b"" if kind == "empty.tif" else b"hello, not an image\n")
    out = tmp_path / "out.ome.zarr"
    one_line(run_cli(capsys, "convert", src, out, "--voxel-size", "1,1,1"), kind, needle)
    assert not out.exists()


@pytest.mark.parametrize("value", ["0,1,1", "1,-0.5,1", "nan,1,1", "1,inf,1", "1,1", "1,1,1,1", "a,b,c", ""])
def test_convert_bad_voxel_size(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    src = write_stack(tmp_path / "stack.tif")
    out = tmp_path / "out.ome.zarr"
    one_line(run_cli(capsys, "convert", src, out, "--voxel-size", value), "--voxel-size")
    assert not out.exists()


def test_convert_out_inside_or_holding_an_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planes = tmp_path / "planes"
    planes.mkdir()
    for z in range(2):
        write_stack(planes / f"p_z{z}.tif", data=STACK[z])
    before = tree_digest(planes)
    one_line(run_cli(capsys, "convert", planes, planes / "out.ome.zarr", "--voxel-size", "1,1,1"), "inside", "planes")
    assert tree_digest(planes) == before
    # OUT an earlier zse output that holds an input: --overwrite would delete it
    old = tmp_path / "old.ome.zarr"
    assert run_cli(capsys, "convert", planes, old, "--voxel-size", "1,1,1", "--quiet").returncode == 0
    inner = write_stack(old / "plane.tif", data=STACK[0])
    before = tree_digest(old)
    one_line(run_cli(capsys, "convert", inner, old, "--voxel-size", "1,1,1", "--overwrite"), "old.ome.zarr")
    assert tree_digest(old) == before


# ----------------------------------------------------------------------------- evaluate: report folder
def _image(path: Path, seed: int) -> Path:
    from zse.pipeline.io.write import write_volume

    vol = np.random.default_rng(seed).integers(0, 255, (5, 40, 40), dtype=np.uint8)
    return write_volume(path, vol, voxel_size_um=(1, 1, 1), progress=False)


@pytest.mark.parametrize("where", ["INPUT", "INPUT/report", "OUTPUT/sub/report", "GT", "data", "data-link"])
def test_evaluate_refuses_report_in_or_around_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    x, y, gt = _image(data / "x.ome.zarr", 1), _image(data / "y.ome.zarr", 2), _image(data / "gt.ome.zarr", 3)
    (tmp_path / "data-link").symlink_to(data / "x.ome.zarr")
    report = {"INPUT": x, "INPUT/report": x / "report", "OUTPUT/sub/report": y / "sub" / "report", "GT": gt,
              "data": data, "data-link": tmp_path / "data-link" / "r"}[where]
    before = tree_digest(data)
    proc = run_cli(capsys, "evaluate", x, y, "--ground-truth", gt, "--report", report, "--section-step", 8)
    one_line(proc, "--report", str(report))
    assert tree_digest(data) == before


def test_evaluate_report_path_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = _image(tmp_path / "x.ome.zarr", 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    one_line(run_cli(capsys, "evaluate", x, "--report", notes), "--report", "notes.txt")
    assert notes.read_text() == "mine"


def test_evaluate_more_rois_than_positions_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = _image(tmp_path / "x.ome.zarr", 1)
    proc = run_cli(capsys, "evaluate", x, "--report", tmp_path / "r", "--rois", "1000000", "--roi-size", "16")
    one_line(proc, "--rois 1000000")
    assert not (tmp_path / "r").exists()


def test_evaluate_npz_report_in_the_stacks_folder_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ZSE-GAN dataset: the report may not go into (or around) the folder of stacks, trainB/ included."""
    stacks = tmp_path / "ds" / "trainB"
    stacks.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for k in range(2):
        np.savez(stacks / f"Btrain_{k:05d}.npz", rng.integers(0, 255, (32, 32, 5), dtype=np.uint8))
    before = tree_digest(tmp_path / "ds")
    for report in (stacks, stacks / "rep", tmp_path / "ds"):
        one_line(run_cli(capsys, "evaluate", tmp_path / "ds", "--model", "identity", "--report", report), "--report")
    assert tree_digest(tmp_path / "ds") == before
