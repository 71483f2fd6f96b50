"""Per-plane unsharp-mask baseline: factory contract, sharpening of a blurred step, identity, shape/range."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from zse.errors import ConfigError
from zse.models.baselines.unsharp import UnsharpFactory
from zse.pipeline.infer import PredictorFactory


def _blurred_step(nz: int = 3, n: int = 48) -> torch.Tensor:
    img = np.full((n, n), -0.6, dtype=np.float32)
    img[:, n // 2 :] = 0.6
    img = ndi.gaussian_filter(img, 2.0, mode="nearest")
    return torch.from_numpy(np.broadcast_to(img, (nz, n, n)).copy())[None, None]


def test_factory_contract() -> None:
    f = UnsharpFactory()
    assert isinstance(f, PredictorFactory)
    assert f.name == "unsharp" and f.margin_px == 8
    assert len(f.checksum) == 64
    assert UnsharpFactory(amount=0.5).checksum != f.checksum
    assert UnsharpFactory(sigma_px=1.0).margin_px == 4
    g = pickle.loads(pickle.dumps(f))
    assert g.checksum == f.checksum and g.margin_px == f.margin_px


@pytest.mark.parametrize("kwargs", [{"sigma_px": 0}, {"sigma_px": float("nan")}, {"amount": -1.0}])
def test_bad_parameters(kwargs) -> None:
    with pytest.raises(ConfigError):
        UnsharpFactory(**kwargs)


def test_sharpens_a_blurred_step() -> None:
    x = _blurred_step()
    y = UnsharpFactory(sigma_px=2.0, amount=1.0).build("cpu")(x)
    gx = torch.diff(x, dim=-1).abs().amax().item()
    gy = torch.diff(y, dim=-1).abs().amax().item()
    assert gy > 1.2 * gx  # measured 1.29×
    # far from the edge the flat levels are kept
    assert torch.allclose(y[..., :4], x[..., :4], atol=1e-5)
    assert torch.allclose(y[..., -4:], x[..., -4:], atol=1e-5)
    # per plane: every plane gets the same result (nothing happens along z)
    assert torch.equal(y[:, :, 0], y[:, :, 1])


def test_identity_when_amount_is_zero() -> None:
    x = torch.rand(2, 1, 5, 20, 17) * 2 - 1
    assert torch.equal(UnsharpFactory(amount=0.0).build("cpu")(x), x)


def test_shape_and_range_preserved() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 4, 21, 9, generator=g) * 2 - 1  # 9 px < 2·radius: reflect falls back gracefully
    y = UnsharpFactory(sigma_px=2.0, amount=3.0).build("cpu")(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= -1.0 and y.max() <= 1.0
    with pytest.raises(ConfigError):
        UnsharpFactory().build("cpu")(x[0])


def test_tiles_agree_beyond_the_margin() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 2, 64, 64, generator=g) * 2 - 1
    f = UnsharpFactory(sigma_px=1.5, amount=1.0)
    p = f.build("cpu")
    whole = p(x)
    m = f.margin_px
    part = p(x[..., :40, :40])
    assert torch.allclose(part[..., : 40 - m, : 40 - m], whole[..., : 40 - m, : 40 - m], atol=1e-6)
