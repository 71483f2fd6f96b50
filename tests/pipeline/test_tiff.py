"""Lazy TIFF sources (zse.pipeline.io.tiff): layouts, codecs, grayscale, ordering, voxel size, bad inputs.

Every file is synthetic, written by tifffile: Aperio-like pyramidal BigTIFFs (level 0, thumbnail, lower
level, label, macro), Huron-like generic pyramids (reduced pages), OME-TIFF stacks with PhysicalSize,
ImageJ stacks, RGB planes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from zse.errors import ConfigError, InputError
from zse.pipeline.io.tiff import (
    TiffLevel0,
    collect_inputs,
    inspect_tiff,
    open_tiff_volume,
    order_planes,
    rgb_to_gray,
    tiff_dask,
)

APERIO_DESC = "Aperio Image Library v12.0.15 \n{w}x{h} [0,0 {w}x{h}] (64x64) JPEG/RGB Q=90|AppMag = 20|MPP = {mpp}"


def write_aperio(path: Path, level0: np.ndarray, *, compression: str = "jpeg", mpp: float = 0.252, tile: int = 64) -> Path:
    """An Aperio SVS-like BigTIFF: tiled level 0, stripped thumbnail, tiled level 1, label, macro."""
    h, w = level0.shape[:2]
    photometric = "rgb" if level0.ndim == 3 else "minisblack"
    kw = {"photometric": photometric, "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(level0, tile=(tile, tile), compression=compression, description=APERIO_DESC.format(w=w, h=h, mpp=mpp), **kw)
        tw.write(level0[::8, ::8], compression="jpeg" if compression == "jpeg" else None, description="Aperio thumbnail", **kw)
        tw.write(level0[::4, ::4], tile=(tile, tile), compression=compression, description="Aperio level 1", **kw)
        tw.write(np.full_like(level0[:20, :30], 7), compression="lzw", subfiletype=1, description="Aperio label", **kw)
        tw.write(np.full_like(level0[:24, :40], 9), compression=None, subfiletype=9, description="Aperio macro", **kw)
    return path


def write_huron(path: Path, level0: np.ndarray, *, compression: str = "lzw", px_um: float = 0.5, tile: int = 64) -> Path:
    """A generic (Huron-like) pyramidal BigTIFF: tiled level 0 with cm resolution, reduced levels, macro."""
    photometric = "rgb" if level0.ndim == 3 else "minisblack"
    kw = {"photometric": photometric, "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(level0, tile=(tile, tile), compression=compression, resolution=(1e4 / px_um, 1e4 / px_um),
                 resolutionunit="CENTIMETER", **kw)
        tw.write(level0[::2, ::2], tile=(tile, tile), compression=compression, subfiletype=1, **kw)
        tw.write(level0[::4, ::4], tile=(tile, tile), compression=compression, subfiletype=1, **kw)
        tw.write(np.full_like(level0[:30, :50], 3), compression=None, subfiletype=9, **kw)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def smooth_rgb(rng: np.random.Generator, h: int, w: int, dtype: type = np.uint8) -> np.ndarray:
    """Smooth RGB content (JPEG-friendly), (h, w, 3)."""
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(yy / 9.0 + k) * np.cos(xx / 13.0 - k) for k in range(3)], axis=-1)
    noise = rng.normal(0, 0.005, base.shape)
    return np.clip((base * 0.45 + 0.5 + noise) * top, 0, top).astype(dtype)


# ------------------------------------------------------------------------------------------ layouts
def test_aperio_reads_level0_only_lazily_with_tile_aligned_blocks(tmp_path: Path, rng: np.random.Generator) -> None:
    src = smooth_rgb(rng, 200, 260)
    path = write_aperio(tmp_path / "p00.svs", src)
    info = inspect_tiff(path)
    assert info.kind == "svs" and info.color == "rgb" and info.shape_zyxc == (1, 200, 260, 3)
    assert info.ignored_series == ("Thumbnail", "Label", "Macro") and info.n_levels == 2
    assert info.tile_yx == (64, 64) and info.compression == "JPEG"
    assert info.voxel_size_um == (None, 0.252, 0.252) and info.voxel_size_from == "Aperio MPP"
    arr = tiff_dask(info, (128, 128))
    assert arr.shape == (1, 200, 260, 3) and arr.dtype == np.uint8
    assert arr.chunks == ((1,), (128, 72), (128, 128, 4), (3,))  # whole tiles per block
    got = arr.compute()[0]
    decoded = tifffile.imread(path, series=0, level=0)
    np.testing.assert_array_equal(got, decoded)
    assert np.abs(got.astype(float) - src).mean() < 3.0  # JPEG, lossy but close


def test_huron_like_generic_pyramid(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 65535, (150, 190), dtype=np.uint16)
    path = write_huron(tmp_path / "s_z3.tif", src)
    info = inspect_tiff(path)
    assert info.shape_zyxc == (1, 150, 190, 1) and info.color == "gray" and info.n_levels == 3
    assert len(info.ignored_series) == 1  # the macro
    assert info.voxel_size_um[1:] == pytest.approx((0.5, 0.5)) and info.voxel_size_from == "TIFF XResolution/YResolution"
    np.testing.assert_array_equal(tiff_dask(info).compute()[0, ..., 0], src)


@pytest.mark.parametrize("compression", ["jpeg", "jpeg2000", "lzw"])
@pytest.mark.parametrize("rgb", [False, True], ids=["gray", "rgb"])
def test_tile_codecs_decode(tmp_path: Path, rng: np.random.Generator, compression: str, rgb: bool) -> None:
    src = smooth_rgb(rng, 96, 112)
    if not rgb:
        src = src[..., 1].copy()
    path = write_aperio(tmp_path / f"c_{compression}.svs", src, compression=compression, tile=32)
    info = inspect_tiff(path)
    assert info.compression == {"jpeg": "JPEG", "jpeg2000": "JPEG2000", "lzw": "LZW"}[compression]
    got = tiff_dask(info, (64, 64)).compute()[0]
    got = got if rgb else got[..., 0]
    np.testing.assert_array_equal(got, tifffile.imread(path, series=0, level=0))
    if compression == "jpeg":
        assert np.abs(got.astype(float) - src).mean() < 3.0
    else:
        np.testing.assert_array_equal(got, src)  # lossless codecs


def test_ome_stack_physical_size_and_units(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 4000, (6, 70, 90), dtype=np.uint16)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, src, tile=(32, 32), compression="zlib", metadata={
        "axes": "ZYX", "PhysicalSizeZ": 1500, "PhysicalSizeZUnit": "nm",
        "PhysicalSizeY": 0.25, "PhysicalSizeX": 0.26})
    info = inspect_tiff(path)
    assert info.kind == "ome" and info.shape_zyxc == (6, 70, 90, 1)
    assert info.voxel_size_um == pytest.approx((1.5, 0.25, 0.26))
    arr = tiff_dask(info, (32, 32))
    assert arr.chunks[0] == (1,) * 6  # one plane per block
    np.testing.assert_array_equal(arr.compute()[..., 0], src)


def test_imagej_stack_spacing(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 255, (4, 40, 50), dtype=np.uint8)
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, src, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "micron"})
    info = inspect_tiff(path)
    assert info.shape_zyxc == (4, 40, 50, 1)
    assert info.voxel_size_um == pytest.approx((2.0, 0.3, 0.3))


def test_stripped_tiff_blocks_span_the_width(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 255, (3, 50, 70), dtype=np.uint8)
    path = tmp_path / "multi.tif"
    tifffile.imwrite(path, src, rowsperstrip=8, photometric="minisblack", metadata=None)
    info = inspect_tiff(path)
    assert not info.tiled and info.shape_zyxc == (3, 50, 70, 1)
    arr = tiff_dask(info, (16, 16))
    assert arr.chunks[2] == (70,) and arr.chunks[1] == (16, 16, 16, 2)
    np.testing.assert_array_equal(arr.compute()[..., 0], src)


def test_level0_pickles_and_reopens(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    path = write_huron(tmp_path / "a.tif", src, tile=32)
    lvl = TiffLevel0(path, (64, 64), np.uint8)
    np.testing.assert_array_equal(lvl[10:20, 5:9], src[10:20, 5:9])
    assert lvl.chunks == (32, 32)
    clone = pickle.loads(pickle.dumps(lvl))
    np.testing.assert_array_equal(clone[:, :], src)
    lvl.close()
    clone.close()


# ------------------------------------------------------------------------------------------ grayscale
def test_rgb_to_gray_matches_bt601_float_formula(rng: np.random.Generator) -> None:
    for dtype in (np.uint8, np.uint16):
        top = np.iinfo(dtype).max
        rgb = rng.integers(0, top + 1, (5000, 3), dtype=np.int64).astype(dtype)
        rgb = np.concatenate([rgb, np.array([[top, top, top], [0, 0, 0], [top, 0, 0]], dtype=dtype)])
        y = rgb_to_gray(rgb)
        assert y.dtype == dtype
        exact = 0.299 * rgb[:, 0].astype(np.float64) + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
        frac = exact - np.floor(exact)
        clear = np.abs(frac - 0.5) > 1e-6  # away from ties, half-up rounding equals floor(x + 0.5)
        np.testing.assert_array_equal(y[clear], np.floor(exact[clear] + 0.5).astype(dtype))
        assert np.all(np.abs(y.astype(np.float64) - exact) <= 0.5 + 1e-6)
        assert y[-3] == top and y[-2] == 0
    rgba = np.array([[[10, 20, 30, 255]]], dtype=np.uint8)
    assert rgb_to_gray(rgba)[0, 0] == (299 * 10 + 587 * 20 + 114 * 30 + 500) // 1000


# ------------------------------------------------------------------------------------------ ordering
def _touch(tmp_path: Path, names: list[str]) -> list[Path]:
    out = []
    for n in names:
        (tmp_path / n).write_bytes(b"")
        out.append(tmp_path / n)
    return out


def test_order_by_plane_number(tmp_path: Path) -> None:
    paths = _touch(tmp_path, ["s7_z10.tif", "s7_z2.tif", "s7_z1.tif", "s7_z0.tif"] + [f"s7_z{i}.tif" for i in range(3, 10)])
    ordered, numbers = order_planes(paths)
    assert numbers == list(range(11)) and ordered[10].name == "s7_z10.tif"
    # a timestamp varies too: the number after "z" wins
    paths = _touch(tmp_path, ["slide_z1_t1405.tif", "slide_z0_t1411.tif", "slide_z2_t1402.tif"])
    assert [p.name for p in order_planes(paths)[0]] == ["slide_z0_t1411.tif", "slide_z1_t1405.tif", "slide_z2_t1402.tif"]
    assert [p.name for p in order_planes(paths, r"_z(\d+)_")[0]][0] == "slide_z0_t1411.tif"
    assert order_planes(paths, "given")[0] == paths
    assert [p.name for p in order_planes(_touch(tmp_path, ["b10.tif", "b9.tif"]), "name")[0]] == ["b9.tif", "b10.tif"]


def test_order_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"plane number 2 missing .* numbered 0\.\.3"):
        order_planes(_touch(tmp_path, ["p0.tif", "p1.tif", "p3.tif"]))
    with pytest.raises(InputError, match="repeat"):
        order_planes(_touch(tmp_path, ["a_01.tif", "a_1.tif"]))
    with pytest.raises(InputError, match="ambiguous.*--order"):
        order_planes(_touch(tmp_path, ["r1_c5.tif", "r2_c6.tif"]))
    with pytest.raises(InputError, match="text differs"):
        order_planes(_touch(tmp_path, ["left1.tif", "right2.tif"]))
    with pytest.raises(ConfigError, match="group"):
        order_planes(_touch(tmp_path, ["p0.tif", "p1.tif"]), r"p\d+")
    with pytest.raises(InputError, match="finds no plane number"):
        order_planes(_touch(tmp_path, ["p0.tif", "q.tif"]), r"p(\d+)")


def test_collect_inputs(tmp_path: Path) -> None:
    d = tmp_path / "planes"
    d.mkdir()
    _touch(d, ["z1.tif", "z0.TIFF", "notes.txt", ".hidden.tif"])
    assert [p.name for p in collect_inputs([d])] == ["z0.TIFF", "z1.tif"]
    assert [p.name for p in collect_inputs([str(d / "z*.tif")])] == ["z1.tif"]
    with pytest.raises(InputError, match="does not exist"):
        collect_inputs([tmp_path / "nope"])
    with pytest.raises(InputError, match="no files match"):
        collect_inputs([str(tmp_path / "*.svs")])
    with pytest.raises(InputError, match="given twice"):
        collect_inputs([d, d / "z1.tif"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no TIFF files"):
        collect_inputs([tmp_path / "empty"])


# ------------------------------------------------------------------------------------------ volumes
def test_per_plane_volume_gray_and_keep(tmp_path: Path, rng: np.random.Generator) -> None:
    d = tmp_path / "sec"
    d.mkdir()
    planes = [smooth_rgb(rng, 80, 100) for _ in range(3)]
    for i, p in enumerate(planes):
        write_huron(d / f"sec_z{i:02d}.tif", p, tile=32)  # LZW: exact
    vol = open_tiff_volume([d], voxel_size_um=(1.0, 0.5, 0.5), block_yx=(64, 64))
    assert vol.axes == "zyx" and vol.data.shape == (3, 80, 100) and vol.data.dtype == np.uint8
    assert vol.plane_numbers == [0, 1, 2]
    expected = np.stack([(299 * p[..., 0].astype(np.int64) + 587 * p[..., 1].astype(np.int64) + 114 * p[..., 2].astype(np.int64) + 500) // 1000
                         for p in planes]).astype(np.uint8)
    np.testing.assert_array_equal(vol.data.compute(), expected)
    keep = open_tiff_volume([d], channel_mode="keep", voxel_size_um=(1.0, 0.5, 0.5))
    assert keep.axes == "czyx"
    np.testing.assert_array_equal(keep.data.compute(), np.moveaxis(np.stack(planes), -1, 0))
    assert vol.provenance()["grayscale"].startswith("ITU-R BT.601")


def test_voxel_size_resolution(tmp_path: Path, rng: np.random.Generator) -> None:
    src = smooth_rgb(rng, 64, 64)
    write_aperio(tmp_path / "a_z0.svs", src, compression="lzw")
    write_aperio(tmp_path / "a_z1.svs", src, compression="lzw")
    with pytest.raises(InputError, match=r"voxel size unknown for z: .*MPP.*--voxel-size Z,Y,X .*e\.g\. --voxel-size 1\.0,0\.252,0\.252"):
        open_tiff_volume([tmp_path])
    vol = open_tiff_volume([tmp_path], voxel_size_um=(1.5, 0.25, 0.25))
    assert vol.voxel_size_um == (1.5, 0.25, 0.25) and vol.voxel_size_from["y"] == "--voxel-size"
    # 72 dpi is a screen default, not a pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", src[..., 0], resolution=(72, 72), resolutionunit="INCH", metadata=None)
    info = inspect_tiff(tmp_path / "dpi.tif")
    assert info.voxel_size_um == (None, None, None) and "ignored" in info.notes[0]
    with pytest.raises(ConfigError, match="positive"):
        open_tiff_volume([tmp_path / "dpi.tif"], voxel_size_um=(0.0, 1.0, 1.0))


def test_ome_channels_need_keep(tmp_path: Path, rng: np.random.Generator) -> None:
    src = rng.integers(0, 255, (2, 3, 30, 40), dtype=np.uint8)
    path = tmp_path / "fl.ome.tif"
    tifffile.imwrite(path, src, metadata={"axes": "CZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5})
    with pytest.raises(InputError, match="channels .* not RGB; give --channel-mode keep"):
        open_tiff_volume([path])
    vol = open_tiff_volume([path], channel_mode="keep")
    assert vol.axes == "czyx" and vol.voxel_size_um == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(vol.data.compute(), src)


# ------------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs_one_clear_line(tmp_path: Path, rng: np.random.Generator) -> None:
    def plane(name: str, shape: tuple[int, int] = (40, 50), dtype: type = np.uint8) -> Path:
        return write_huron(tmp_path / name, rng.integers(0, 200, shape).astype(dtype), tile=16)

    a, b = plane("p0.tif"), plane("p1.tif")
    c = plane("p2_big.tif", (48, 50))
    with pytest.raises(InputError, match=r"planes differ in size: p0\.tif is 40×50 px \(Y×X\) but p2_big\.tif is 48×50") as e:
        open_tiff_volume([a, b, c], order="name")
    assert "\n" not in e.value.message
    d = plane("p3_16.tif", dtype=np.uint16)
    with pytest.raises(InputError, match=r"planes differ in data type: p0\.tif is uint8 but p3_16\.tif is uint16"):
        open_tiff_volume([a, b, d], order="name")
    missing = plane("p4.tif")
    with pytest.raises(InputError, match=r"plane numbers 2, 3 missing .* numbered 0\.\.4"):
        open_tiff_volume([a, b, missing])
    txt = tmp_path / "p5.tif"
    txt.write_text("hello")
    with pytest.raises(InputError, match=r"p5\.tif is not a TIFF file \(it starts with b'hell'"):
        open_tiff_volume([a, b, txt], order="name")
    f32 = tmp_path / "f.tif"
    tifffile.imwrite(f32, np.zeros((8, 8), np.float32))
    with pytest.raises(InputError, match="holds float32 pixels; valid data types are uint8 and uint16"):
        inspect_tiff(f32)


def test_open_reads_no_pixels_and_a_block_reads_only_its_tiles(tmp_path: Path, rng: np.random.Generator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        write_huron(tmp_path / f"q_z{i}.tif", rng.integers(0, 255, (128, 128), dtype=np.uint8), tile=32)
    reads: list[tuple[slice, ...]] = []
    original = TiffLevel0.__getitem__

    def counting(self: TiffLevel0, key: tuple[slice, ...]) -> np.ndarray:
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(TiffLevel0, "__getitem__", counting)
    vol = open_tiff_volume([tmp_path], voxel_size_um=(1, 1, 1), block_yx=(64, 64))
    assert reads == []  # validation reads metadata only
    block = vol.data[:, 64:128, 0:64].compute()
    assert block.shape == (3, 64, 64)
    assert len(reads) == 3 and all(k[:2] == (slice(64, 128), slice(0, 64)) for k in reads)  # one tile-aligned read per plane
