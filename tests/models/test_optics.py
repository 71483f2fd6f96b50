"""Theoretical PSFs: normalisation, symmetry, defocus behaviour, validation, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from zse.errors import ConfigError
from zse.models import optics


def _rms_radius(psf_zyx: np.ndarray) -> np.ndarray:
    _, ny, nx = psf_zyx.shape
    yy, xx = np.mgrid[-(ny // 2) : ny // 2 + 1, -(nx // 2) : nx // 2 + 1]
    return np.sqrt((psf_zyx * (yy**2 + xx**2)).sum(axis=(1, 2)))


@pytest.mark.parametrize("fn", [optics.widefield_psf_zyx, optics.high_na_psf_zyx])
def test_planes_sum_to_one_and_symmetric(fn) -> None:
    psf = fn((15, 31, 31), (1.0, 1.0, 1.0))
    assert psf.shape == (15, 31, 31) and psf.dtype == np.float32
    assert (psf >= 0).all()
    np.testing.assert_allclose(psf.sum(axis=(1, 2)), 1.0, atol=1e-5)
    np.testing.assert_allclose(psf, psf[::-1], atol=1e-7)  # z -> -z
    np.testing.assert_allclose(psf, psf[:, ::-1], atol=1e-7)  # y -> -y
    np.testing.assert_allclose(psf, psf[:, :, ::-1], atol=1e-7)  # x -> -x
    np.testing.assert_allclose(psf, psf.transpose(0, 2, 1), atol=1e-7)  # y <-> x
    assert np.unravel_index(np.argmax(psf), psf.shape) == (7, 15, 15)


def test_widens_with_defocus() -> None:
    psf = optics.widefield_psf_zyx((21, 41, 41), na=0.75)
    r = _rms_radius(psf)[10:]  # focus, then increasing defocus
    assert np.all(np.diff(r) > 0), r
    # the centre pixel's share falls with defocus (not monotonically: on-axis Fresnel oscillation)
    c = psf[10:, 20, 20]
    assert c[0] > c[2] > c[5] > c[10]
    # the geometric blur radius at 8 µm (≈ 9 µm for NA 0.75 in air) is about the RMS radius there
    geo = optics.defocus_blur_radius_um(8.0, na=0.75)
    assert 0.5 * geo < r[8] < 1.2 * geo


def test_higher_na_sharper_in_focus_wider_out_of_focus() -> None:
    lo = optics.widefield_psf_zyx((11, 31, 31), na=0.5)
    hi = optics.widefield_psf_zyx((11, 31, 31), na=0.9)
    assert hi[5, 15, 15] > lo[5, 15, 15]
    assert _rms_radius(hi)[0] > _rms_radius(lo)[0]


def test_voxel_size_scales_defocus() -> None:
    a = optics.widefield_psf_zyx((5, 31, 31), (2.0, 1.0, 1.0))
    b = optics.widefield_psf_zyx((9, 31, 31), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # both at 4 µm defocus


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shape_zyx=(4, 31, 31)),
        dict(shape_zyx=(5, 30, 30)),
        dict(shape_zyx=(5, 31, 33)),
        dict(shape_zyx=(5, 31, 31), na=1.2),
        dict(shape_zyx=(5, 31, 31), voxel_size_um=(1.0, 0.0, 0.0)),
        dict(shape_zyx=(5, 31, 31), wavelength_um=-1.0),
    ],
)
def test_bad_options_raise_config_error(kwargs) -> None:
    with pytest.raises(ConfigError):
        optics.widefield_psf_zyx(**kwargs)


def test_speed_29x63x63() -> None:
    optics._widefield_cached.cache_clear()
    t = time.perf_counter()
    optics.widefield_psf_zyx((29, 63, 63))
    assert time.perf_counter() - t < 1.0  # ~0.1 s on 2 cores; generous for loaded CI
