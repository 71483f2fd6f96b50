"""Reading and writing a slide never imports torch (zse.pipeline.io is torch-free)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_reading_and_writing_a_slide_does_not_import_torch(tmp_path: Path) -> None:
    code = f"""
import sys
import numpy as np
from zse.pipeline.io.write import write_volume
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io import tiff, chunks  # noqa: F401
vol = (np.arange(3 * 40 * 48) % 251).astype(np.uint8).reshape(3, 40, 48)
write_volume({str(tmp_path / 'a.ome.zarr')!r}, vol, voxel_size_um=(1.0, 0.5, 0.5), progress=False)
img = open_image({str(tmp_path / 'a.ome.zarr')!r})
assert np.array_equal(np.asarray(img.levels[0][:]), vol)
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
