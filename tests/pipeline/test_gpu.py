"""GPU path of the pipeline: mixed precision, out-of-memory back-off, CUDA equals CPU.

Tests marked `gpu` are skipped without CUDA (tests/conftest.py). The OOM back-off test also runs on the
CPU: `predict_block` catches `torch.cuda.OutOfMemoryError` whatever the device, and CPU torch has the class.
The conv net is the bench stand-in (`zse.models.testing.ConvNetFactory`: random 3×3×3 convolutions,
receptive radius = layers, output clamp(x + 0.25·net(x))).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zse.models.testing import ConvNetFactory, make_slide, rel_l2
from zse.pipeline.block import predict_block
from zse.pipeline.geometry import Box, Lattice

CUDA = pytest.param("cuda", marks=pytest.mark.gpu)


def _slide_tiles(n: int, nz: int, tile: int, seed: int = 0) -> torch.Tensor:
    """n brightfield-like tiles (N, 1, Z, tile, tile) in [-1, 1], cut from a synthetic slide."""
    vol = make_slide((nz, tile * 2, tile * 2), seed=seed, tissue_fraction=0.9)
    tiles = [vol[:, y : y + tile, x : x + tile] for y in (0, tile // 2, tile) for x in (0, tile // 2, tile)][:n]
    return torch.from_numpy(np.stack(tiles)[:, None].astype(np.float32) / 127.5 - 1.0)


@pytest.mark.gpu
@pytest.mark.parametrize(("amp", "tol"), [("bf16", 1e-2), ("fp16", 1e-2)])
def test_mixed_precision_close_to_fp32(amp: str, tol: float) -> None:
    x = _slide_tiles(4, 29, 64).cuda()
    with torch.inference_mode():
        ref = ConvNetFactory(width=16).build("cuda")(x)
        out = ConvNetFactory(width=16, amp=amp).build("cuda")(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = rel_l2(out, ref)
    assert err < tol, f"{amp}: relative L2 error {err:.2e} against fp32"
    # the network's own contribution (the residual), not only the skip connection, is close too
    err_res = rel_l2(out - x, ref - x)
    assert err_res < 10 * tol, f"{amp}: relative L2 error of the residual {err_res:.2e}"


def _lattice_case() -> tuple[Lattice, Box, Box, tuple[tuple[int, int], ...]]:
    lattice = Lattice(shape_yx=(96, 96), tile=32, overlap=8, margin=2)
    write_box = Box(0, 0, 96, 96)
    tiles = tuple(lattice.tiles_touching(write_box))
    read_box = lattice.tile_box(*tiles[0])
    for t in tiles[1:]:
        read_box = read_box.union(lattice.tile_box(*t))
    return lattice, read_box, write_box, tiles


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_predict_block_backs_off_on_oom(device: str) -> None:
    """A predictor that runs out of memory for batches > 2: the block still equals the batch-1 result."""
    lattice, read_box, write_box, tiles = _lattice_case()
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand((5, *read_box.shape), generator=gen) * 2 - 1).to(device)
    sizes: list[int] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:  # per-sample and elementwise: batching cannot change it
        return torch.tanh(1.3 * batch) * 0.9

    def oom_above_2(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        if batch.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        return fn(batch)

    ref_values, ref_cov = predict_block(data, read_box, write_box, lattice, tiles, fn, batch_size=1)
    values, covered = predict_block(data, read_box, write_box, lattice, tiles, oom_above_2, batch_size=8)
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) <= 2, sizes
    assert torch.equal(covered, ref_cov)
    assert torch.equal(values, ref_values)


def test_predict_block_oom_at_batch_1_is_raised() -> None:
    lattice, read_box, write_box, tiles = _lattice_case()
    data = torch.zeros((3, *read_box.shape))

    def always_oom(batch: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        predict_block(data, read_box, write_box, lattice, tiles, always_oom, batch_size=4)


@pytest.mark.gpu
def test_pipeline_cuda_equals_cpu(tmp_path) -> None:
    """zse enhance with a small conv net on cuda and on cpu: outputs differ by at most 1 LSB."""
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance

    vol = make_slide((8, 200, 176), seed=3)
    write_volume(tmp_path / "in.zarr", vol, voxel_size_um=(1, 1, 1), progress=False)
    factory = ConvNetFactory(width=4, layers=3)
    outs = {}
    for device in ("cpu", "cuda"):
        opts = make_options(tile=64, overlap=16, block=128, batch_size=3, device=device)
        run_enhance(open_image(tmp_path / "in.zarr"), tmp_path / f"{device}.zarr", factory, opts, client=None, progress=False)
        outs[device] = np.asarray(open_image(tmp_path / f"{device}.zarr").levels[0][...]).astype(np.int16)
    diff = np.abs(outs["cuda"] - outs["cpu"])
    assert diff.max() <= 1, f"max |cuda − cpu| = {diff.max()} LSB"
    assert (diff > 0).mean() < 0.01  # rounding ties only
    assert not np.array_equal(outs["cpu"], vol)  # the model did something
