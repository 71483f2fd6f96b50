"""OME-Zarr in and out: NGFF 0.4 / 0.5 round trips validated by ome-zarr-models, bioformats2raw, pyramid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04.image import Image as Image04
from ome_zarr_models.v05.image import Image as Image05

from zse.models.baselines.identity import IdentityFactory
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.pyramid import downsample_mean_yx
from zse.pipeline.run import run_enhance


def validate(path: Path, ngff: str) -> None:
    group = zarr.open_group(str(path), mode="r")
    (Image04 if ngff == "0.4" else Image05).from_zarr(group)


@pytest.mark.parametrize("in_ngff", ["0.4", "0.5"])
@pytest.mark.parametrize("out_ngff", ["0.4", "0.5"])
def test_round_trip_through_enhance_validates(tmp_path: Path, in_ngff: str, out_ngff: str) -> None:
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 256, (3, 1100, 80), dtype=np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, ngff=in_ngff, voxel_size_um=(1.4, 0.25, 0.25),
                       translation_um=(10.0, -5.0, 7.5), progress=False, block=512)
    validate(src, in_ngff)
    out = tmp_path / "out.ome.zarr"
    run_enhance(open_image(src), out, IdentityFactory(), make_options(ngff=out_ngff, block=512, skip_background=False), progress=False)
    validate(out, out_ngff)
    img = open_image(out)
    assert img.meta.ngff_version == out_ngff
    assert img.meta.voxel_size_um == pytest.approx((1.4, 0.25, 0.25))
    assert img.meta.translation_um == pytest.approx((10.0, -5.0, 7.5))
    np.testing.assert_array_equal(img.levels[0][...], vol)
    # pyramid: 1100 > 1024 → one more level, y and x halved (rounded up), z kept, mean downsampling
    assert [a.shape for a in img.levels] == [(3, 1100, 80), (3, 550, 40)]
    np.testing.assert_array_equal(img.levels[1][...], downsample_mean_yx(vol))
    attrs = dict(img.attrs)
    ms = attrs["ome"]["multiscales"][0] if out_ngff == "0.5" else attrs["multiscales"][0]
    tr1 = ms["datasets"][1]["coordinateTransformations"]
    assert tr1[0]["scale"] == pytest.approx([1.4, 0.5, 0.5])
    assert tr1[1]["translation"] == pytest.approx([10.0, -5.0 + 0.125, 7.5 + 0.125])  # pixel centres kept
    zse = attrs["zse"]
    assert zse["status"] == "complete" and zse["provenance"]["model"]["name"] == "identity"
    assert "omero" in (attrs["ome"] if out_ngff == "0.5" else attrs)


def test_ome_zarr_py_reader_loads_every_level_with_scale(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    vol = np.random.default_rng(1).integers(0, 256, (3, 2100, 300), dtype=np.uint8)
    path = write_volume(tmp_path / "x.ome.zarr", vol, voxel_size_um=(2.0, 0.5, 0.5), progress=False)
    node = next(iter(Reader(parse_url(str(path)))()))
    shapes = [tuple(d.shape) for d in node.data]
    assert shapes == [(3, 2100, 300), (3, 1050, 150), (3, 525, 75)]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[2.0, 0.5, 0.5], [2.0, 1.0, 1.0], [2.0, 2.0, 2.0]]


def test_reads_bioformats2raw_layout(tmp_path: Path) -> None:
    vol = np.random.default_rng(2).integers(0, 256, (4, 40, 50), dtype=np.uint8)
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    write_volume(root / "0", vol, ngff="0.4", progress=False)
    img = open_image(root)
    assert img.meta.ngff_version == "0.4" and img.image_path == root / "0"
    np.testing.assert_array_equal(img.levels[0][...], vol)


def test_downsample_mean_odd_edges_keep_values() -> None:
    a = np.array([[10, 20, 30], [30, 40, 50], [60, 70, 80]], dtype=np.uint8)
    got = downsample_mean_yx(a)
    assert got.tolist() == [[25, 40], [65, 80]]


def test_output_writes_are_shard_aligned(tmp_path: Path) -> None:
    vol = np.zeros((3, 300, 300), np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, progress=False)
    run_enhance(open_image(src), tmp_path / "o.ome.zarr", IdentityFactory(), make_options(block=128), progress=False)
    arr = zarr.open_array(str(tmp_path / "o.ome.zarr" / "0"))
    assert arr.shards == (3, 128, 128)
    assert 128 % arr.chunks[-1] == 0


def test_section_identity_origin_and_provenance_carried_to_output_and_shown_by_info(tmp_path: Path) -> None:
    from zse.workflows.info import describe

    vol = np.random.default_rng(5).integers(0, 256, (3, 40, 50), dtype=np.uint8)
    src = write_volume(tmp_path / "in.ome.zarr", vol, voxel_size_um=(1.5, 0.5, 0.5), translation_um=(42.0, 1.0, 2.0),
                       attrs={"section_id": "B20-s0173"}, progress=False)
    out = tmp_path / "out.ome.zarr"
    run_enhance(open_image(src), out, IdentityFactory(), make_options(skip_background=False), progress=False)
    zse = dict(zarr.open_group(str(out), mode="r").attrs)["zse"]
    assert zse["section_id"] == "B20-s0173"
    assert zse["translation_um"] == [42.0, 1.0, 2.0] and zse["voxel_size_um"] == [1.5, 0.5, 0.5]
    assert zse["provenance"]["model"]["checksum"] == IdentityFactory().checksum
    text = "\n".join(describe(out))
    assert "B20-s0173" in text and "complete" in text and "42.0" in text and "identity" in text
