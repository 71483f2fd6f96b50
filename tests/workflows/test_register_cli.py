"""`zse register MOVING FIXED`: end to end on tiny OME-Zarrs written with the project's writer — the JSON,
the aligned output, and bad input (one line, exit status 2, inputs untouched)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

from zse.pipeline.io.write import write_volume
from zse.workflows.cli import main

SHAPE = (16, 64, 64)
VOXEL = (1.0, 0.5, 0.25)
D = (1, -2, 3)  # MOVING = FIXED blurred and shifted by +D voxels: the shift mapping MOVING onto FIXED is −D

KEYS = {"shift_zyx_px", "shift_zyx_um", "method", "region_zyx", "region_source", "peak_value", "kernel_shape_zyx",
        "iterations", "convention", "max_shift_px", "voxel_size_um", "aligned", "warnings"}


def _volumes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sharp uint8, blurred uint8 (unshifted), blurred shifted by +D (integer: np.roll, wrapped content
    only near the faces))."""
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.0)
    sharp = np.clip(190.0 - 70.0 * (v > 0.12) - 120.0 * v, 0, 255)
    blurred = ndimage.gaussian_filter(sharp, (1.0, 0.8, 0.8))
    moved = np.roll(blurred, D, axis=(0, 1, 2))
    as8 = [np.clip(np.rint(a), 0, 255).astype(np.uint8) for a in (sharp, blurred, moved)]
    return as8[0], as8[1], as8[2]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    sharp, blurred, moved = _volumes()
    fixed = write_volume(tmp_path / "fixed.ome.zarr", sharp, voxel_size_um=VOXEL, progress=False)
    moving = write_volume(tmp_path / "moving.ome.zarr", moved, voxel_size_um=VOXEL, progress=False)
    return moving, fixed, blurred


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for root in paths:
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
            h.update(str(f.stat().st_mtime_ns).encode())
    return h.hexdigest()


@pytest.mark.parametrize("method", ["psf", "xcorr"])
def test_register_end_to_end(pair: tuple[Path, Path, np.ndarray], tmp_path: Path, method: str) -> None:
    moving, fixed, blurred = pair
    before = _digest(moving, fixed)
    out, aligned = tmp_path / "shift.json", tmp_path / "aligned.ome.zarr"
    main(["register", str(moving), str(fixed), "--out", str(out), "--aligned", str(aligned), "--method", method,
          "--crop", "48", "--max-shift", "3,4,4", "--interp", "nearest", "--quiet"])
    res = json.loads(out.read_text())
    assert KEYS <= set(res)
    assert res["method"] == method
    np.testing.assert_allclose(res["shift_zyx_px"], [-d for d in D], atol=0.15)
    np.testing.assert_allclose(res["shift_zyx_um"], np.asarray(res["shift_zyx_px"]) * VOXEL, rtol=1e-4)
    assert res["region_zyx"] == [[0, 16], [8, 56], [8, 56]]  # every plane, the central 48 × 48
    assert res["kernel_shape_zyx"] == [7, 9, 9]
    assert res["aligned_shift_zyx_px"] == [-1.0, 2.0, -3.0]
    # the aligned MOVING is the blurred volume before the shift (away from the faces, where content wrapped)
    group = zarr.open_group(str(aligned), mode="r")
    got = np.asarray(group["0"])
    assert got.shape == SHAPE and got.dtype == np.uint8
    inner = (slice(2, -2), slice(3, -3), slice(4, -4))
    np.testing.assert_array_equal(got[inner], blurred[inner])
    ms = group.attrs["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == list(VOXEL)
    assert _digest(moving, fixed) == before


def test_register_prints_json_and_linear_aligned(pair: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    moving, fixed, blurred = pair
    aligned = tmp_path / "aligned.ome.zarr"
    main(["register", str(moving), str(fixed), "--region", ":,10:54,12:52", "--max-shift", "3,4,4",
          "--aligned", str(aligned), "--quiet"])
    res = json.loads(capsys.readouterr().out)
    assert res["region_zyx"] == [[0, 16], [10, 54], [12, 52]] and res["region_source"] == "--region"
    np.testing.assert_allclose(res["shift_zyx_px"], [-d for d in D], atol=0.15)
    got = np.asarray(zarr.open_group(str(aligned), mode="r")["0"]).astype(float)
    inner = (slice(2, -2), slice(3, -3), slice(4, -4))
    assert np.abs(got[inner] - blurred[inner]).mean() < 1.0  # linear interpolation at a near-integer shift


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zse: error: ") and "\n" not in err
    return err


def test_bad_input_is_one_line_and_inputs_untouched(pair: tuple[Path, Path, np.ndarray], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    moving, fixed, _ = pair
    before = _digest(moving, fixed)
    m, f = str(moving), str(fixed)
    assert "no such file" in _fails(["register", m, str(tmp_path / "absent.zarr")], capsys)
    (tmp_path / "plain").mkdir()
    assert "FIXED" in _fails(["register", m, str(tmp_path / "plain")], capsys)
    small = write_volume(tmp_path / "small.ome.zarr", np.full((16, 32, 64), 100, np.uint8), voxel_size_um=VOXEL,
                         progress=False)
    assert "must be equal" in _fails(["register", m, str(small)], capsys)
    other_vs = write_volume(tmp_path / "vs.ome.zarr", np.full(SHAPE, 100, np.uint8), voxel_size_um=(1, 1, 1),
                            progress=False)
    assert "voxel size" in _fails(["register", m, str(other_vs)], capsys)
    assert "--region" in _fails(["register", m, f, "--region", "0:99,:,:"], capsys)
    assert "--region" in _fails(["register", m, f, "--region", "a:b"], capsys)
    assert "--max-shift" in _fails(["register", m, f, "--max-shift", "1,2"], capsys)
    assert "needs a region" in _fails(["register", m, f, "--max-shift", "9,2,2"], capsys)
    assert "constant" in _fails(["register", m, str(write_volume(tmp_path / "flat.ome.zarr", np.full(SHAPE, 100, np.uint8),
                                                                 voxel_size_um=VOXEL, progress=False))], capsys)
    assert "inside" in _fails(["register", m, f, "--aligned", str(moving / "x.ome.zarr")], capsys)
    assert "inside" in _fails(["register", m, f, "--out", str(fixed / "s.json")], capsys)
    assert ".zarr" in _fails(["register", m, f, "--aligned", str(tmp_path / "aligned.tif")], capsys)
    out = tmp_path / "s.json"
    out.write_text("{}")
    assert "--overwrite" in _fails(["register", m, f, "--out", str(out)], capsys)
    assert out.read_text() == "{}"
    assert not (tmp_path / "aligned.tif").exists()
    assert _digest(moving, fixed) == before


@pytest.mark.parametrize(("shift", "order"), [((0.4, -2.7, 5.2), 1), ((-1.0, 3.0, -2.0), 0), ((30.0, 0.5, 0.0), 1)])
def test_shifted_volume_blockwise_equals_whole_volume_shift(shift: tuple[float, float, float], order: int) -> None:
    """What --aligned writes, read block by block (czyx, as write_volume reads), equals scipy's shift of the
    whole volume (mode nearest; the same interpolation order), to rounding."""
    from zse.workflows.register import ShiftedVolume

    rng = np.random.default_rng(4)
    vol = rng.integers(0, 65535, (2, 6, 40, 36)).astype(np.uint16)
    lazy = ShiftedVolume(vol, shift, order=order)
    assert lazy.shape == vol.shape and lazy.dtype == np.uint16
    got = np.concatenate([np.concatenate([lazy[..., y:y + 16, x:x + 16] for x in range(0, 36, 16)], axis=-1)
                          for y in range(0, 40, 16)], axis=-2)
    want = np.stack([ndimage.shift(vol[c].astype(float), shift, order=order, mode="nearest") for c in range(2)])
    np.testing.assert_allclose(got, np.clip(np.rint(want), 0, 65535), atol=1)
