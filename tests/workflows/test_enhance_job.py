"""`zse.enhance`, the one enhance job: the CLI's result from Python, every check before any write."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import zse
from zse.errors import ConfigError, OutputError
from zse.models.baselines.identity import IdentityFactory
from zse.models.baselines.unsharp import UnsharpFactory
from zse.models.registry import REGISTRY
from zse.workflows.enhance import enhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from zse_pipeline_helpers import make_input, run_cli, tree_digest  # noqa: E402

SHAPE = (3, 200, 136)


def _level0(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


def test_zse_enhance_is_the_job() -> None:
    assert zse.enhance is enhance
    with pytest.raises(AttributeError, match="no attribute 'enhancee'"):
        zse.enhancee  # noqa: B018


def test_identity_returns_the_input_exactly_and_reports_what_it_did(tmp_path: Path) -> None:
    src = make_input(tmp_path / "in.ome.zarr", SHAPE, seed=3)
    result = enhance(src, tmp_path / "out.ome.zarr", "identity", block=128, workers=0, progress=False,
                     skip_background=False)
    assert np.array_equal(_level0(tmp_path / "out.ome.zarr"), _level0(src))
    assert result.out_path == tmp_path / "out.ome.zarr" and result.model == "identity"
    assert result.blocks_total == 2 * 2 and result.blocks_done == 4 and result.tiles_skipped == 0
    assert result.wall_s > 0


def test_python_job_and_cli_write_the_same_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_input(tmp_path / "in.ome.zarr", SHAPE, seed=4)
    enhance(src, tmp_path / "py.ome.zarr", "unsharp", block=128, workers=0, progress=False)
    proc = run_cli(capsys, "enhance", src, tmp_path / "cli.ome.zarr", "--model", "unsharp", "--block", "128",
                   "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(_level0(tmp_path / "py.ome.zarr"), _level0(tmp_path / "cli.ome.zarr"))


def test_default_lattice_follows_the_models_radius(tmp_path: Path) -> None:
    """unsharp (σ 2 px) has radius ⌈4σ⌉ = 8: margin 8 and overlap 16, with no flag given."""
    src = make_input(tmp_path / "in.ome.zarr", SHAPE, seed=5)
    result = enhance(src, tmp_path / "o.ome.zarr", UnsharpFactory(), block=128, workers=0, progress=False)
    assert (result.margin, result.overlap) == (8, 16)
    result = enhance(src, tmp_path / "o2.ome.zarr", UnsharpFactory(), overlap=40, block=128, workers=0, progress=False)
    assert (result.margin, result.overlap) == (8, 40)


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"tile": 4}, ConfigError, "--tile 4"),
    ({"tile": 32, "overlap": 32}, ConfigError, "--overlap 32"),
    ({"block": 100}, ConfigError, "--block 100"),
    ({"device": "tpu"}, ConfigError, "--device"),
    ({"resume": True, "overwrite": True}, ConfigError, "--resume and --overwrite"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, kwargs: dict, error: type,
                                                             needle: str) -> None:
    src = make_input(tmp_path / "in.ome.zarr", SHAPE, seed=6)
    before = tree_digest(tmp_path)
    with pytest.raises(error, match=needle.replace("-", r"\-")):
        enhance(src, tmp_path / "out.ome.zarr", IdentityFactory(), workers=0, progress=False, **kwargs)
    assert tree_digest(tmp_path) == before


def test_existing_output_is_refused_and_kept(tmp_path: Path) -> None:
    src = make_input(tmp_path / "in.ome.zarr", SHAPE, seed=7)
    out = tmp_path / "out.ome.zarr"
    enhance(src, out, "identity", block=128, workers=0, progress=False)
    before = tree_digest(tmp_path)
    with pytest.raises(OutputError, match="--overwrite"):
        enhance(src, out, "identity", block=128, workers=0, progress=False)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("name", list(REGISTRY))
@pytest.mark.parametrize("shape_yx", [(64, 96), (512, 768), (100_000, 150_000)])
def test_default_lattice_covers_every_registry_models_radius(name: str, shape_yx: tuple[int, int]) -> None:
    """With no flag given: margin ≥ the model's receptive radius and overlap ≥ 2·margin (the condition for
    tiled = whole volume), a core left between the margins, and a tile that does not depend on the block."""
    from zse.pipeline.options import make_options
    from zse.pipeline.run import lattice_params, tile_for

    factory = REGISTRY[name][0]()
    radius = factory.margin_px or 0
    tiles = set()
    for block in (None, 256, 1024, 4096):
        options = make_options(block=block)
        overlap, margin = lattice_params(factory, options, shape_yx)
        tile = tile_for(factory, options, shape_yx)
        assert margin >= radius and overlap >= 2 * margin and tile - 2 * margin >= 8, (tile, overlap, margin, radius)
        tiles.add((tile, overlap, margin))
    assert len(tiles) == 1, tiles
