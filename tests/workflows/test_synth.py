"""Synthetic brightfield z-scans: determinism, slab independence, structure, options, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from zse.errors import ConfigError
from zse.workflows import synth as S

SHAPE = (9, 48, 40)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return S.synthesize(SHAPE, 3)


def test_deterministic_for_a_seed(small) -> None:
    xs, gt = small
    xs2, gt2 = S.synthesize(SHAPE, 3)
    assert xs.dtype == np.uint8 and xs.shape == SHAPE and gt.shape == SHAPE
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(gt, gt2)
    xs3, _ = S.synthesize(SHAPE, 4)
    assert np.mean(xs3 != xs) > 0.5


def test_independent_of_slab_size_and_a_crop_of_a_larger_volume() -> None:
    shape = (5, 270, 40)  # crosses a CELL_PX boundary in y
    a, ga = S.synthesize(shape, 11, slab_px=512)
    b, gb = S.synthesize(shape, 11, slab_px=100)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ga, gb)
    c = S.synthesize_region((5, 300, 64), 11, (0, 0, 270, 40), kinds=("x-scan",))["x-scan"]
    np.testing.assert_array_equal(a, c)


def test_dask_array_matches_numpy() -> None:
    shape = (5, 70, 40)
    xs, gt = S.synthesize(shape, 2)
    lazy = S.synth_dask(shape, 2, "x-scan", slab_px=40)
    assert lazy.shape == shape and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), xs)
    np.testing.assert_array_equal(S.synth_dask(shape, 2, "ground-truth").compute(scheduler="synchronous"), gt)


def test_structure_dark_cells_on_light_background() -> None:
    xs, gt = S.synthesize((15, 128, 128), 5, section_um=8.0, section_wobble_um=0.0)
    top = 0.95 * 255
    assert np.percentile(xs, 99.5) > 0.75 * top  # light background
    assert np.percentile(xs, 1) < 0.35 * top  # dark cells
    assert np.median(xs) > 0.45 * top  # mostly light
    curve = S.sharpness_curve(xs)
    mid = 7
    assert curve[mid] > 1.5 * curve[0] and curve[mid] > 1.5 * curve[-1]
    assert int(np.argmax(curve)) in range(4, 11)
    # the ground truth (1.3-NA oil PSF, no noise) sections more sharply: its out-of-focus planes
    # lose more detail relative to its in-focus planes than those of the 0.75-NA x-scan
    gcurve = S.sharpness_curve(gt)
    assert gcurve[0] / gcurve[mid] < curve[0] / curve[mid]
    assert gcurve[-1] / gcurve[mid] < curve[-1] / curve[mid]
    # same light per plane (PSF planes sum to 1): mean intensity differs little between truth and x-scan
    assert abs(float(xs.mean()) - float(gt.mean())) < 5


def test_uint16_scales_with_the_dtype(small) -> None:
    xs8, _ = small
    xs16, gt16 = S.synthesize(SHAPE, 3, dtype="uint16")
    assert xs16.dtype == np.uint16
    np.testing.assert_allclose(xs16.astype(float) / 257.0, xs8.astype(float), atol=2.5)


def test_stronger_blur_preset_blurs_more() -> None:
    na, dz = S.BLUR_PRESETS["strong"]
    a, _ = S.synthesize((9, 64, 64), 1)
    b, _ = S.synthesize((9, 64, 64), 1, na=na, z_step_um=dz)
    assert S.sharpness_curve(b)[0] < S.sharpness_curve(a)[0]


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 16, 16), {}),
        ((9, 0, 16), {}),
        ((9, 16, -1), {}),
        ((9, 16), {}),
        ((9, 16, 16), {"dtype": "float32"}),
        ((9, 16, 16), {"na": 1.2}),
        ((9, 16, 16), {"z_step_um": 0}),
        ((9, 16, 16), {"voxel_size_um": (1, 1, 2)}),
        ((9, 16, 16), {"slab_px": 0}),
        ((9, 16, 16), {"bogus": 1}),
    ],
)
def test_bad_options_raise_config_error(shape, kwargs) -> None:
    with pytest.raises(ConfigError):
        S.synthesize(shape, 0, **kwargs)


def test_negative_seed_raises() -> None:
    with pytest.raises(ConfigError, match="seed"):
        S.synthesize(SHAPE, -1)


def _write_volume_available() -> bool:
    try:
        from zse.pipeline.write import write_volume  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _write_volume_available(), reason="zse.pipeline.write.write_volume not available")
@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_cli_writes_xscan_and_ground_truth(tmp_path, ngff) -> None:
    from click.testing import CliRunner

    from zse.pipeline.ngff import open_image
    from zse.workflows.cli import cli

    out, gt = tmp_path / "x.zarr", tmp_path / "gt.zarr"
    res = CliRunner().invoke(
        cli, ["synth", str(out), "--shape", "5,40,36", "--seed", "7", "--ground-truth", str(gt), "--ngff", ngff, "--quiet"]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    img = open_image(out)
    assert img.meta.shape_zyx == (5, 40, 36) and img.meta.dtype == "uint8"
    xs, truth = S.synthesize((5, 40, 36), 7)
    np.testing.assert_array_equal(np.asarray(img.levels[0][...]), xs)
    np.testing.assert_array_equal(np.asarray(open_image(gt).levels[0][...]), truth)
    meta = img.attrs.get("zse", img.attrs)
    assert meta["synth"]["seed"] == 7 and meta["synth"]["kind"] == "x-scan"
    assert open_image(gt).attrs.get("zse", {})["synth"]["kind"] == "ground-truth"


@pytest.mark.skipif(not _write_volume_available(), reason="zse.pipeline.write.write_volume not available")
def test_cli_bad_shape_is_a_config_error(tmp_path) -> None:
    from click.testing import CliRunner

    from zse.workflows.cli import cli

    res = CliRunner().invoke(cli, ["synth", str(tmp_path / "x.zarr"), "--shape", "2,16,16"])
    assert isinstance(res.exception, ConfigError)
    assert "2,16,16" in res.exception.message and "Z >= 3" in res.exception.message
    assert not (tmp_path / "x.zarr").exists()
