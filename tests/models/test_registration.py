"""`zse.models.registration`: known shifts recovered by the PSF method and by cross-correlation on synthetic
pairs (sharp phantom vs blurred + shifted + noisy), the sign convention, the kernel, the solver and the peak fit.

Every expected shift is the one the test applied; none comes from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from zse.errors import ConfigError, InputError
from zse.models import registration as R

MAX_SHIFT = (3, 4, 4)


def _phantom(seed: int, shape: tuple[int, int, int] = (30, 72, 72)) -> np.ndarray:
    """Brightfield-like sharp volume: dark blobs and texture on a light background, float64."""
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    return 180.0 - 60.0 * (v > 0.12) - 40.0 * v


def _pair(seed: int, d_zyx: tuple[float, float, float], noise: float = 1.0,
          blur: tuple[float, float, float] = (1.2, 0.8, 0.8)) -> tuple[np.ndarray, np.ndarray]:
    """(sharp, blurred): blurred(r) = (g ∗ sharp)(r − d) + noise, both cropped to (16, 40, 40) away from
    the faces so that the shifted content comes from inside the phantom."""
    big = _phantom(seed)
    moved = ndimage.shift(ndimage.gaussian_filter(big, blur), d_zyx, order=3, mode="nearest")
    crop = (slice(7, 23), slice(16, 56), slice(16, 56))
    rng = np.random.default_rng(seed + 100)
    return big[crop], moved[crop] + rng.normal(0.0, noise, moved[crop].shape)


@pytest.mark.parametrize("method", ["psf", "xcorr"])
@pytest.mark.parametrize(("d", "tol"), [((1.0, -2.0, 1.0), 0.2), ((0.0, 1.0, -3.0), 0.2),
                                        ((1.4, -0.6, 2.3), 0.35), ((-0.5, 1.5, 0.25), 0.35)])
def test_known_shift_is_recovered(method: str, d: tuple[float, float, float], tol: float) -> None:
    """MOVING = FIXED blurred and shifted by +d: the shift mapping MOVING onto FIXED is −d (integer and
    sub-voxel, with noise)."""
    sharp, blurred = _pair(3, d)
    shift, est = R.register_arrays(blurred, sharp, MAX_SHIFT, method=method, sharp="fixed")
    np.testing.assert_allclose(shift, -np.asarray(d), atol=tol)
    assert est.at_border == ()
    assert est.kernel.shape == (7, 9, 9)


@pytest.mark.parametrize("method", ["psf", "xcorr"])
def test_applying_the_shift_to_moving_gives_fixed(method: str) -> None:
    """The convention end to end: ndimage.shift(moving, shift) matches fixed (blurred), much better than
    the opposite sign or no shift; and with the sharp scan as MOVING the sign follows. (The box must hold
    the shift plus the blur's tail: a kernel cut by the box's face piles its mass up there.)"""
    d = (1.0, -3.0, 2.0)
    box = (3, 5, 5)
    big = _phantom(5)
    blurred_big = ndimage.gaussian_filter(big, (1.2, 0.8, 0.8))
    crop = (slice(7, 23), slice(16, 56), slice(16, 56))
    inner = (slice(4, -4), slice(6, -6), slice(6, -6))
    moving = ndimage.shift(blurred_big, d, order=1, mode="nearest")[crop]
    fixed = big[crop]
    shift, _ = R.register_arrays(moving, fixed, box, method=method, sharp="fixed")

    def err(s: tuple[float, ...]) -> float:
        return float(np.abs(ndimage.shift(moving, s, order=1, mode="nearest")[inner] - blurred_big[crop][inner]).mean())

    assert err(shift) < 0.2 * err((0.0, 0.0, 0.0))
    assert err(shift) < 0.2 * err(tuple(-v for v in shift))
    # the sharp scan as MOVING: moving_sharp(r) = sharp(r − d), fixed = blurred(r): the shift is −d again
    moving_sharp = ndimage.shift(big, d, order=1, mode="nearest")[crop]
    shift2, _ = R.register_arrays(moving_sharp, blurred_big[crop], box, method=method, sharp="moving")
    np.testing.assert_allclose(shift2, -np.asarray(d), atol=0.2)


def test_kernel_sums_to_one_and_peaks_at_the_offset() -> None:
    sharp, blurred = _pair(7, (1.0, 2.0, -1.0), noise=0.5)
    est = R.estimate_kernel(sharp, blurred, MAX_SHIFT)
    assert abs(est.kernel.sum() - 1.0) < 0.05
    assert est.integer_peak_zyx == (1, 2, -1)
    assert est.method == "psf" and est.iterations >= 1 and est.objective is not None


def test_solver_reaches_the_normal_equations_without_tv() -> None:
    """λ = 0: the Chambolle–Pock result solves (2A + 2μ11ᵀ) f = 2b + 2μ1 (numpy's direct solve)."""
    sharp, blurred = _pair(11, (0.5, -1.0, 1.5))
    x, y = R.normalise(sharp), R.normalise(blurred)
    a_mat, b, _ = R._normal_equations(x, y, MAX_SHIFT)
    mu = 10.0
    direct = np.linalg.solve(2 * a_mat + 2 * mu, 2 * b + 2 * mu).reshape(7, 9, 9)
    est = R.estimate_kernel(sharp, blurred, MAX_SHIFT, lam=0.0, mu=mu, max_iter=2000, tol=1e-9)
    np.testing.assert_allclose(est.kernel, direct, atol=1e-5 * np.abs(direct).max() + 1e-9)


def test_solver_minimises_the_tv_objective() -> None:
    """λ = 1: no random perturbation of the returned kernel lowers the objective (convex: a local minimum
    is the global one); the objective is evaluated here from A, b with numpy's own differences."""
    sharp, blurred = _pair(13, (1.0, 0.5, -0.5))
    x, y = R.normalise(sharp), R.normalise(blurred)
    a_mat, b, yy = R._normal_equations(x, y, MAX_SHIFT)
    lam, mu = 1.0, 10.0

    def objective(f: np.ndarray) -> float:
        tv = sum(np.abs(np.diff(f, axis=a)).sum() for a in range(3))
        fv = f.ravel()
        return float(fv @ a_mat @ fv - 2 * b @ fv + yy + lam * tv + mu * (fv.sum() - 1) ** 2)

    est = R.estimate_kernel(sharp, blurred, MAX_SHIFT, lam=lam, mu=mu, max_iter=3000, tol=1e-10)
    f0 = est.kernel
    assert objective(f0) == pytest.approx(est.objective, rel=1e-9)
    rng = np.random.default_rng(0)
    for eps in (1e-3, 1e-4):
        for _ in range(10):
            assert objective(f0 + eps * rng.standard_normal(f0.shape)) >= objective(f0) - 1e-6


def test_normal_equations_match_the_explicit_valid_convolution() -> None:
    """b is exact (Σ over the valid voxels of y(r)·x(r − s)); A, the Gram matrix of the shifted copies of the
    interior, is positive semi-definite and near the exact Gram matrix of the shifted windows (here 20 %:
    the box is large for this tiny region, the difference lies in slabs of width ≤ 2R at the faces)."""
    sharp, blurred = _pair(17, (0.0, 1.0, 0.0))
    x, y = R.normalise(sharp), R.normalise(blurred)
    r = (2, 3, 3)
    a_mat, b, _ = R._normal_equations(x, y, r)
    offs = [(i, j, k) for i in range(-2, 3) for j in range(-3, 4) for k in range(-3, 4)]
    nz, ny, nx = x.shape
    cols = np.stack([x[r[0] - s[0]:nz - r[0] - s[0], r[1] - s[1]:ny - r[1] - s[1], r[2] - s[2]:nx - r[2] - s[2]].ravel()
                     for s in offs], axis=1)
    y_valid = y[r[0]:nz - r[0], r[1]:ny - r[1], r[2]:nx - r[2]].ravel()
    np.testing.assert_allclose(b, cols.T @ y_valid, rtol=1e-9, atol=1e-9)
    exact = cols.T @ cols
    assert np.linalg.norm(a_mat - exact) < 0.2 * np.linalg.norm(exact)
    assert np.linalg.eigvalsh(a_mat).min() > -1e-9 * np.abs(a_mat).max()


def test_subvoxel_peak_of_a_parabola_is_exact() -> None:
    zz, yy, xx = np.mgrid[:7, :9, :9].astype(float)
    c = (3.3, 4.0, 3.6)
    v = -((zz - c[0]) ** 2) - 2 * (yy - c[1]) ** 2 - 0.5 * (xx - c[2]) ** 2
    for fit in ("parabola", "auto"):  # a broad peak: auto takes the parabola
        ip, pos, border, refined = R.subvoxel_peak(v + 100.0, fit=fit)
        assert ip == (3, 4, 4) and border == () and refined == ("z", "y", "x")
        np.testing.assert_allclose(pos, c, atol=1e-12)


def test_subvoxel_peak_of_a_sampled_point_is_exact() -> None:
    """A point at a sub-voxel position spread over its 8 voxels by trilinear weights (what sampling a
    point-like kernel gives): the 3-point centroid ("auto" picks it for so narrow a peak) finds it."""
    c = (3.3, 4.0, 3.6)
    v = np.zeros((7, 9, 9))
    for corner in np.ndindex(2, 2, 2):
        idx = tuple(int(np.floor(ci)) + k for ci, k in zip(c, corner, strict=True))
        v[idx] += np.prod([1 - abs(ci - i) for ci, i in zip(c, idx, strict=True)])
    for fit in ("centroid", "auto"):
        _, pos, _, _ = R.subvoxel_peak(v, fit=fit)
        np.testing.assert_allclose(pos, c, atol=1e-12)
    _, pos, _, _ = R.subvoxel_peak(v, fit="parabola")
    assert abs(pos[0] - c[0]) > 0.1  # the parabola is biased on so narrow a peak: why "auto" exists


def test_peak_on_the_box_face_is_flagged_not_refined() -> None:
    v = np.zeros((5, 5, 5))
    v[4, 2, 2] = 1.0
    v[3, 2, 2] = 0.5
    v[4, 1, 2] = 0.25
    ip, pos, border, refined = R.subvoxel_peak(v)
    assert ip == (4, 2, 2) and border == ("z",) and pos[0] == 4.0
    assert "z" not in refined and "y" in refined and pos[1] < 2.0


def test_shift_beyond_the_box_is_reported_at_the_border() -> None:
    sharp, blurred = _pair(19, (0.0, 4.0, 0.0), noise=0.5)
    est = R.estimate_kernel(sharp, blurred, (1, 2, 2))
    assert "y" in est.at_border


def test_bad_inputs_are_one_line_errors() -> None:
    sharp, blurred = _pair(23, (0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="constant"):
        R.estimate_kernel(np.full_like(sharp, 100.0), blurred, MAX_SHIFT)
    with pytest.raises(InputError, match="blank"):
        R.cross_correlation(np.zeros_like(sharp), blurred, MAX_SHIFT)
    with pytest.raises(InputError, match="one shape"):
        R.estimate_kernel(sharp, blurred[:-1], MAX_SHIFT)
    with pytest.raises(ConfigError, match="region of at least 21"):
        R.estimate_kernel(sharp, blurred, (10, 2, 2))
    with pytest.raises(ConfigError, match="at most"):
        R.estimate_kernel(np.pad(sharp, 20, mode="reflect"), np.pad(blurred, 20, mode="reflect"), (7, 12, 12))
    with pytest.raises(ConfigError, match="--method"):
        R.estimate(sharp, blurred, MAX_SHIFT, method="phase")
    with pytest.raises(ConfigError, match="--sharp"):
        R.register_arrays(sharp, blurred, MAX_SHIFT, sharp="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--max-shift"):
        R.check_max_shift((1, -1, 2))
    for err in (InputError, ConfigError):
        try:
            R.estimate_kernel(np.full_like(sharp, 100.0), blurred, MAX_SHIFT) if err is InputError else R.check_max_shift((1,))
        except err as exc:
            assert "\n" not in exc.message
