"""The pipeline on the real Huron z-scan ROIs, laid out as a mosaic slide (skips where ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zse.models.baselines.identity import IdentityFactory
from zse.models.npz import load_npz_stack
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.plan import tissue_map
from zse.pipeline.run import run_enhance


def real_mosaic(huron_dir: Path, rows: int, cols: int) -> np.ndarray:
    """ROIs (y, x, z) from trainB placed side by side: uint8 (29, 128·rows, 128·cols)."""
    files = sorted((huron_dir / "trainB").glob("*.npz"))[: rows * cols]
    stacks = [load_npz_stack(f) for f in files]
    grid = [np.concatenate(stacks[r * cols : (r + 1) * cols], axis=2) for r in range(rows)]
    return np.concatenate(grid, axis=1)


@pytest.mark.realdata
def test_real_rois_identity_exact_and_tissue_found(tmp_path: Path, huron_dir: Path) -> None:
    vol = real_mosaic(huron_dir, 2, 3)
    assert vol.shape == (29, 256, 384) and vol.dtype == np.uint8
    path = write_volume(tmp_path / "real.ome.zarr", vol, progress=False)
    src = open_image(path)
    tmap = tissue_map(src)
    assert tmap.mask.mean() > 0.5, "the real ROIs are tissue; most of the mosaic must be detected as such"
    summary = run_enhance(src, tmp_path / "out.ome.zarr", IdentityFactory(), make_options(block=128), progress=False)
    assert summary.blocks_done > 0
    np.testing.assert_array_equal(open_image(tmp_path / "out.ome.zarr").levels[0][...], vol)
