"""`zse synth`: the command writes the z-scan and the truth of `zse.models.simulator.synthesize`."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from zse.errors import ConfigError
from zse.models import simulator as S
from zse.pipeline.io.ngff import open_image
from zse.workflows.cli import cli


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_cli_writes_xscan_and_ground_truth(tmp_path, ngff) -> None:
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
    assert meta["synth"]["seed"] == 7 and meta["synth"]["kind"] == "z-scan"
    gmeta = open_image(gt).attrs.get("zse", {})["synth"]
    assert gmeta["kind"] == "ground-truth" and gmeta["psf"]["model"].startswith("confocal-optical-section")


def test_cli_bad_shape_is_a_config_error(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["synth", str(tmp_path / "x.zarr"), "--shape", "2,16,16"])
    assert isinstance(res.exception, ConfigError)
    assert "2,16,16" in res.exception.message and "Z >= 3" in res.exception.message
    assert not (tmp_path / "x.zarr").exists()
