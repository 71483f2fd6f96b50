"""z super-resolution through the pipeline: a model with `scale_zyx` = (sz, 1, 1) maps a tile (Z, Y, X) to
(Z·sz, Y, X) and the output has Z·sz planes at dz/sz (zse.pipeline.zscale).

Oracles (none computed by the code under test):
- the placement convention, from its formula and from torch's own linear up-sampling (align_corners=False);
- an equivariant scaling model (z up-sampling, then 3×3×3 convolutions): tiled, blended, block-wise =
  the model applied once to the whole reflect-padded volume;
- a plane-repeating model gives back exactly the input with each plane repeated sz times, also where
  background is copied through (so copy-through repeats planes too);
- the block size never changes the output (equivariant or not);
- a SIGKILLed run of a scaling model resumes bit-identical; a resume with another scale is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from test_oracle import ConvFactory, random_conv_net, whole_volume_reference
from test_robustness import _mark_interrupted, _markers, _wait_until_held
from zse_pipeline_helpers import (
    assert_one_line_error,
    assert_same_levels,
    make_input,
    read_levels,
    run_cli,
    zse_env,
)

from zse.errors import ConfigError, ModelError
from zse.pipeline.block import predict_block, read_region
from zse.pipeline.geometry import Lattice, make_blocks
from zse.pipeline.infer import output_scale
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.plan import read_run_record
from zse.pipeline.pyramid import downsample_mean_yx
from zse.pipeline.run import run_enhance
from zse.pipeline.zscale import output_z_axis


class ZUp(torch.nn.Module):
    """(N, C, Z, Y, X) → (N, C, Z·s, Y, X): z-linear (torch's align_corners=False: output plane j at input
    coordinate (j + 0.5)/s − 0.5, edges clamped) or z-nearest (each plane repeated s times); y, x untouched."""

    def __init__(self, scale: int, mode: str) -> None:
        super().__init__()
        self.scale, self.mode = scale, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return x.repeat_interleave(self.scale, dim=2)
        z, y, w = x.shape[-3:]
        return torch.nn.functional.interpolate(x, size=(z * self.scale, y, w), mode="trilinear", align_corners=False)


def scaled_net(seed: int, scale: int, mode: str = "linear") -> torch.nn.Module:
    """z up-sampling then two random 3×3×3 convolutions (receptive radius 2 in y, x): translation-equivariant."""
    return torch.nn.Sequential(ZUp(scale, mode), random_conv_net(seed, 2)).eval()


@dataclass(frozen=True)
class ScaledConvFactory:
    seed: int = 0
    scale: int = 2
    mode: str = "linear"
    margin_px: int | None = 2
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None
    name: str = "scaled-conv"
    checksum: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", hashlib.sha256(f"zconv{self.seed}-{self.scale}-{self.mode}".encode()).hexdigest())

    @property
    def scale_zyx(self) -> tuple[int, int, int]:
        return (self.scale, 1, 1)

    def build(self, device: str):
        net = scaled_net(self.seed, self.scale, self.mode).to(device)
        return lambda x: net(x)


@dataclass(frozen=True)
class RepeatFactory:
    """Identity-like: each plane repeated `scale` times."""

    scale: int = 2
    name: str = "repeat-z"
    margin_px: int | None = 0
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None
    checksum: str = field(default="")
    scale_zyx: tuple[int, int, int] = (2, 1, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", hashlib.sha256(f"repeat{self.scale}".encode()).hexdigest())
        object.__setattr__(self, "scale_zyx", (self.scale, 1, 1))

    def build(self, device: str):
        return lambda x: x.repeat_interleave(self.scale, dim=2)


@dataclass(frozen=True)
class ScaledPerTileNormFactory:
    """Not translation-equivariant (each tile's own mean and std), z repeated twice."""

    name: str = "scaled-per-tile-norm"
    margin_px: int | None = None
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = False
    core_px: int | None = None
    checksum: str = hashlib.sha256(b"scaled-per-tile-norm").hexdigest()
    scale_zyx: tuple[int, int, int] = (2, 1, 1)

    def build(self, device: str):
        def f(x: torch.Tensor) -> torch.Tensor:
            x = x.repeat_interleave(2, dim=2)
            mu = x.mean(dim=(2, 3, 4), keepdim=True)
            return torch.tanh((x - mu) / (x.std(dim=(2, 3, 4), keepdim=True) + 1e-3))

        return f


def _slide(tmp_path: Path, shape, dtype=np.uint8, axes="zyx", seed=0, name="in.ome.zarr") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    vol = rng.integers(0, np.iinfo(dtype).max, shape, dtype=np.int64, endpoint=True).astype(dtype)
    path = write_volume(tmp_path / name, vol, axes=axes, voxel_size_um=(1.5, 0.5, 0.5), translation_um=(2, 3, 4), progress=False)
    return path, vol


def _tissue_slide(tmp_path: Path, shape=(3, 256, 256), dtype=np.uint8) -> tuple[Path, np.ndarray]:
    """Light background (varying from plane to plane, as copy-through must keep) with one dark textured patch:
    most blocks and tiles are background."""
    rng = np.random.default_rng(4)
    top = np.iinfo(dtype).max
    vol = rng.integers(int(0.88 * top), int(0.9 * top), shape, endpoint=True).astype(dtype)
    vol[..., 40:120, 150:230] = rng.integers(0, int(0.6 * top), (*shape[:-2], 80, 80))
    return write_volume(tmp_path / "tissue.ome.zarr", vol, axes="zyx" if len(shape) == 3 else "czyx", progress=False), vol


# ------------------------------------------------------------------------------------------ convention


@pytest.mark.parametrize("sz", [1, 2, 3, 4])
def test_output_planes_lie_where_the_voxel_shuffle_convention_puts_them(sz: int) -> None:
    z, dz, z0 = 5, 1.5, 2.0
    n, dz_out, t_out = output_z_axis(z, dz, z0, sz)
    assert n == z * sz and dz_out == pytest.approx(dz / sz)
    centres = t_out + dz_out * np.arange(n)  # where an OME reader puts output plane j
    j = np.arange(n)
    np.testing.assert_allclose(centres, z0 + dz * ((j + 0.5) / sz - 0.5), atol=1e-12)
    # the sz planes of input voxel k are centred, on average, on that voxel's centre z0 + dz·k
    np.testing.assert_allclose(centres.reshape(z, sz).mean(axis=1), z0 + dz * np.arange(z), atol=1e-12)
    # torch's linear up-sampling of the input plane positions lands on the same positions (inside the
    # volume; at the two ends it clamps), so a model trained with it or a voxel shuffle matches the metadata
    pos = torch.tensor(z0 + dz * np.arange(z), dtype=torch.float64)[None, None]
    up = torch.nn.functional.interpolate(pos, scale_factor=sz, mode="linear", align_corners=False)[0, 0].numpy()
    inner = slice(sz // 2, n - sz // 2)
    np.testing.assert_allclose(up[inner], centres[inner], atol=1e-9)


def test_output_scale_reads_the_factory() -> None:
    assert output_scale(ConvFactory()) == 1  # no scale_zyx: 1
    assert output_scale(RepeatFactory(scale=3)) == 3
    for bad, needle in [((1, 2, 2), "lateral"), ((2, 1, 2), "lateral"), ((0, 1, 1), "invalid"), ((2, 1), "invalid"),
                        ((1.5, 1, 1), "invalid")]:
        f = RepeatFactory()
        object.__setattr__(f, "scale_zyx", bad)
        with pytest.raises(ConfigError, match=needle) as err:
            output_scale(f)
        assert "\n" not in str(err.value)


def test_lateral_scale_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path, _ = _slide(tmp_path, (3, 40, 40))
    f = RepeatFactory()
    object.__setattr__(f, "scale_zyx", (1, 2, 2))
    with pytest.raises(ConfigError, match="z super-resolution only"):
        run_enhance(open_image(path), tmp_path / "out.ome.zarr", f, make_options(skip_background=False), progress=False)
    assert not (tmp_path / "out.ome.zarr").exists()


def test_model_check_uses_the_scale(tmp_path: Path) -> None:
    """A model that returns another plane count than its declared scale is refused before OUT is written."""
    path, _ = _slide(tmp_path, (3, 40, 40))
    opts = make_options(tile=32, overlap=8, skip_background=False)
    run_enhance(open_image(path), tmp_path / "ok.ome.zarr", RepeatFactory(scale=2), opts, progress=False)
    undeclared = ConvFactory()
    object.__setattr__(undeclared, "build", lambda device: (lambda x: x.repeat_interleave(2, dim=2)))
    object.__setattr__(undeclared, "checksum", "undeclared")
    wrong = RepeatFactory(scale=3)
    object.__setattr__(wrong, "scale_zyx", (2, 1, 1))  # declares 2, returns 3
    for f, needle in [(undeclared, "sz = 1"), (wrong, "sz = 2")]:
        with pytest.raises(ModelError, match=needle):
            run_enhance(open_image(path), tmp_path / "bad.ome.zarr", f, opts, progress=False)
        assert not (tmp_path / "bad.ome.zarr").exists()


# ------------------------------------------------------------------------------------------ oracles


@pytest.mark.parametrize(("shape", "tile", "overlap", "margin", "block", "sz", "mode"), [
    ((5, 70, 90), 32, 8, 4, 48, 2, "linear"),
    ((4, 33, 61), 16, 6, 3, 16, 3, "nearest"),
    ((3, 100, 40), 32, 12, 2, 64, 2, "nearest"),
])
def test_tiled_scaled_float_output_equals_whole_volume_model(shape, tile, overlap, margin, block, sz, mode) -> None:
    rng = np.random.default_rng(1)
    vol = rng.uniform(-1, 1, shape).astype(np.float32)
    net = scaled_net(seed=3, scale=sz, mode=mode)
    ref = whole_volume_reference(vol, net, pad=8)
    assert ref.shape == (shape[0] * sz, *shape[1:])
    lat = Lattice(shape_yx=shape[1:], tile=tile, overlap=overlap, margin=margin)
    out = np.full(ref.shape, np.nan, dtype=np.float32)
    src = zarr.create_array(store={}, shape=shape, dtype="float32", chunks=(shape[0], 16, 16))
    src[...] = vol
    for b in make_blocks(lat, block):
        data = torch.from_numpy(read_region(src, b.read_box))
        with torch.no_grad():
            values, covered = predict_block(data, b.read_box, b.write_box, lat, b.tiles, net, batch_size=3, scale_z=sz)
        assert bool(covered.all())
        out[(slice(None), *b.write_box.slices())] = values.numpy()
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_scaled_run_equals_whole_volume_model_and_carries_the_z_metadata(tmp_path: Path, capsys) -> None:
    """uint8 run (two pyramid levels, level 1 written from the blocks in memory): within 1 LSB of the
    whole-volume model; OME metadata Z·2 planes of dz/2 placed by the convention; `zse info` shows them."""
    path, vol = _slide(tmp_path, (3, 1100, 40), seed=2)
    opts = make_options(tile=32, overlap=8, margin=4, block=512, skip_background=False, batch_size=4)
    out = tmp_path / "out.ome.zarr"
    run_enhance(open_image(path), out, ScaledConvFactory(seed=5, scale=2), opts, progress=False)
    levels = read_levels(out)
    assert [lv.shape for lv in levels] == [(6, 1100, 40), (6, 550, 20)]
    ref_f = whole_volume_reference(vol.astype(np.float32) / 127.5 - 1.0, scaled_net(5, 2), pad=8)
    ref = np.clip(np.round((ref_f + 1.0) * 127.5), 0, 255)
    assert np.abs(levels[0].astype(int) - ref.astype(int)).max() <= 1
    np.testing.assert_array_equal(levels[1], downsample_mean_yx(levels[0]))
    img = open_image(out)
    assert img.meta.shape == (6, 1100, 40)
    assert img.meta.voxel_size_um == pytest.approx((0.75, 0.5, 0.5))
    assert img.meta.translation_um == pytest.approx((2.0 + 1.5 * (0.25 - 0.5), 3.0, 4.0))
    ms = dict(zarr.open_group(str(out), mode="r").attrs)["ome"]["multiscales"][0]
    for ds in ms["datasets"]:  # every level keeps the z scale and translation (y-x down-sampling only)
        scale, trans = (t[k] for t, k in zip(ds["coordinateTransformations"], ("scale", "translation"), strict=True))
        assert scale[0] == pytest.approx(0.75) and trans[0] == pytest.approx(1.625)
    assert read_run_record(out)["model"]["scale_zyx"] == [2, 1, 1]
    info = run_cli(capsys, "info", out)
    assert info.returncode == 0, info.stderr
    assert "shape: (6, 1100, 40)" in info.stdout and "(0.75, 0.5, 0.5)" in info.stdout, info.stdout
    assert "z super-resolution: × 2" in info.stdout, info.stdout


@pytest.mark.parametrize(("dtype", "axes", "shape", "sz"), [
    (np.uint8, "zyx", (4, 90, 130), 2),
    (np.uint16, "zyx", (3, 70, 50), 3),
    (np.uint8, "czyx", (2, 3, 60, 75), 2),
])
def test_plane_repeating_model_gives_back_the_repeated_input(tmp_path: Path, dtype, axes, shape, sz) -> None:
    path, vol = _slide(tmp_path, shape, dtype=dtype, axes=axes)
    opts = make_options(tile=32, overlap=8, block=32, skip_background=False)
    run_enhance(open_image(path), tmp_path / "out.ome.zarr", RepeatFactory(scale=sz), opts, progress=False)
    out = open_image(tmp_path / "out.ome.zarr")
    assert out.meta.axes == axes and out.meta.dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(out.levels[0][...], np.repeat(vol, sz, axis=-3))


@pytest.mark.parametrize("shape", [(3, 256, 256), (2, 3, 256, 256)], ids=["zyx", "czyx"])
def test_background_copy_through_repeats_planes(tmp_path: Path, shape) -> None:
    """Skipped blocks and background pixels of run blocks are copied through with each plane repeated:
    with the plane-repeating model the whole output is the repeated input, and background was skipped."""
    path, vol = _tissue_slide(tmp_path, shape)
    opts = make_options(tile=32, overlap=8, block=64)
    res = run_enhance(open_image(path), tmp_path / "out.ome.zarr", RepeatFactory(scale=2), opts, progress=False)
    assert res.blocks_skipped > 0 and res.blocks_done > 0 and res.tiles_skipped > 0
    got = zarr.open_array(str(tmp_path / "out.ome.zarr" / "0"))[...]
    np.testing.assert_array_equal(got, np.repeat(vol, 2, axis=-3))


@pytest.mark.parametrize("factory", [ScaledConvFactory(seed=7, scale=2), ScaledPerTileNormFactory()],
                         ids=["equivariant", "per-tile-norm"])
def test_block_size_does_not_change_scaled_output(tmp_path: Path, factory) -> None:
    path, vol = _tissue_slide(tmp_path)
    outs = []
    for block in (64, 128):
        opts = make_options(tile=32, overlap=12, margin=4, block=block)
        run_enhance(open_image(path), tmp_path / f"b{block}.ome.zarr", factory, opts, progress=False)
        outs.append(zarr.open_array(str(tmp_path / f"b{block}.ome.zarr" / "0"))[...])
    assert outs[0].shape == (6, 256, 256)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0][:, :, :64], np.repeat(vol[:, :, :64], 2, axis=0))  # background copied
    assert not np.array_equal(outs[0][:, 40:120, 150:230], np.repeat(vol[:, 40:120, 150:230], 2, axis=0))


def test_scale_one_declared_is_the_same_run_as_none(tmp_path: Path) -> None:
    """scale_zyx = (1, 1, 1) changes nothing: same bytes, same run record (no scale entry) as no attribute."""
    path, _ = _slide(tmp_path, (3, 60, 60))
    opts = make_options(tile=32, overlap=8, margin=4, block=32, skip_background=False)
    plain, declared = ConvFactory(seed=2), ConvFactory(seed=2)
    object.__setattr__(declared, "scale_zyx", (1, 1, 1))
    for f, name in [(plain, "a"), (declared, "b")]:
        run_enhance(open_image(path), tmp_path / f"{name}.ome.zarr", f, opts, progress=False)
    assert_same_levels(tmp_path / "a.ome.zarr", tmp_path / "b.ome.zarr")
    rec_a, rec_b = read_run_record(tmp_path / "a.ome.zarr"), read_run_record(tmp_path / "b.ome.zarr")
    assert rec_a["model"] == rec_b["model"] and "scale_zyx" not in rec_a["model"]
    assert open_image(tmp_path / "a.ome.zarr").meta.voxel_size_um == (1.5, 0.5, 0.5)


# ------------------------------------------------------------------------------------------ kill and resume

SCALEMODELS_SRC = textwrap.dedent('''
    """z-scaling test models (generated by tests/pipeline/test_scale.py): the held test conv net of
    zse_testmodels after a z-linear up-sampling."""
    from __future__ import annotations

    import hashlib
    from dataclasses import dataclass

    import torch
    import zse_testmodels


    @dataclass(frozen=True)
    class ScaledConvFactory(zse_testmodels.ConvFactory):
        scale: int = 2

        @property
        def name(self) -> str:
            return f"test-zconv-{self.seed}-x{self.scale}"

        @property
        def checksum(self) -> str:
            return hashlib.sha256(f"zse-test-zconv-v1-seed{self.seed}-x{self.scale}".encode()).hexdigest()

        @property
        def scale_zyx(self) -> tuple[int, int, int]:
            return (self.scale, 1, 1)

        def build(self, device: str):
            inner = super().build(device)  # holds on the gate as zse_testmodels.ConvFactory does

            def predict(x: torch.Tensor) -> torch.Tensor:
                z, y, w = x.shape[-3:]
                up = torch.nn.functional.interpolate(x, size=(z * self.scale, y, w), mode="trilinear", align_corners=False)
                return inner(up)

            return predict


    def factories() -> dict:
        return {"test-zconv": lambda: ScaledConvFactory(seed=0, scale=2),
                "test-zconv3": lambda: ScaledConvFactory(seed=0, scale=3)}


    def register() -> None:
        from zse.models import registry

        for name, make in factories().items():
            registry.REGISTRY[name] = (make, "z-scaling test conv net")
''')

SCALE_SHAPE = (3, 1088, 64)  # 17 blocks of 64 × 64, two pyramid levels (1088 > 1024)
SCALE_OPTS = ("--block", "64", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")


@pytest.fixture(scope="module")
def scalemodels(testmodels_dir: Path):
    import importlib

    (testmodels_dir / "zse_scalemodels.py").write_text(SCALEMODELS_SRC)
    return importlib.import_module("zse_scalemodels")


@pytest.fixture
def zse_scale_inproc(scalemodels, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from zse.models import registry

    for name, make in scalemodels.factories().items():
        monkeypatch.setitem(registry.REGISTRY, name, (make, "test"))
    monkeypatch.delenv("ZSE_TEST_HOLD_AFTER", raising=False)
    return lambda *args: run_cli(capsys, *args)


@pytest.fixture(scope="module")
def scale_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_input(tmp_path_factory.mktemp("zscale") / "in.zarr", SCALE_SHAPE, seed=3)


@pytest.fixture(scope="module")
def killed_scaled_run(scale_input: Path, scalemodels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `zse enhance --model test-zconv` process SIGKILLed once its first block was marked done (held there)."""
    d = tmp_path_factory.mktemp("zkilled")
    out, gate = d / "out.zarr", d / "gate"
    launcher = "import sys, zse_scalemodels; zse_scalemodels.register(); from zse.workflows.cli import main; main(sys.argv[1:])"
    cmd = [sys.executable, "-c", launcher, "enhance", str(scale_input), str(out), "--model", "test-zconv", *SCALE_OPTS]
    env = zse_env(ZSE_TEST_HOLD_AFTER=str(out / ".zse" / "done" / "L0"), ZSE_TEST_GATE=str(gate))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_until_held(out, gate, proc)
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    n = len(_markers(out))
    assert 1 <= n < 17, f"killed with {n} of 17 blocks done: the test did not interrupt the run"
    return out


def test_killed_scaled_run_resumes_bit_identical(killed_scaled_run: Path, scale_input: Path, tmp_path: Path,
                                                 zse_scale_inproc) -> None:
    ref = tmp_path / "ref.zarr"
    proc = zse_scale_inproc("enhance", scale_input, ref, "--model", "test-zconv", *SCALE_OPTS)
    assert proc.returncode == 0, proc.stderr
    assert [lv.shape for lv in read_levels(ref)] == [(6, 1088, 64), (6, 544, 32)]
    out = tmp_path / "out.zarr"
    shutil.copytree(killed_scaled_run, out)
    done_before = len(_markers(out))
    proc = zse_scale_inproc("enhance", scale_input, out, "--model", "test-zconv", *SCALE_OPTS, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"{done_before} already done" in proc.stderr, proc.stderr
    assert_same_levels(out, ref)
    # a simulated crash in the pyramid (level-1 regions unmarked and scribbled over) resumes too
    g = zarr.open_group(str(out), mode="r+")
    for r in (0, 5):
        (out / ".zse" / "done" / "L1" / f"{r}_0").unlink()
        g["1"][..., r * 64 : (r + 1) * 64, :] = 7
    _mark_interrupted(g)
    proc = zse_scale_inproc("enhance", scale_input, out, "--model", "test-zconv", *SCALE_OPTS, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "pyramid tasks: 2" in proc.stderr, proc.stderr
    assert_same_levels(out, ref)


@pytest.mark.parametrize("model", ["test-zconv3", "test-conv"])
def test_resume_with_another_scale_is_refused(killed_scaled_run: Path, scale_input: Path, tmp_path: Path, model: str,
                                              zse_scale_inproc, testmodels, monkeypatch: pytest.MonkeyPatch) -> None:
    from zse.models import registry

    monkeypatch.setitem(registry.REGISTRY, "test-conv", (lambda: testmodels.ConvFactory(seed=0), "test"))
    out = tmp_path / "out.zarr"
    shutil.copytree(killed_scaled_run, out)
    proc = zse_scale_inproc("enhance", scale_input, out, "--model", model, *SCALE_OPTS, "--resume")
    line = assert_one_line_error(proc, "--resume", "model.scale_zyx: was [2, 1, 1]")
    assert str(out) in line
