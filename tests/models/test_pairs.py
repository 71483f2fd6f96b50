"""The pair synthesiser of unet3d-gan: PSF energy per plane, a point gives the PSF back, focus position,
noise σ as configured, content brightness matching, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zse.errors import InputError
from zse.models import optics
from zse.models.config import PairConfig
from zse.models.pairs import PairSynthesiser, content_pool

Z, CROP = 9, 16
CFG = PairConfig(na=(0.7,), z_step_um=(1.2,), section_um=(6.0, 6.0), focus_shift=0, phantom_seeds=1, phantom_side=64,
                 background=(0.9, 0.9), photons=(20000.0, 20000.0), read_noise=(0.5, 0.5))


def _content(n: int = 4, side: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (200 - 80 * rng.random((n, side, side))).astype(np.uint8)


@pytest.fixture(scope="module")
def synth() -> PairSynthesiser:
    return PairSynthesiser(CFG, Z, CROP, _content()).build(0)


def test_a_point_object_gives_the_psf_back(synth: PairSynthesiser) -> None:
    """μ = a single voxel: the widefield OD is dz·μ0 times the widefield PSF (each plane carrying dz·μ0:
    a defocused plane neither gains nor loses light), the truth's OD is T·μ0 times the optical-section PSF."""
    w = synth.win
    mu = torch.zeros((Z, w, w))
    z0, c, mu0 = 4, w // 2, 0.5
    mu[z0, c, c] = mu0
    od, od_t = synth.optical_density(mu, na=0.7, dz=1.2, section_um=6.0)
    psf = optics.widefield_psf_zyx((2 * Z - 1, w - 1, w - 1), (1.2, 1.0, 1.0), na=0.7)
    # plane k of the result is PSF plane (k − z0) (centre Z − 1), laterally centred on (c, c)
    want = np.zeros((Z, w, w), dtype=np.float64)
    for k in range(Z):
        want[k, 1:, 1:] = 1.2 * mu0 * psf[Z - 1 + k - z0]
    np.testing.assert_allclose(od.numpy(), want, atol=1e-6)
    np.testing.assert_allclose(od.numpy().sum(axis=(1, 2)), np.full(Z, 1.2 * mu0), rtol=1e-4)
    conf = optics.confocal_psf_zyx((7, 7, 7), (1.2, 1.0, 1.0))
    # the optical-section PSF's own lateral radius is wider than 3 px; compare its centre and total
    assert od_t.numpy().sum() == pytest.approx(6.0 * mu0, rel=1e-4)
    assert od_t[z0, c, c].item() > od_t[z0 - 1, c, c].item() > od_t[z0 - 3, c, c].item() > 0
    assert od_t[z0, c, c].item() == pytest.approx(6.0 * mu0 * conf[3, 3, 3] / conf.sum(), rel=0.05)
    assert float(od_t[0].abs().max()) < 1e-6  # 4 planes away: outside the optical section


def test_noise_sigma_as_configured(synth: PairSynthesiser) -> None:
    """An empty volume images to I0 plus shot and read noise: σ² = I0²/photons + read² (+ 1/12 of rounding)."""
    mu = torch.zeros((Z, synth.win, synth.win))
    i0, photons, read = 200.0, 8000.0, 1.0
    x, t = synth.image(mu, na=0.7, dz=1.2, section_um=6.0, i0=i0, photons=photons, read_noise=read,
                       rng=np.random.default_rng(1))
    want = np.sqrt(i0 * i0 / photons + read * read + 1 / 12)
    assert float(x.std()) == pytest.approx(want, rel=0.05)
    assert float(x.mean()) == pytest.approx(i0, abs=0.1)
    np.testing.assert_allclose(t.numpy(), i0, rtol=1e-6)  # the truth has no noise


def test_layers_fill_the_section_around_the_focus(synth: PairSynthesiser) -> None:
    """With focus_shift 0 the section (6 µm / 1.2 µm = 5 planes) is centred on the middle plane; every
    in-slice plane carries one patch's OD / T and the planes outside the section are empty."""
    mu, section = synth._layers(np.random.default_rng(3), 1.2)
    filled = np.flatnonzero(mu.reshape(Z, -1).abs().sum(dim=1).numpy() > 0)
    assert section == 6.0
    assert filled.tolist() == [2, 3, 4, 5, 6]
    column_od = float((mu * 1.2).sum(dim=0).mean())
    pool_od = float(torch.log(synth.content_i0 / synth.content.float().clamp(min=1)).clamp(min=0).mean())
    assert column_od == pytest.approx(pool_od, rel=0.35)  # about one patch's OD over the column


def test_focus_shift_moves_the_section() -> None:
    cfg = CFG.model_copy(update={"focus_shift": 2})
    s = PairSynthesiser(cfg, Z, CROP, _content())
    centres = set()
    for seed in range(40):
        mu, _ = s._layers(np.random.default_rng(seed), 1.2)
        filled = np.flatnonzero(mu.reshape(Z, -1).abs().sum(dim=1).numpy() > 0)
        centres.add(float(filled.mean()))
    assert min(centres) == pytest.approx(2.0) and max(centres) == pytest.approx(6.0)


def test_sample_shapes_range_and_determinism(synth: PairSynthesiser) -> None:
    x, t = synth.sample(np.random.default_rng(5), 3)
    assert x.shape == t.shape == (3, 1, Z, CROP, CROP) and x.dtype == torch.float32
    x2, t2 = synth.sample(np.random.default_rng(5), 3)
    torch.testing.assert_close(x, x2)
    torch.testing.assert_close(t, t2)
    # widefield haze: every plane of x varies less across z than the truth does
    assert float(x.mean(dim=(-1, -2)).std(dim=2).mean()) < float(t.mean(dim=(-1, -2)).std(dim=2).mean())


def test_content_pool_matches_brightness() -> None:
    sharp = np.full((2, 8, 8), 100, np.uint8) + np.arange(8, dtype=np.uint8)[None, None]
    files = np.full((3, 10, 10), 180, np.uint8) + 2 * np.arange(10, dtype=np.uint8)[None, None]
    pool = content_pool(sharp, files)
    assert pool.shape == (5, 8, 8)
    assert abs(float(pool[2:].mean()) - float(sharp.mean())) < 3
    with pytest.raises(InputError):
        content_pool(np.zeros((0, 8, 8), np.uint8), None)


def test_content_smaller_than_the_window_is_refused() -> None:
    with pytest.raises(InputError, match="crop 16 needs"):
        PairSynthesiser(CFG, Z, CROP, _content(side=20))
