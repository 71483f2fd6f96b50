"""Synthetic brightfield z-scans (zse.models.simulator): determinism, slab independence, structure, the
optical-section truth and its headroom, options."""

from __future__ import annotations

import numpy as np
import pytest

from zse.errors import ConfigError
from zse.models import metrics as M
from zse.models import simulator as S

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
    c = S.synthesize_region((5, 300, 64), 11, (0, 0, 270, 40), kinds=("z-scan",))["z-scan"]
    np.testing.assert_array_equal(a, c)


def test_dask_array_matches_numpy() -> None:
    shape = (5, 70, 40)
    xs, gt = S.synthesize(shape, 2)
    lazy = S.synth_dask(shape, 2, "z-scan", slab_px=40)
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


def test_truth_is_an_optical_section_empty_outside_the_slice() -> None:
    """The truth shows tissue only where the section is (planes of pure background above and below it),
    and an in-slice plane carries about the column's mean optical density (the z-scan's, every plane
    of which carries the whole column)."""
    z = 21
    xs, gt = S.synthesize((z, 96, 96), 5, section_um=10.0, section_wobble_um=0.0, z_step_um=1.0)
    top = 0.95 * 255
    # section faces at 10 ± 5 µm (soft by 1 µm); neurons reach 3 µm beyond; the kernel keeps ±3 planes
    for k in (0, 1, z - 2, z - 1):
        assert np.abs(gt[k].astype(float) - top).max() <= 1.0, k
    assert gt[z // 2].std() > 10 and xs[0].std() > 1  # tissue in the slice; haze everywhere in the z-scan
    od = lambda v: -np.log(np.clip(v.astype(float), 1, None) / top)  # noqa: E731
    in_slice = od(gt[z // 2 - 3 : z // 2 + 4]).mean()
    column = od(xs).mean()
    assert 0.6 * column < in_slice < 1.4 * column, (in_slice, column)


def test_truth_has_headroom() -> None:
    """The input's SSIM to the truth on in-slice planes and on vertical sections is well below 1
    (≤ 0.8: room for a method to show), and above a floor (the truth is of the same tissue)."""
    xs, gt = S.synthesize((29, 128, 128), 2, na=0.75, z_step_um=1.4)
    planes = [k for k in range(29) if gt[k].std() > 3]
    ssim_planes = np.mean([M.ssim(xs[k], gt[k], data_range=255) for k in planes])
    ssim_xz = np.mean([M.ssim(xs[:, j, :], gt[:, j, :], data_range=255) for j in range(8, 128, 16)])
    for value in (ssim_planes, ssim_xz):
        assert 0.25 < value <= 0.8, (ssim_planes, ssim_xz)


def test_uint16_scales_with_the_dtype(small) -> None:
    xs8, _ = small
    xs16, gt16 = S.synthesize(SHAPE, 3, dtype="uint16")
    assert xs16.dtype == np.uint16
    np.testing.assert_allclose(xs16.astype(float) / 257.0, xs8.astype(float), atol=2.5)


def test_sharpness_curve_is_the_forward_difference_gradient(small) -> None:
    xs, _ = small
    v = xs.astype(np.float32)
    gy, gx = np.diff(v, axis=1)[:, :, :-1], np.diff(v, axis=2)[:, :-1, :]
    expected = np.sqrt(gy * gy + gx * gx).mean(axis=(1, 2)).astype(np.float64)
    np.testing.assert_array_equal(S.sharpness_curve(xs), expected)
    np.testing.assert_array_equal(S.sharpness_curve(xs), M.focus_curve(xs, "forward-gradient"))


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
