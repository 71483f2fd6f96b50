"""`zse convert`: TIFF z-stacks to OME-Zarr 0.4/0.5, validated by ome-zarr-models and read by ome-zarr-py.

Synthetic inputs only: per-plane Aperio-like pyramidal BigTIFFs (RGB, with thumbnail, label, macro), an
OME-TIFF stack with PhysicalSize metadata. Bad inputs exit 2 with one line and create nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import ome_zarr_models.v04 as v04
import ome_zarr_models.v05 as v05
import pytest
import tifffile
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Multiscales, Reader

from zse import __version__
from zse.workflows.cli import main

APERIO_DESC = "Aperio Image Library v12.0.15 \n{w}x{h} [0,0 {w}x{h}] (32x32) LZW/RGB|AppMag = 20|MPP = 0.5"


def write_aperio(path: Path, level0: np.ndarray, compression: str = "lzw") -> Path:
    """Aperio-like pyramidal BigTIFF: level 0 (tiled), thumbnail, level 1, label, macro."""
    h, w = level0.shape[:2]
    kw = {"photometric": "rgb" if level0.ndim == 3 else "minisblack", "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(level0, tile=(32, 32), compression=compression, description=APERIO_DESC.format(w=w, h=h), **kw)
        tw.write(level0[::8, ::8], description="Aperio thumbnail", **kw)
        tw.write(level0[::4, ::4], tile=(32, 32), compression=compression, description="Aperio level 1", **kw)
        tw.write(np.full_like(level0[:16, :16], 255), subfiletype=1, description="Aperio label", **kw)
        tw.write(np.full_like(level0[:16, :24], 128), subfiletype=9, description="Aperio macro", **kw)
    return path


def bt601(rgb: np.ndarray) -> np.ndarray:
    """Reference luma: round-half-up of 0.299 R + 0.587 G + 0.114 B, exact in integers."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(rgb.dtype)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(["convert", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture
def rgb_planes(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    folder = tmp_path / "sec12"
    folder.mkdir()
    planes = [rng.integers(0, 256, (150, 170, 3), dtype=np.uint8) for _ in range(4)]
    for i, p in enumerate(planes):  # plane numbers 1..4 written in scrambled order
        write_aperio(folder / f"sec12_z{i + 1}.svs", p)
    (folder / "README.txt").write_text("not an image: ignored in a folder")
    return folder, planes


def check_levels(path: Path, voxel: tuple[float, ...], n_levels: int) -> list[np.ndarray]:
    """ome-zarr-py reads every level with scale voxel·2^l in y, x; returns the levels as numpy."""
    nodes = list(Reader(parse_url(str(path)))())
    node = nodes[0]
    assert any(isinstance(s, Multiscales) for s in node.specs)
    assert len(node.data) == n_levels
    transforms = node.metadata["coordinateTransformations"]
    levels = []
    for level, (data, ct) in enumerate(zip(node.data, transforms, strict=True)):
        scale = next(t["scale"] for t in ct if t["type"] == "scale")
        want = list(voxel[:-2]) + [voxel[-2] * 2**level, voxel[-1] * 2**level]
        assert scale == pytest.approx(want)
        levels.append(np.asarray(data.compute()))
    return levels


def test_per_plane_rgb_to_gray_ngff05(tmp_path: Path, rgb_planes: tuple[Path, list[np.ndarray]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder, planes = rgb_planes
    out = tmp_path / "sec12.ome.zarr"
    code, err = run_cli([str(folder), str(out), "--voxel-size", "1.5,0.5,0.5", "--section-id", "S12",
                         "--block", "64", "--quiet"], capsys)
    assert code == 0, err
    group = zarr.open_group(str(out), mode="r")
    v05.Image.from_zarr(group)  # validates NGFF 0.5
    expected = np.stack([bt601(p) for p in planes])
    arr0 = np.asarray(group["0"][:])
    assert arr0.dtype == np.uint8 and arr0.shape == (4, 150, 170)
    np.testing.assert_array_equal(arr0, expected)
    attrs = group.attrs["zse"]
    assert attrs["section_id"] == "S12" and attrs["converted_by"] == f"zse {__version__}"
    assert attrs["channel_mode"] == "gray" and attrs["grayscale"].startswith("ITU-R BT.601")
    assert attrs["source"] == [f"sec12_z{i}.svs" for i in range(1, 5)] and attrs["plane_numbers"] == [1, 2, 3, 4]
    assert attrs["voxel_size_um"] == [1.5, 0.5, 0.5] and attrs["voxel_size_from"]["z"] == "--voxel-size"
    assert attrs["translation_um"] == [0.0, 0.0, 0.0] and attrs["ignored_series"] == ["Thumbnail", "Label", "Macro"]
    assert attrs["status"] == "complete"


def test_keep_channels_ngff04(tmp_path: Path, rgb_planes: tuple[Path, list[np.ndarray]],
                              capsys: pytest.CaptureFixture[str]) -> None:
    folder, planes = rgb_planes
    out = tmp_path / "rgb.ome.zarr"
    files = sorted(str(p) for p in folder.glob("*.svs"))
    code, err = run_cli([*files, str(out), "--channel-mode", "keep", "--ngff", "0.4", "--voxel-size", "2,0.5,0.5",
                         "--origin", "10,0,-5", "--quiet"], capsys)
    assert code == 0, err
    group = zarr.open_group(str(out), mode="r")
    assert group.metadata.zarr_format == 2
    v04.Image.from_zarr(group)
    arr0 = np.asarray(group["0"][:])
    np.testing.assert_array_equal(arr0, np.moveaxis(np.stack(planes), -1, 0))
    ds0 = group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert next(t for t in ds0 if t["type"] == "translation")["translation"] == [0.0, 10.0, 0.0, -5.0]


def test_ome_stack_metadata_and_pyramid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 60000, (5, 2100, 96), dtype=np.uint16)  # tall enough for a 3-level pyramid
    src = tmp_path / "stack.ome.tif"
    tifffile.imwrite(src, stack, tile=(256, 96), compression="zlib",
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.4, "PhysicalSizeX": 0.4})
    for ngff, model in (("0.5", v05), ("0.4", v04)):
        out = tmp_path / f"stack{ngff}.ome.zarr"
        code, err = run_cli([str(src), str(out), "--ngff", ngff, "--block", "512"], capsys)
        assert code == 0, err
        assert "voxel 2, 0.4, 0.4 µm from OME-XML PhysicalSize" in err
        model.Image.from_zarr(zarr.open_group(str(out), mode="r"))
        logging.getLogger("ome_zarr").setLevel(logging.ERROR)
        levels = check_levels(out, (2.0, 0.4, 0.4), 3)  # y halves until ≤ 1024 px
        np.testing.assert_array_equal(levels[0], stack)
        assert levels[1].shape == (5, 1050, 48) and levels[2].shape == (5, 525, 24)
        blk = stack[:, :2, :2].astype(np.float64).mean(axis=(1, 2))
        assert np.abs(levels[1][:, 0, 0].astype(np.float64) - blk).max() <= 1.0  # mean 2×2 downsampling


def _bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], inputs: list[Path], *extra: str) -> str:
    out = tmp_path / "bad.ome.zarr"
    code, err = run_cli([*(str(p) for p in inputs), str(out), "--voxel-size", "1,1,1", *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zse: error: ")
    assert not out.exists()
    return lines[0]


def test_bad_inputs_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(9)

    def plane(name: str, shape: tuple[int, int] = (40, 48), dtype: type = np.uint8) -> Path:
        return write_aperio(tmp_path / name, rng.integers(0, 250, shape).astype(dtype))

    z0, z1, z2 = plane("z0.tif"), plane("z1.tif"), plane("z2.tif")
    assert "planes differ in size: z0.tif is 40×48 px (Y×X) but zbig.tif is 40×64" in _bad(
        tmp_path, capsys, [z0, z1, plane("zbig.tif", (40, 64))], "--order", "given")
    assert "planes differ in data type: z0.tif is uint8 but z16.tif is uint16" in _bad(
        tmp_path, capsys, [z0, z1, plane("z16.tif", dtype=np.uint16)], "--order", "given")
    assert "plane number 2 missing from the 3 files numbered 0..3" in _bad(
        tmp_path, capsys, [z0, z1, plane("z3.tif")])
    notes = tmp_path / "z2.txt"
    notes.write_text("text")
    assert "z2.txt is not a TIFF file" in _bad(tmp_path, capsys, [z0, z1, notes], "--order", "given")
    assert "--voxel-size" in _bad(tmp_path, capsys, [z0, z1, z2], "--voxel-size", "1,0,1")
    # no voxel size anywhere: says which flag to give
    out = tmp_path / "novs.ome.zarr"
    code, err = run_cli([str(z0), str(z1), str(z2), str(out)], capsys)
    assert code == 2 and "voxel size unknown for z" in err and "give --voxel-size Z,Y,X" in err and not out.exists()
    # OUT must look like a zarr path; an existing OUT needs --overwrite
    code, err = run_cli([str(z0), str(z1)], capsys)
    assert code == 2 and "must end in .zarr" in err
    existing = tmp_path / "exists.ome.zarr"
    existing.mkdir()
    code, err = run_cli([str(z0), str(existing), "--voxel-size", "1,1,1"], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err
