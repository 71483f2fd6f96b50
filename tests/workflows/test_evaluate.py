"""`zse evaluate`: the report end to end on tiny OME-Zarr and .npz data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from zse.models import registry
from zse.pipeline.io.write import write_volume
from zse.workflows.cli import main

NZ, NY, NX, FOCUS = 9, 96, 96, 4

EXPECTED_FILES = {
    "metrics.json", "index.html", "planes.csv", "planes.md", "sections_xz.csv", "sections_xz.md",
    "sections_yz.csv", "sections_yz.md", "per_roi.csv", "per_roi.md", "curves.png", "sections_xz.png",
    "sections_yz.png", "gradient_hist.png", "roi_000.png",
}
REFERENCE_FILES = {f"reference_{o}.{e}" for o in ("xy", "xz", "yz") for e in ("csv", "md")} | {"reference.png"}


def _truth(seed: int = 0) -> np.ndarray:
    """Sharp uint8 (Z, Y, X): dark cell-like blobs on a light (220) background, tissue only where x < 64."""
    rng = np.random.default_rng(seed)
    v = np.full((NZ, NY, NX), 220.0)
    zz, yy, xx = np.mgrid[:NZ, :NY, :NX]
    for _ in range(60):
        cz, cy, cx = rng.uniform(0, NZ), rng.uniform(0, NY), rng.uniform(0, 60)
        r = rng.uniform(2, 5)
        v[((zz - cz) / 2) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(40, 110)
    v[:, :, :64] -= 40  # stained neuropil: tissue darker than the background
    return np.clip(v + rng.normal(0, 2, v.shape), 0, 255).astype(np.uint8)


def _blurred(truth: np.ndarray) -> np.ndarray:
    """Defocus-like: plane k blurred with σ = 0.4 + 0.7·|k − FOCUS|."""
    out = np.empty_like(truth)
    for k in range(NZ):
        out[k] = np.clip(np.round(ndimage.gaussian_filter(truth[k].astype(float), 0.4 + 0.7 * abs(k - FOCUS))), 0, 255)
    return out


def _zarr(path: Path, vol: np.ndarray) -> Path:
    return write_volume(path, vol, voxel_size_um=(1, 1, 1), progress=False)


def _run(argv: list[str]) -> None:
    main([str(a) for a in argv])


def _load(report: Path) -> dict:
    return json.loads((report / "metrics.json").read_text())


def _files(report: Path) -> set[str]:
    return {p.name for p in report.iterdir()}


def test_ome_zarr_report_with_ground_truth(tmp_path: Path) -> None:
    truth = _truth()
    x = _blurred(truth)
    y = np.clip(truth.astype(int) + np.random.default_rng(1).integers(-3, 4, truth.shape), 0, 255).astype(np.uint8)
    xi, yo, gt = _zarr(tmp_path / "x.zarr", x), _zarr(tmp_path / "y.zarr", y), _zarr(tmp_path / "gt.zarr", truth)
    rep = tmp_path / "rep"
    _run(["evaluate", xi, yo, "--ground-truth", gt, "--rois", 3, "--roi-size", 32, "--report", rep,
          "--tile", 32, "--overlap", 8, "--section-step", 8])
    assert EXPECTED_FILES | REFERENCE_FILES | {"roi_001.png", "roi_002.png"} <= _files(rep)
    d = _load(rep)
    assert set(d) >= {"info", "focal_plane", "planes", "sections", "reference", "summary", "gradient_histograms",
                      "per_roi", "parameters", "files"}
    assert d["focal_plane"] == FOCUS  # the sharpest plane by construction
    for col in ("ssim_x_xf", "ssim_x_y", "ssim_y_xf", "fm_x", "fm_y", "piqe_x", "piqe_y", "dom_x", "dom_y"):
        assert len(d["planes"][col]) == NZ and all(v is not None for v in d["planes"][col])
    assert d["planes"]["ssim_x_xf"][FOCUS] == pytest.approx(1.0)
    # y is the sharp truth: sharper than x away from focus by every no-reference measure
    for k in (0, NZ - 1):
        assert d["planes"]["fm_y"][k] > d["planes"]["fm_x"][k]
        assert d["planes"]["piqe_y"][k] < d["planes"]["piqe_x"][k]
    assert d["summary"]["per_roi_mean"]["spectral_y_total"] > d["summary"]["per_roi_mean"]["spectral_x_total"]
    # full reference: y = truth + uniform noise in [-3, 3] (variance 4) → RMSE ≈ 2 (a little less: clipping)
    ref = d["reference"]["xy"]
    assert len(ref["ssim_y_gt"]) == NZ and all(1.7 < v < 2.1 for v in ref["rmse_y_gt"])
    assert all(v > 0.9 for v in ref["pearson_y_gt"]) and len(d["reference"]["xz"]["ssim_y_gt"]) == 32 // 8
    # ROIs: 3 distinct, seeded, inside the tissue (x < 64)
    origins = [(r["origin_y"], r["origin_x"]) for r in d["per_roi"]]
    assert len(set(origins)) == 3 and all(ox + 32 <= 64 + 16 for _, ox in origins)
    rep2 = tmp_path / "rep2"
    _run(["evaluate", xi, yo, "--rois", 3, "--roi-size", 32, "--report", rep2, "--section-step", 8])
    assert [(r["origin_y"], r["origin_x"]) for r in _load(rep2)["per_roi"]] == origins
    assert "NaN" not in (rep / "metrics.json").read_text()
    html = (rep / "index.html").read_text()
    assert all(f in html for f in ("curves.png", "roi_000.png", "planes.md", "reference.png"))


def test_whole_stack_identity_output_and_seams(tmp_path: Path) -> None:
    x = _blurred(_truth(2))
    xi = _zarr(tmp_path / "x.zarr", x)
    rep = tmp_path / "rep"
    _run(["evaluate", xi, xi, "--report", rep, "--section-step", 16, "--tile", 32, "--overlap", 8])
    d = _load(rep)
    assert EXPECTED_FILES <= _files(rep) and d["reference"] is None and not (REFERENCE_FILES & _files(rep))
    assert d["per_roi"][0]["origin_y"] == 0 and len(d["per_roi"]) == 1
    assert all(v == pytest.approx(1.0) for v in d["planes"]["ssim_x_y"])
    assert d["per_roi"][0]["hellinger"] == pytest.approx(0.0, abs=1e-7)
    # steps on the lattice lines (tile 32, overlap 8 → stride 24: lines at 24, 28, 32, 48, 52, 56, 72, 76, 80)
    stepped = x.astype(int)
    for p in (24, 28, 32, 48, 52, 56, 72, 76, 80):
        stepped[:, p:, :] += 12
        stepped[:, :, p:] += 12
    yo = _zarr(tmp_path / "y.zarr", np.clip(stepped - 100, 0, 255).astype(np.uint8))
    rep2 = tmp_path / "rep2"
    _run(["evaluate", xi, yo, "--report", rep2, "--section-step", 16, "--tile", 32, "--overlap", 8])
    r = _load(rep2)["per_roi"][0]
    assert 0.7 < r["seam_x"] < 1.3 and r["seam_y"] > 1.5 * r["seam_x"]


def _npz_dataset(folder: Path, n: int = 3) -> list[np.ndarray]:
    folder.mkdir()
    vols = []
    for k in range(n):
        v = _blurred(_truth(10 + k))[:, :32, :32]
        np.savez(folder / f"Btrain_{k:05d}.npz", np.moveaxis(v, 0, -1))  # (y, x, z) as the dataset stores it
        vols.append(v)
    return vols


def test_npz_dataset_with_identity_model(tmp_path: Path) -> None:
    vols = _npz_dataset(tmp_path / "trainB")
    rep = tmp_path / "rep"
    _run(["evaluate", tmp_path, "--model", "identity", "--report", rep, "--roi-size", 32, "--section-step", 8])
    d = _load(rep)
    assert EXPECTED_FILES <= _files(rep)
    assert d["info"]["layout"] == "npz" and len(d["per_roi"]) == 3 and d["info"]["model"]["name"] == "identity"
    assert d["info"]["shape_zyx"] == [NZ, 32, 32]
    assert all(v == pytest.approx(1.0) for v in d["planes"]["ssim_x_y"])
    assert d["planes"]["fm_x"] == d["planes"]["fm_y"]
    assert [r["name"] for r in d["per_roi"]] == ["Btrain_00000", "Btrain_00001", "Btrain_00002"]
    # FM at T = 1000 from its closed definition, on the stacks as written (z first after loading)
    def fm(img: np.ndarray) -> float:
        af = np.abs(np.fft.fft2(img.astype(float)))
        return np.count_nonzero(af > af.max() / 1000) / af.size

    for k in (0, FOCUS, NZ - 1):
        assert d["planes"]["fm_x"][k] == pytest.approx(np.mean([fm(v[k]) for v in vols]), abs=1e-12)


class _InvertFactory:
    name = "invert"
    checksum = "0" * 64
    margin_px = 0
    input_zyx = None
    translation_equivariant = True
    core_px = None

    def build(self, device: str):
        return lambda t: -t  # in [-1, 1]: v ↦ 255 − v for uint8


def test_npz_model_output_is_what_is_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "resolve", lambda spec: _InvertFactory())
    _npz_dataset(tmp_path / "data")
    rep = tmp_path / "rep"
    _run(["evaluate", tmp_path / "data", "--model", "whatever", "--rois", 2, "--report", rep, "--section-step", 16])
    d = _load(rep)
    assert len(d["per_roi"]) == 2
    for r in d["per_roi"]:
        # a bijection of the values keeps all information: I(x; 255 − x) = H(x) > 0, while the histograms move
        assert r["mutual_information"] > 3.0 and r["hellinger"] > 0.5
    assert max(d["planes"]["ssim_x_y"]) < 0.5


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xi = _zarr(tmp_path / "x.zarr", _blurred(_truth(3)))
    other = _zarr(tmp_path / "o.zarr", _blurred(_truth(3))[:, :64, :])
    cases = [
        (["evaluate", xi, xi, "--model", "identity", "--report", tmp_path / "r"], "not both"),
        (["evaluate", xi, other, "--report", tmp_path / "r"], "shape"),
        (["evaluate", xi, "--rois", 2, "--roi-size", 200, "--report", tmp_path / "r"], "roi-size"),
        (["evaluate", tmp_path / "missing.zarr", "--report", tmp_path / "r"], "no such file"),
        (["evaluate", xi, xi, "--focal", 99, "--report", tmp_path / "r"], "focal"),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as exc:
            _run(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("zse: error:") and needle in err and err.count("\n") == 1


@pytest.mark.realdata
def test_real_npz_dataset_report(huron_dir: Path, tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    _run(["evaluate", huron_dir / "trainB", "--model", "identity", "--rois", 4, "--report", rep, "--section-step", 32])
    d = _load(rep)
    assert d["info"]["shape_zyx"] == [29, 128, 128] and d["focal_plane"] == 14  # the paper's x_15
    fm_x = np.asarray(d["planes"]["fm_x"])
    assert fm_x[14] > 3 * fm_x[0] and fm_x[14] > 3 * fm_x[-1]
    assert all(v == pytest.approx(1.0) for v in d["planes"]["ssim_x_y"])
    assert 0.9 < d["summary"]["per_roi_mean"]["seam_x"] < 1.1


# ------------------------------------------------------------------ issue 14: the report a biologist reads

DIRECTIONS = {"higher is better", "lower is better", "closer to truth"}


def test_summary_table_first_with_directions_and_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _truth(4)
    x = _blurred(truth)
    y = np.clip(truth.astype(int) + np.random.default_rng(5).integers(-2, 3, truth.shape), 0, 255).astype(np.uint8)
    xi, yo, gt = _zarr(tmp_path / "x.zarr", x), _zarr(tmp_path / "y.zarr", y), _zarr(tmp_path / "gt.zarr", truth)
    rep = tmp_path / "rep"
    _run(["evaluate", xi, yo, "--ground-truth", gt, "--report", rep, "--section-step", 16, "--tile", 32, "--overlap", 8])
    err = capsys.readouterr().err
    rows = {r["key"]: r for r in _load(rep)["summary"]["table"]}
    assert {"sharpness", "piqe", "ssim_truth", "ssim_truth_xz", "psnr_truth", "rmse_truth", "pearson_truth"} <= set(rows)
    assert all(r["direction"] in DIRECTIONS and r["metric"] and r["verdict"] for r in rows.values())
    # y is the truth plus ±2 noise, x the truth blurred: every comparison with the truth must favour y
    for k in ("ssim_truth", "ssim_truth_xz", "ssim_truth_yz", "psnr_truth", "rmse_truth", "pearson_truth"):
        assert rows[k]["verdict"] == "better", (k, rows[k])
    assert rows["rmse_truth"]["direction"] == "lower is better" and rows["rmse_truth"]["output"] < rows["rmse_truth"]["input"]
    assert rows["sharpness"]["direction"] == "closer to truth" and rows["sharpness"]["verdict"] == "better"
    # input vs truth from its definition, on the whole stack (one ROI)
    rmse_in = float(np.sqrt(np.mean((x.astype(float) - truth.astype(float)) ** 2)))
    assert rows["rmse_truth"]["input"] == pytest.approx(rmse_in, rel=1e-12)
    # index.html: the first table after the title is the summary, with the direction column
    html = (rep / "index.html").read_text()
    first = html[html.index("<table"):html.index("</table>")]
    assert "better if" in first and "verdict" in first and "Similarity to truth, xy planes" in first
    assert html.index("<table") < html.index("<img") and "docs/metrics.md" in html
    # the same table is the first thing printed at the end of the run
    lines = err.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("metric") and "better if" in ln)
    assert any("Difference from truth (RMSE)" in ln and "better" in ln for ln in lines[head:])


def test_identity_model_output_vs_truth_equals_input_vs_truth(tmp_path: Path) -> None:
    truth = _truth(6)
    x = _blurred(truth)
    xi, gt = _zarr(tmp_path / "x.zarr", x), _zarr(tmp_path / "gt.zarr", truth)
    rep = tmp_path / "rep"
    _run(["evaluate", xi, "--model", "identity", "--ground-truth", gt, "--report", rep, "--section-step", 16])
    d = _load(rep)
    for o in ("xy", "xz", "yz"):
        ref = d["reference"][o]
        for m in ("ssim", "psnr", "rmse", "pearson"):
            assert ref[f"{m}_x_gt"] == ref[f"{m}_y_gt"], (o, m)  # the identity's output is its input, exactly
    assert ref["rmse_x_gt"][0] == pytest.approx(np.sqrt(np.mean((x[:, :, 0].astype(float) - truth[:, :, 0]) ** 2)), rel=1e-12)
    rows = {r["key"]: r for r in d["summary"]["table"]}
    for k in ("ssim_truth", "psnr_truth", "rmse_truth", "pearson_truth", "sharpness"):
        assert rows[k]["input"] == rows[k]["output"] and rows[k]["change"] == 0
        assert rows[k]["verdict"].startswith("unchanged within")
    csv_head = (rep / "reference_xy.csv").read_text().splitlines()[0].split(",")
    assert {"ssim_x_gt", "ssim_y_gt", "rmse_x_gt", "rmse_y_gt"} <= set(csv_head)


def test_input_only_summary_has_no_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xi = _zarr(tmp_path / "x.zarr", _blurred(_truth(7)))
    _run(["evaluate", xi, "--report", tmp_path / "rep", "--section-step", 16])
    rows = _load(tmp_path / "rep")["summary"]["table"]
    assert rows and all(r["output"] is None and r["verdict"] is None and r["change"] is None for r in rows)
    assert not any(r["key"].endswith("truth") for r in rows)
    assert "better if" in capsys.readouterr().err


def test_gradient_histogram_plots_no_empty_bins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    from zse.workflows import report as R

    drawn: list[tuple[np.ndarray, np.ndarray]] = []
    real_plot = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((np.asarray(args[0], dtype=float), np.asarray(args[1], dtype=float)))
        return real_plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    edges = np.linspace(0.0, 8.0, 9)  # bin centres 0.5, 1.5, …, 7.5
    hists = {"a": np.array([0.5, 0.0, 0.25, 0.0, 0.0, 0.125, 0.125, 0.0]), "b": np.array([0.0] * 7 + [1.0])}
    R.plot_histograms(tmp_path / "h.png", edges, hists)
    assert len(drawn) == 2
    (xa, ya), (xb, yb) = drawn
    assert xa.tolist() == [0.5, 2.5, 5.5, 6.5] and ya.tolist() == [0.5, 0.25, 0.125, 0.125]
    assert xb.tolist() == [7.5] and yb.tolist() == [1.0]
    # and in a report: every point drawn in gradient_hist.png is an observed (positive) density
    drawn.clear()
    monkeypatch.setattr(R, "plot_curves", lambda path, *a, **k: path)  # only the histogram figure is watched
    xi = _zarr(tmp_path / "x.zarr", _blurred(_truth(8)))
    _run(["evaluate", xi, xi, "--report", tmp_path / "rep", "--section-step", 16])
    gh = _load(tmp_path / "rep")["gradient_histograms"]
    assert any(v == 0 for v in gh["x (all planes)"])  # the data has empty bins …
    assert drawn and all(np.all(y > 0) for _, y in drawn)  # … and none is drawn
    assert sum(len(y) for _, y in drawn[:1]) == sum(v > 0 for v in gh["x (all planes)"])


def test_orthoviews_stretch_z_to_the_voxel_aspect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zse.workflows import report as R

    seen: list[dict] = []

    def spy(path, volumes, focal, **kw):
        seen.append({"shapes": [np.asarray(v).shape for v in volumes.values()], "focal": focal, **kw})
        return path

    monkeypatch.setattr(R, "plot_orthoview_columns", spy)
    x = _blurred(_truth(9))
    xi = write_volume(tmp_path / "x.zarr", x, voxel_size_um=(3.0, 0.5, 0.5), progress=False)
    _run(["evaluate", xi, xi, "--report", tmp_path / "rep", "--section-step", 16])
    assert len(seen) == 1 and seen[0]["z_aspect"] == pytest.approx(6.0)  # 3 µm planes over 0.5 µm pixels
    assert seen[0]["shapes"] == [(NZ, NY, NX)] * 2 and seen[0]["focal"] == _load(tmp_path / "rep")["focal_plane"]


def test_demo_and_evaluate_report_the_same_focal_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zse.models import metrics as M
    from zse.pipeline.io.ngff import open_image
    from zse.workflows import report as R

    shown: list[int] = []
    real = R.plot_orthoview_columns

    def spy(path, volumes, focal, **kw):
        shown.append(focal)
        return real(path, volumes, focal, **kw)

    monkeypatch.setattr(R, "plot_orthoview_columns", spy)
    out = tmp_path / "demo"
    _run(["demo", "--out", out, "--shape", "9,96,128", "--model", "identity"])
    monkeypatch.setattr(R, "plot_orthoview_columns", real)
    rep = tmp_path / "rep"
    _run(["evaluate", out / "slide.ome.zarr", out / "enhanced.ome.zarr", "--report", rep, "--section-step", 32])
    x = np.asarray(open_image(out / "slide.ome.zarr").levels[0][:])
    # the sharpest plane by mean |∇I| from its definition (central differences), not from zse
    grad = [float(np.mean(np.hypot(*np.gradient(p.astype(np.float64))))) for p in x]
    sharpest = int(np.argmax(grad))
    assert shown == [sharpest] and _load(rep)["focal_plane"] == sharpest == M.focal_plane(x)
    assert sharpest != x.shape[0] // 2  # on this slide (seed 0) the middle plane is not the sharpest: the test can fail
