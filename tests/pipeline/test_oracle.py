"""Oracle tests of tiled inference.

- A translation-equivariant model (random-weight 3D convolutions) whose receptive radius fits in the
  margin: the tiled, blended, block-wise output equals the model applied once to the whole
  reflect-padded volume (≤ 1e-5 in float32, ≤ 1 LSB in uint8).
- `identity` gives back the input exactly (uint8 and uint16, zyx and czyx).
- The output does not depend on the block size, even for a model that is NOT equivariant (per-tile
  normalisation), because the tile lattice is global.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from zse.models.baselines.identity import IdentityFactory
from zse.pipeline.block import predict_block, read_region
from zse.pipeline.geometry import Lattice, make_blocks
from zse.pipeline.io.ngff import open_image
from zse.pipeline.io.write import write_volume
from zse.pipeline.options import make_options
from zse.pipeline.run import run_enhance


def random_conv_net(seed: int, radius_yx: int = 2) -> torch.nn.Module:
    """`radius_yx` layers of 3×3×3 convolutions (zero padding), tanh at the end: receptive radius = radius_yx."""
    g = torch.Generator().manual_seed(seed)
    layers: list[torch.nn.Module] = []
    ch = [1] + [4] * (radius_yx - 1) + [1]
    for a, b in zip(ch[:-1], ch[1:], strict=True):
        conv = torch.nn.Conv3d(a, b, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        layers += [conv, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers).eval()


@dataclass(frozen=True)
class ConvFactory:
    seed: int = 0
    radius: int = 2
    name: str = "random-conv"
    margin_px: int | None = 2
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None
    checksum: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "checksum", hashlib.sha256(f"conv{self.seed}-{self.radius}".encode()).hexdigest())

    def build(self, device: str):
        net = random_conv_net(self.seed, self.radius).to(device)
        return lambda x: net(x)


@dataclass(frozen=True)
class PerTileNormFactory:
    """Not translation-equivariant: output depends on each tile's own mean and std."""

    name: str = "per-tile-norm"
    margin_px: int | None = None
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = False
    core_px: int | None = None
    checksum: str = hashlib.sha256(b"per-tile-norm").hexdigest()

    def build(self, device: str):
        def f(x: torch.Tensor) -> torch.Tensor:
            mu = x.mean(dim=(2, 3, 4), keepdim=True)
            sd = x.std(dim=(2, 3, 4), keepdim=True) + 1e-3
            return torch.tanh((x - mu) / sd)

        return f


def whole_volume_reference(volume_zyx: np.ndarray, net: torch.nn.Module, pad: int) -> np.ndarray:
    v = torch.from_numpy(volume_zyx)[None, None]
    vp = torch.nn.functional.pad(v, (pad, pad, pad, pad, 0, 0), mode="reflect")
    with torch.no_grad():
        out = net(vp)[0, 0]
    return out[:, pad:-pad, pad:-pad].numpy()


@pytest.mark.parametrize(("shape", "tile", "overlap", "margin", "block"), [
    ((5, 70, 90), 32, 8, 4, 48),
    ((4, 33, 61), 16, 6, 3, 16),
    ((6, 100, 40), 32, 12, 2, 64),
])
def test_tiled_float_output_equals_whole_volume_model(shape, tile, overlap, margin, block) -> None:
    rng = np.random.default_rng(1)
    vol = rng.uniform(-1, 1, shape).astype(np.float32)
    net = random_conv_net(seed=3, radius_yx=2)
    ref = whole_volume_reference(vol, net, pad=8)
    lat = Lattice(shape_yx=shape[1:], tile=tile, overlap=overlap, margin=margin)
    out = np.full(shape, np.nan, dtype=np.float32)
    src = zarr.create_array(store={}, shape=shape, dtype="float32", chunks=(shape[0], 16, 16))
    src[...] = vol
    for b in make_blocks(lat, block):
        data = torch.from_numpy(read_region(src, b.read_box))
        with torch.no_grad():
            values, covered = predict_block(data, b.read_box, b.write_box, lat, b.tiles, net, batch_size=3)
        assert bool(covered.all())
        out[(slice(None), *b.write_box.slices())] = values.numpy()
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_margin_smaller_than_receptive_field_is_detected() -> None:
    """Sanity of the oracle itself: with margin 0 < radius the tiled output differs from the reference."""
    rng = np.random.default_rng(2)
    shape = (4, 64, 64)
    vol = rng.uniform(-1, 1, shape).astype(np.float32)
    net = random_conv_net(seed=3, radius_yx=3)
    ref = whole_volume_reference(vol, net, pad=8)
    lat = Lattice(shape_yx=shape[1:], tile=16, overlap=0, margin=0)
    src = zarr.create_array(store={}, shape=shape, dtype="float32", chunks=shape)
    src[...] = vol
    (b,) = make_blocks(lat, 64)
    values, _ = predict_block(torch.from_numpy(read_region(src, b.read_box)), b.read_box, b.write_box, lat, b.tiles, net, 4)
    assert np.abs(values.detach().numpy() - ref).max() > 1e-3


def _slide(tmp_path: Path, shape=(5, 150, 170), dtype=np.uint8, axes="zyx", seed=0, name="in.ome.zarr") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    vol = rng.integers(0, top, shape, dtype=np.int64, endpoint=True).astype(dtype)
    path = write_volume(tmp_path / name, vol, axes=axes, voxel_size_um=(1.5, 0.5, 0.5), translation_um=(2, 3, 4), progress=False)
    return path, vol


def test_tiled_uint8_run_within_one_lsb_of_whole_volume_model(tmp_path: Path) -> None:
    path, vol = _slide(tmp_path, shape=(5, 150, 170))
    opts = make_options(tile=32, overlap=8, margin=4, block=64, skip_background=False, batch_size=4)
    run_enhance(open_image(path), tmp_path / "out.ome.zarr", ConvFactory(seed=5), opts, progress=False)
    got = zarr.open_array(str(tmp_path / "out.ome.zarr" / "0"))[...]
    ref_f = whole_volume_reference(vol.astype(np.float32) / 127.5 - 1.0, random_conv_net(5, 2), pad=8)
    ref = np.clip(np.round((ref_f + 1.0) * 127.5), 0, 255)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize(("dtype", "axes", "shape"), [
    (np.uint8, "zyx", (4, 90, 130)),
    (np.uint16, "zyx", (3, 70, 50)),
    (np.uint8, "czyx", (2, 3, 60, 75)),
])
def test_identity_gives_back_input_exactly(tmp_path: Path, dtype, axes, shape) -> None:
    path, vol = _slide(tmp_path, shape=shape, dtype=dtype, axes=axes)
    opts = make_options(tile=32, overlap=8, block=32, skip_background=False)
    run_enhance(open_image(path), tmp_path / "out.ome.zarr", IdentityFactory(), opts, progress=False)
    out = open_image(tmp_path / "out.ome.zarr")
    assert out.meta.axes == axes and out.meta.dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(out.levels[0][...], vol)


@pytest.mark.parametrize("factory", [ConvFactory(seed=7), PerTileNormFactory()], ids=["equivariant", "per-tile-norm"])
def test_block_size_does_not_change_output(tmp_path: Path, factory) -> None:
    path, _ = _slide(tmp_path, shape=(4, 200, 230), seed=3)
    outs = []
    for block in (64, 128):
        opts = make_options(tile=32, overlap=12, margin=4, block=block, skip_background=False)
        run_enhance(open_image(path), tmp_path / f"b{block}.ome.zarr", factory, opts, progress=False)
        outs.append(zarr.open_array(str(tmp_path / f"b{block}.ome.zarr" / "0"))[...])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_background_skipping_is_block_size_independent_and_copies_background(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    vol = np.full((4, 256, 256), 230, np.uint8)
    vol[:, 40:120, 150:230] = rng.integers(20, 150, (4, 80, 80))
    path = write_volume(tmp_path / "in.ome.zarr", vol, progress=False)
    outs, summaries = [], []
    for block in (64, 128):
        opts = make_options(tile=32, overlap=8, margin=4, block=block)
        summaries.append(run_enhance(open_image(path), tmp_path / f"b{block}.ome.zarr", ConvFactory(seed=1), opts, progress=False))
        outs.append(zarr.open_array(str(tmp_path / f"b{block}.ome.zarr" / "0"))[...])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert summaries[0].blocks_skipped > 0 and summaries[0].tiles_skipped > 0
    # far from the tissue the input is copied through unchanged; on the tissue the model ran
    np.testing.assert_array_equal(outs[0][:, :, :64], vol[:, :, :64])
    assert not np.array_equal(outs[0][:, 40:120, 150:230], vol[:, 40:120, 150:230])


@dataclass(frozen=True)
class StridedUNetFactory:
    """A seam-safe unet3d-gan network (two stride-2 levels, reflect padding, random weights) declaring its
    receptive radius rounded up to the stride period, as a trained checkpoint does."""

    name: str = "strided-unet"
    checksum: str = hashlib.sha256(b"strided-unet").hexdigest()
    margin_px: int | None = None
    input_zyx: tuple[int | None, int | None, int | None] | None = None
    translation_equivariant: bool = True
    core_px: int | None = None

    def net(self) -> torch.nn.Module:
        from zse.models.config import UNetConfig
        from zse.models.networks.unet3d import UNet3D

        torch.manual_seed(11)
        g = UNet3D(UNetConfig(widths=(2, 3, 4), convs=1))
        with torch.no_grad():
            torch.nn.init.normal_(g.conv_out.weight, std=0.3)  # zero at initialisation (global residual)
        return g.eval()

    def build(self, device: str):
        net = self.net().to(device)
        return lambda x: net(x)


def test_default_lattice_is_exact_for_a_strided_unet(tmp_path: Path) -> None:
    """With the defaults (overlap and margin from the declared radius) the tiled run of a network with
    stride-2 levels equals the network applied once to the reflect-padded whole volume, within 1 LSB."""
    from zse.models.config import ArchConfig, UNetConfig
    from zse.models.networks import enhancer_radius_yx
    from zse.pipeline.run import lattice_params, phase_aligned

    radius = enhancer_radius_yx(ArchConfig(kind="unet3d-gan", unet=UNetConfig(widths=(2, 3, 4), convs=1)))
    factory = StridedUNetFactory(margin_px=phase_aligned(radius))
    opts = make_options(tile=64, block=128, skip_background=False, batch_size=4)
    overlap, margin = lattice_params(factory, opts)
    assert margin == factory.margin_px and overlap == 2 * margin and (64 - overlap) % 4 == 0
    path, vol = _slide(tmp_path, shape=(7, 136, 120), seed=6)
    run_enhance(open_image(path), tmp_path / "out.ome.zarr", factory, opts, progress=False)
    got = zarr.open_array(str(tmp_path / "out.ome.zarr" / "0"))[...]
    ref_f = whole_volume_reference(vol.astype(np.float32) / 127.5 - 1.0, factory.net(), pad=margin)
    ref = np.clip(np.round((ref_f + 1.0) * 127.5), 0, 255)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    # the oracle can fail: a margin below the radius (explicit overlap) breaks the equality
    run_enhance(open_image(path), tmp_path / "small.ome.zarr", factory, make_options(tile=64, overlap=8, block=128,
                skip_background=False), progress=False)
    small = zarr.open_array(str(tmp_path / "small.ome.zarr" / "0"))[...]
    assert np.abs(small.astype(int) - ref.astype(int)).max() > 1
