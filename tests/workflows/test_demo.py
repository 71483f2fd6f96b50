"""`zse demo` end to end on a tiny slide: synth → enhance (bundled model, local Dask cluster) → pyramid → picture."""

from __future__ import annotations

from pathlib import Path

import zarr
from ome_zarr_models.v05.image import Image

from zse.models.registry import best_model
from zse.workflows.cli import main


def test_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--shape", "9,96,128"])
    except SystemExit as exc:  # main() exits only on errors
        raise AssertionError(f"zse demo exited with {exc.code}") from None
    err = capsys.readouterr().err
    assert best_model() in err
    for name in ("slide.ome.zarr", "truth.ome.zarr", "enhanced.ome.zarr"):
        group = zarr.open_group(str(out / name), mode="r")
        Image.from_zarr(group)
    attrs = dict(zarr.open_group(str(out / "enhanced.ome.zarr"), mode="r").attrs)
    assert attrs["zse"]["status"] == "complete"
    assert attrs["zse"]["provenance"]["model"]["name"] == best_model()
    for name in ("orthoview.png", "planes.png"):
        png = out / name
        assert png.is_file() and png.stat().st_size > 10_000
    # both SSIMs to the optical-section truth are printed, input -> output
    line = next(ln for ln in err.splitlines() if ln.startswith("SSIM to the optical-section truth"))
    assert "in-slice planes" in line and "xz sections" in line and "->" in line
