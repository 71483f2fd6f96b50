"""Metric library: each metric against values known independently of the code under test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from zse.errors import ConfigError, InputError
from zse.models import metrics as M
from zse.models.metrics.paper import PAPER_FM_ENDS, PAPER_FM_FOCUS, input_curves, load_npz_stack, npz_files


def _texture(seed: int = 0, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Sharp uint8 test image: dark blobs and fine texture on a light background."""
    rng = np.random.default_rng(seed)
    img = np.full(shape, 200.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(25):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 6)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(30, 120)
    img += rng.normal(0, 3, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(np.round(ndimage.gaussian_filter(img.astype(float), sigma)), 0, 255).astype(np.uint8)


# --- SSIM -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 64), (29, 128), (40, 23)])
def test_ssim_crop_equals_skimage(shape: tuple[int, int]) -> None:
    x = _texture(1, shape)
    y = _blur(x, 1.2)
    ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(x, y, data_range=255, border="crop") == pytest.approx(ref, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    ny=st.integers(11, 40),
    nx=st.integers(11, 40),
    seed=st.integers(0, 2**31 - 1),
    blur=st.floats(0.0, 3.0),
)
def test_ssim_crop_equals_skimage_property(ny: int, nx: int, seed: int, blur: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (ny, nx)).astype(np.uint8)
    y = _blur(x, blur) if blur > 0 else x
    ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(x, y, data_range=255, border="crop") == pytest.approx(ref, abs=1e-12)


def test_ssim_replicate_equals_skimage_on_edge_padded_input() -> None:
    # MATLAB's ssim pads by replicating edges and averages the full map: skimage on inputs padded by the
    # window radius (5) with edge values, which it then crops away, computes exactly that.
    x = _texture(2, (29, 128))
    y = _blur(x, 2.0)
    ref = structural_similarity(
        np.pad(x, 5, mode="edge"), np.pad(y, 5, mode="edge"),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
    )
    got = M.ssim(x, y, data_range=255)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got != pytest.approx(M.ssim(x, y, data_range=255, border="crop"), abs=1e-6)


def test_ssim_identical_is_one_and_blur_lowers_it() -> None:
    x = _texture(3)
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(x, _blur(x, 1.0)) > M.ssim(x, _blur(x, 3.0))


def test_ssim_float_needs_data_range_and_shapes_must_match() -> None:
    x = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ConfigError, match="data_range"):
        M.ssim(x, x)
    with pytest.raises(InputError, match="shape"):
        M.ssim(x, x[:15], data_range=1.0)


# --- PSNR, RMSE, Pearson ----------------------------------------------------------------------------


def test_psnr_rmse_closed_forms() -> None:
    x = np.full((20, 30), 100, np.uint8)
    y = x + np.uint8(10)
    assert M.rmse(x, y) == pytest.approx(10.0)
    assert M.psnr(x, y) == pytest.approx(10 * np.log10(255**2 / 100.0))
    assert M.psnr(x, x) == float("inf")
    z = _texture(4)
    w = _blur(z, 1.5)
    assert M.psnr(z, w, data_range=255) == pytest.approx(peak_signal_noise_ratio(z, w, data_range=255))


def test_pearson_known_values() -> None:
    x = np.random.default_rng(5).normal(size=(32, 32))
    assert M.pearson(x, 2 * x + 3) == pytest.approx(1.0)
    assert M.pearson(x, -x) == pytest.approx(-1.0)
    y = np.random.default_rng(6).normal(size=(32, 32))
    assert M.pearson(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1])
    assert np.isnan(M.pearson(np.ones((4, 4)), x[:4, :4]))


# --- FM -------------------------------------------------------------------------------------------


def test_fm_closed_forms() -> None:
    n = 64
    assert M.fm(np.full((n, n), 7.0)) == pytest.approx(1 / n**2)  # only the DC term
    delta = np.zeros((n, n))
    delta[3, 5] = 1.0
    assert M.fm(delta) == 1.0  # flat spectrum |F| = 1 = M: every coefficient is above M/T
    xx = np.arange(n)[None, :] * np.ones((n, 1))
    img = 100 + 1.0 * np.cos(2 * np.pi * 5 * xx / n)  # DC 100·n², peaks ±5 at 0.5·n²
    assert M.fm(img, t=1000) == pytest.approx(3 / n**2)  # 0.5 > 100/1000
    assert M.fm(img, t=150) == pytest.approx(1 / n**2)  # 0.5 < 100/150


def test_fm_sharp_above_blurred_and_brightness_dependence() -> None:
    x = _texture(7)
    assert M.fm(x) > M.fm(_blur(x, 2.0)) > M.fm(_blur(x, 4.0))
    brighter = x.astype(float) + 50
    assert M.fm(brighter) < M.fm(x)  # the DC term rises, the threshold with it


def test_fm_rejects_bad_t() -> None:
    with pytest.raises(ConfigError, match="t="):
        M.fm(_texture(0), t=0)


# --- PIQE -----------------------------------------------------------------------------------------


def test_piqe_uniform_is_100() -> None:
    assert M.piqe(np.full((32, 48), 120, np.uint8)) == pytest.approx(100.0)


def _pypiqe(img: np.ndarray) -> float:
    pypiqe = pytest.importorskip("pypiqe")
    return float(pypiqe.piqe(img)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_piqe_equals_pypiqe_when_max_is_dtype_max_and_sides_multiple_of_16(seed: int) -> None:
    for img in (_texture(seed, (64, 48)), _blur(_texture(seed, (64, 48)), 2.0)):
        img = img.copy()
        img[0, 0] = 255  # pypiqe divides by the image max; MATLAB by the dtype max
        assert M.piqe(img) == pytest.approx(_pypiqe(img), abs=1e-9)


def test_piqe_pads_by_replication_like_matlab() -> None:
    img = _texture(8, (40, 29))
    img[0, 0] = 255
    padded = np.pad(img, ((0, 8), (0, 3)), mode="edge")  # MATLAB: padarray(..., 'replicate', 'post')
    assert M.piqe(img) == pytest.approx(_pypiqe(padded), abs=1e-9)


def test_piqe_scales_by_dtype_max_not_image_max() -> None:
    img = _texture(9, (48, 48))
    img = (img.astype(float) * 0.5).astype(np.uint8)  # max ≈ 127 < 255
    # MATLAB: round(255·im2double(I)) = I for uint8, so the float image I/255 gives the same score
    assert M.piqe(img) == pytest.approx(M.piqe(img.astype(np.float64) / 255.0), abs=1e-9)
    assert M.piqe(img) != pytest.approx(_pypiqe(img), abs=1e-3)


def test_piqe_blur_scores_worse() -> None:
    x = _texture(10, (64, 64))
    assert M.piqe(_blur(x, 3.0)) > M.piqe(x)


# --- ΔDoM, gradients ---------------------------------------------------------------------------------


def test_delta_dom_orders_sharp_above_blurred_and_is_zero_on_flat() -> None:
    x = _texture(11)
    assert M.delta_dom(x) > M.delta_dom(_blur(x, 1.5)) > M.delta_dom(_blur(x, 3.0))
    assert M.delta_dom(np.full((32, 32), 90, np.uint8)) == 0.0
    assert 0.0 <= M.delta_dom(x) <= np.sqrt(2)


def test_gradient_closed_form_and_histogram() -> None:
    yy, xx = np.mgrid[:20, :30].astype(float)
    ramp = 3 * xx + 4 * yy  # |∇I| = 5 everywhere (central and one-sided differences are exact)
    assert M.average_gradient(ramp) == pytest.approx(5.0)
    counts, edges = M.gradient_histogram(ramp, bins=10, max_value=10.0, density=False)
    assert counts.sum() == ramp.size and counts[5] == ramp.size and edges[5] == 5.0
    x = _texture(12)
    assert M.average_gradient(x) > M.average_gradient(_blur(x, 2.0))
    # forward differences on the (Y − 1, X − 1) pixels with both neighbours: exact on the ramp too
    assert M.forward_gradient(ramp) == pytest.approx(5.0)
    assert M.forward_gradient(x) > M.forward_gradient(_blur(x, 2.0))
    step = np.zeros((4, 5))
    step[:, 3:] = 10.0  # one jump between columns 2 and 3: |∇I| = 10 on 3 of the 3 × 4 pixels
    assert M.forward_gradient(step) == pytest.approx(10 * 3 / 12)
    v = np.stack([x, _blur(x, 2.0)])
    assert M.focus_curve(v, "forward-gradient").tolist() == [M.forward_gradient(p) for p in v]


# --- MI, Hellinger ---------------------------------------------------------------------------------


def test_mutual_information_and_entropy() -> None:
    x = np.repeat(np.array([0, 50, 100, 200], np.uint8), 64).reshape(16, 16)  # 4 equiprobable values
    assert M.entropy(x) == pytest.approx(2.0)
    assert M.mutual_information(x, x) == pytest.approx(2.0)
    t = _texture(13)
    assert M.mutual_information(t, t) == pytest.approx(M.entropy(t))
    assert M.mutual_information(x, np.full_like(x, 7)) == pytest.approx(0.0, abs=1e-12)
    # x and a value independent of it by construction: the 4 values crossed with 2 values equally
    a = np.array([0, 50, 100, 200] * 2, np.uint8)
    b = np.array([0] * 4 + [9] * 4, np.uint8)
    assert M.mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_equals_histogram2d_formula() -> None:
    rng = np.random.default_rng(19)
    x = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    y = np.clip(x.astype(int) // 2 + rng.integers(0, 60, x.shape), 0, 255).astype(np.uint8)
    pxy, _, _ = np.histogram2d(x.ravel(), y.ravel(), bins=256, range=((0, 256), (0, 256)))
    pxy /= pxy.sum()
    px, py = pxy.sum(1), pxy.sum(0)
    nz = pxy > 0
    expected = np.sum(pxy[nz] * np.log2(pxy[nz] / np.outer(px, py)[nz]))
    assert M.mutual_information(x, y) == pytest.approx(expected, rel=1e-12)
    xf, yf = x / 255.0, y / 255.0  # floats: 256 bins over the joint min..max
    pf, _, _ = np.histogram2d(xf.ravel(), yf.ravel(), bins=256, range=((0, 1), (0, 1)))
    pf /= pf.sum()
    nzf = pf > 0
    exp_f = np.sum(pf[nzf] * np.log2(pf[nzf] / np.outer(pf.sum(1), pf.sum(0))[nzf]))
    assert M.mutual_information(xf, yf, value_range=(0.0, 1.0)) == pytest.approx(exp_f, rel=1e-9)


def test_hellinger_known_values() -> None:
    x = _texture(14)
    assert M.hellinger(x, x) == pytest.approx(0.0, abs=1e-7)
    assert M.hellinger(np.zeros((8, 8), np.uint8), np.full((8, 8), 9, np.uint8)) == pytest.approx(1.0)
    p = np.zeros(4, np.uint8)  # all mass at 0
    q = np.array([0, 0, 1, 1], np.uint8)  # half at 0, half at 1: BC = √0.5
    assert M.hellinger(p, q) == pytest.approx(np.sqrt(1 - np.sqrt(0.5)))


# --- seam score -------------------------------------------------------------------------------------


def test_lattice_lines_positions() -> None:
    # T=128, O=32, m=0 → S=96; tiles start 0, 96, 192, 288; edges +0/+128; blend-zone middles start + 112
    assert M.lattice_lines(300, 128, 32, 0, "tiles").tolist() == [96, 128, 192, 224, 288]
    assert M.lattice_lines(300, 128, 32, 0, "blend").tolist() == [96, 128, 192, 224, 288]
    assert M.lattice_lines(300, 128, 32, 0, "centres").tolist() == [112, 208]
    assert M.lattice_lines(300, 128, 32, 0).tolist() == [96, 112, 128, 192, 208, 224, 288]
    # m=8: tiles start −8, 88, 184, 280 (edges +128); cores [0,112), [96,208), [192,304), ...;
    # blend zones [96,112), [192,208), [288,304) with middles 104, 200, 296
    assert M.lattice_lines(300, 128, 32, 8, "tiles").tolist() == [88, 120, 184, 216, 280]
    assert M.lattice_lines(300, 128, 32, 8, "blend").tolist() == [96, 112, 192, 208, 288]
    assert M.lattice_lines(300, 128, 32, 8, "centres").tolist() == [104, 200, 296]
    assert M.lattice_lines(300, 128, 32, 16, "centres").tolist() == []  # O = 2m: no blending zone
    assert M.roi_lines(300, 128).tolist() == [128, 256]
    with pytest.raises(ConfigError, match="overlap"):
        M.lattice_lines(300, 128, 128)


def test_seam_score_seamless_near_one_and_steps_raise_it() -> None:
    rng = np.random.default_rng(15)
    img = ndimage.gaussian_filter(rng.normal(100, 30, (2, 320, 320)), (0, 1.0, 1.0))
    base = M.lattice_seam_score(img)
    assert 0.9 < base < 1.1
    stepped = img.copy()
    for p in M.lattice_lines(320, 128, 32, 0):
        stepped[:, p:, :] += 20.0  # a step across each horizontal line
        stepped[:, :, p:] += 20.0
    assert M.lattice_seam_score(stepped) > 2.0
    # the same steps off the lattice do not count
    off = img.copy()
    off[:, 50:, :] += 20.0
    assert M.lattice_seam_score(off) < 1.0


# --- spectral coverage --------------------------------------------------------------------------------


def test_noise_sigma_estimate_on_pure_noise() -> None:
    v = np.random.default_rng(16).normal(0, 5.0, (8, 64, 64))
    assert M.noise_sigma_immerkaer(v) == pytest.approx(5.0, rel=0.05)


def test_spectral_coverage_orders_sharp_above_blurred_and_noise_is_empty() -> None:
    rng = np.random.default_rng(17)
    truth = ndimage.gaussian_filter(rng.normal(0, 1, (16, 48, 48)), 0.7) * 100
    sharp = truth + rng.normal(0, 1.0, truth.shape)
    blurred = ndimage.gaussian_filter(truth, (3.0, 1.5, 1.5)) + rng.normal(0, 1.0, truth.shape)
    cs = M.spectral_coverage(sharp, noise_sigma=1.0)
    cb = M.spectral_coverage(blurred, noise_sigma=1.0)
    assert cs.total > cb.total and cs.lateral > cb.lateral and cs.axial > cb.axial
    noise = M.spectral_coverage(rng.normal(0, 1.0, (16, 48, 48)))
    assert noise.total < 0.01 and noise.noise_sigma == pytest.approx(1.0, rel=0.1)


# --- stacks -------------------------------------------------------------------------------------------


def _stack(focus: int = 5, nz: int = 11) -> np.ndarray:
    x = _texture(18, (48, 48))
    return np.stack([_blur(x, 0.3 + 0.6 * abs(k - focus)) for k in range(nz)])


def test_focal_plane_and_plane_table() -> None:
    v = _stack(focus=6)
    assert M.focal_plane(v) == 6
    t = M.plane_table(v, v)
    assert set(t) >= {"plane", "ssim_x_xf", "fm_x", "fm_y", "piqe_x", "piqe_y", "ssim_x_y", "ssim_y_xf"}
    assert all(len(c) == 11 for c in t.values())
    assert t["ssim_x_xf"][6] == pytest.approx(1.0) and np.all(t["ssim_x_xf"] <= 1.0 + 1e-12)
    assert np.allclose(t["ssim_x_y"], 1.0) and np.array_equal(t["fm_x"], t["fm_y"])
    s = M.section_table(v, v, orientation="yz", step=8)
    assert s["index"].tolist() == [0, 8, 16, 24, 32, 40]
    r = M.reference_table(v, v, orientation="xz", step=16)
    assert np.allclose(r["ssim"], 1.0) and np.all(np.isinf(r["psnr"])) and np.allclose(r["rmse"], 0)


def test_engine_identity_output_and_ground_truth() -> None:
    v = _stack(focus=6)
    rois = [M.Roi(name="a", x=v, y=v.copy(), gt=v.copy(), origin=(0, 0)), M.Roi(name="b", x=v, y=v.copy(), gt=v.copy())]
    res = M.evaluate_rois(rois, section_step=16, tile=32, overlap=8)
    assert res["focal_plane"] == 6 and res["summary"]["n_rois"] == 2 and len(res["per_roi"]) == 2
    assert np.allclose(res["planes"]["ssim_x_y"], 1.0) and np.allclose(res["reference"]["xy"]["ssim_y_gt"], 1.0)
    assert res["per_roi"][0]["hellinger"] == pytest.approx(0.0, abs=1e-7)
    assert res["per_roi"][1]["origin_y"] is None
    assert M.evaluate_rois(rois[:1], focal=3)["focal_plane"] == 3
    with pytest.raises(ConfigError, match="--focal 99"):
        M.evaluate_rois(rois[:1], focal=99)
    with pytest.raises(InputError, match="no ROIs"):
        M.evaluate_rois([])
    with pytest.raises(InputError, match="on all ROIs or on none"):
        M.evaluate_rois([rois[0], M.Roi(name="c", x=v)])
    with pytest.raises(InputError, match="no output y"):
        M.evaluate_rois([M.Roi(name="d", x=v, gt=v)])


def _mean_abs_gradient(plane: np.ndarray) -> float:
    """Mean |∇I| from its definition (numpy central differences), independent of zse's implementation."""
    gy, gx = np.gradient(plane.astype(np.float64))
    return float(np.mean(np.hypot(gy, gx)))


def test_focal_plane_of_several_stacks_is_the_argmax_of_their_mean_gradient_curve() -> None:
    a = _stack(focus=3, nz=9)
    b = np.clip(200 - (200 - _stack(focus=6, nz=9).astype(int)) * 2, 0, 255).astype(np.uint8)  # twice the contrast
    curves = np.array([[_mean_abs_gradient(p) for p in v] for v in (a, b)])
    expected = int(np.argmax(curves.mean(axis=0)))
    assert M.focal_plane([a, b]) == expected and M.focal_plane(a) == int(np.argmax(curves[0])) == 3
    assert expected != 3  # the pair's plane is not the first stack's: the mean curve decides
    rois = [M.Roi(name="a", x=a), M.Roi(name="b", x=b)]
    assert M.evaluate_rois(rois, section_step=16)["focal_plane"] == expected
    with pytest.raises(InputError, match="different plane counts"):
        M.focal_plane([a, a[:5]])


def test_engine_reports_input_and_output_against_the_truth() -> None:
    gt = _stack(focus=4, nz=7)
    x = np.stack([_blur(p, 1.5) for p in gt])
    res = M.evaluate_rois([M.Roi(name="a", x=x, y=gt.copy(), gt=gt)], section_step=16, tile=32, overlap=8)
    ref = res["reference"]["xy"]
    assert np.allclose(ref["ssim_y_gt"], 1.0) and np.all(ref["ssim_x_gt"] < 0.99)
    rmse_x = [float(np.sqrt(np.mean((x[k].astype(float) - gt[k]) ** 2))) for k in range(7)]
    assert np.allclose(ref["rmse_x_gt"], rmse_x, rtol=1e-12) and np.all(ref["rmse_y_gt"] == 0)
    assert res["planes"]["grad_gt"].tolist() == res["planes"]["grad_y"].tolist()  # y is the truth
    rows = {r["key"]: r for r in res["summary"]["table"]}
    assert rows["ssim_truth"]["verdict"] == rows["rmse_truth"]["verdict"] == "better"
    assert rows["sharpness"]["direction"] == "closer to truth" and rows["sharpness"]["verdict"] == "better"
    assert rows["sharpness"]["truth"] == pytest.approx(np.mean([_mean_abs_gradient(p) for p in gt]), rel=1e-12)


def test_summary_verdicts_by_direction_and_tolerance() -> None:
    from zse.models.metrics.summary import BY_KEY, verdict

    ssim, rmse, sharp, piqe = BY_KEY["ssim_truth"], BY_KEY["rmse_truth"], BY_KEY["sharpness"], BY_KEY["piqe"]
    assert verdict(ssim, 0.50, 0.60) == ("higher is better", "better")
    assert verdict(ssim, 0.60, 0.50) == ("higher is better", "worse")
    assert verdict(ssim, 0.600, 0.604) == ("higher is better", "unchanged within ±0.005")
    assert verdict(rmse, 10.0, 9.0) == ("lower is better", "better")
    assert verdict(rmse, 10.0, 10.05)[1] == "unchanged within ±1%"  # 1% of 10 = 0.1
    assert verdict(rmse, 100.0, 100.5)[1].startswith("unchanged") and verdict(rmse, 10.0, 10.5)[1] == "worse"
    assert verdict(ssim, 0.9, 0.9, truth=1.0)[0] == "higher is better"  # comparisons with the truth keep their direction
    # image measures with a truth: nearer the truth's value is better, overshooting it by more is worse
    assert verdict(sharp, 5.0, 9.0, truth=10.0) == ("closer to truth", "better")
    assert verdict(sharp, 5.0, 16.0, truth=10.0) == ("closer to truth", "worse")
    assert verdict(sharp, 5.0, 9.0) == ("higher is better", "better")
    assert verdict(piqe, 40.0, 20.0, truth=80.0) == ("lower is better", "better")  # PIQE: never a truth target
    assert verdict(BY_KEY["psnr_truth"], float("inf"), float("inf"))[1].startswith("unchanged")
    assert verdict(BY_KEY["psnr_truth"], 30.0, float("inf"))[1] == "better"
    rows = M.summary_rows({"ssim_truth": {"input": 0.5, "output": 0.6}, "seam": {"input": float("nan"), "output": None}})
    assert [r["key"] for r in rows] == ["ssim_truth"] and rows[0]["change"] == pytest.approx(0.1)
    text = M.format_summary(rows)
    assert text.splitlines()[0].split() == ["metric", "better", "if", "input", "output", "truth", "change", "verdict"]


def test_every_summary_key_is_explained_in_docs_metrics_md() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    section = doc[doc.index("### The summary table"):]
    for m in M.SUMMARY_METRICS:
        assert f"| `{m.key}` | {m.words.split(' (')[0]}" in section, m.key
    assert "### In-focus plane (one definition)" in doc


# --- real data ----------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_rois_reproduce_paper_fm_curve_at_t150(huron_dir) -> None:
    v = load_npz_stack(npz_files(huron_dir)[0])
    assert v.shape == (29, 128, 128) and v.dtype == np.uint8
    c = input_curves(huron_dir, n=10)
    fm150 = c["fm_T150"]
    assert fm150[14] == pytest.approx(PAPER_FM_FOCUS, rel=0.15)
    assert (fm150[0] + fm150[-1]) / 2 == pytest.approx(PAPER_FM_ENDS, rel=0.15)
    assert c["fm_T1000"][14] > 4 * PAPER_FM_FOCUS  # the published T does not reproduce the values
    assert c["piqe"][14] < c["piqe"][0] and c["piqe"][14] < c["piqe"][-1]


@pytest.mark.realdata
def test_real_planes_piqe_equals_pypiqe(huron_dir) -> None:
    for f in npz_files(huron_dir)[:3]:
        v = load_npz_stack(f)
        for k in (0, 14, 28):
            img = v[k].copy()
            img[0, 0] = 255
            assert M.piqe(img) == pytest.approx(_pypiqe(img), abs=1e-9)
