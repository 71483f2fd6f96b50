"""Unpaired LR / HR z-scans for `dualgan-3d` (z super-resolution) from the project's simulator.

A scene is one phantom draw (`zse.models.simulator.phantom_mu`, absorption μ in 1/µm) rendered on a
fine z grid and imaged by the widefield PSF of `zse.models.optics` (each plane summing to 1, OD =
step · Σ_z' h ∗ μ, as `zse synth`) at two sets of focal positions over the same depth:

- LR: `lr_planes` = Z planes at the coarse step dz (plane k at (k − (Z − 1)/2)·dz from the section's
  middle);
- HR: sz·Z planes at dz/sz, plane j at dz·((j + 0.5)/sz − Z/2) — exactly where the generator's output
  plane j lies by the voxel-shuffle convention (LR plane 0 at z0 gives output planes at
  z0 + dz·((j + 0.5)/sz − 0.5)).

Both sets fall on the μ grid of step dz/(2·sz) with 2·sz·Z + 1 planes (middle plane sz·Z): LR plane k at
grid index 2·sz·k + sz, HR plane j at 2·j + 1. Lateral convolution is periodic on the rendered window
(side + 2·`MARGIN_PX`), of which the central `side` × `side` is kept. Intensities are 8-bit grey levels
I = I0·exp(−OD) (I0 = background·255), with shot and read noise (Gaussian approximations, as the
simulator) where asked, rounded and clipped; `to_unit` maps them to [−1, 1] (v/127.5 − 1).

`ZsrSampler` (training): a bank of `phantoms` LR scans and `phantoms` HR scans of *different* phantoms
(seeds `phantom_seed_offset` + 2i for LR, + 2i + 1 for HR: unpaired), imaged once noise-free; each sample
is a random crop (crop_z LR planes / sz·crop_z HR planes, crop_yx px) with random flips and a y↔x
transpose, then fresh noise. `scene_pair` (benchmark, validation) gives the LR scan (noisy, 8-bit) and
the HR truth (noise-free, not rounded) of the same phantom. Only z factors are simulated (sy = sx = 1).
Real fine-step scans are not read here (no folder option is built; see docs).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import torch

from zse.errors import ConfigError
from zse.models import optics
from zse.models.config import DualGANConfig

MARGIN_PX = 32
"""Lateral margin rendered around each scene (periodic convolution wraps within it)."""
TOP, HALF = 255.0, 127.5


def _check_scale(scale_zyx: tuple[int, int, int]) -> int:
    sz, sy, sx = (int(s) for s in scale_zyx)
    if sy != 1 or sx != 1:
        raise ConfigError(f"dualgan-3d data: the simulator makes z super-resolution data only; arch.wdsr.scale_zyx "
                          f"{tuple(scale_zyx)} must be (sz, 1, 1)")
    return sz


@lru_cache(maxsize=4)
def _otf(n_mu: int, win: int, step_um: float, na: float) -> tuple[np.ndarray, int]:
    """rFFT of the widefield PSF (2·n_mu − 1 planes at `step_um`, lateral 2·MARGIN_PX + 1) placed for a
    linear-in-z, periodic-in-y-x convolution on (lz, win, win); returns (otf, lz)."""
    hz, r = n_mu - 1, MARGIN_PX
    psf = optics.widefield_psf_zyx((2 * hz + 1, 2 * r + 1, 2 * r + 1), (step_um, 1.0, 1.0), na=na)
    lz = scipy.fft.next_fast_len(2 * n_mu - 1, real=True)
    placed = np.zeros((lz, win, win), dtype=np.float32)
    placed[np.ix_(np.arange(-hz, hz + 1) % lz, np.arange(-r, r + 1) % win, np.arange(-r, r + 1) % win)] = psf
    return scipy.fft.rfftn(placed, workers=1).astype(np.complex64), lz


def scene_od(seed: int, *, lr_planes: int, sz: int, z_step_um: float, na: float, side: int,
             which: tuple[str, ...] = ("lr", "hr")) -> dict[str, np.ndarray]:
    """Noise-free optical density of one phantom draw: {"lr": (Z, side, side), "hr": (sz·Z, side, side)},
    float32 (see the module docstring for the focal positions)."""
    from zse.models.simulator import make_params, phantom_mu

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    step = z_step_um / (2 * sz)
    n_mu = 2 * sz * lr_planes + 1
    params = make_params(z_step_um=step, section_um=float(rng.uniform(14.0, 24.0)), section_wobble_um=1.0,
                         neurons_per_mm2=float(rng.uniform(1200, 2800)), glia_per_mm2=float(rng.uniform(800, 2200)),
                         fibres_per_mm2=float(rng.uniform(6000, 18000)))
    win = side + 2 * MARGIN_PX
    mu = phantom_mu(int(seed), n_mu, (0, 0, win, win), params)
    otf, lz = _otf(n_mu, win, step, na)
    od = scipy.fft.irfftn(scipy.fft.rfftn(mu, s=(lz, win, win), workers=1) * otf, s=(lz, win, win), workers=1)
    keep = od[:n_mu, MARGIN_PX : MARGIN_PX + side, MARGIN_PX : MARGIN_PX + side] * step
    idx = {"lr": 2 * sz * np.arange(lr_planes) + sz, "hr": 2 * np.arange(sz * lr_planes) + 1}
    return {k: np.ascontiguousarray(keep[idx[k]], dtype=np.float32) for k in which}


def to_intensity(od: np.ndarray, *, background: float, photons: float | None, read_noise: float,
                 rng: np.random.Generator | None) -> np.ndarray:
    """8-bit grey levels (float32) of optical density `od`: I0·exp(−OD), with noise (then rounded and
    clipped to 0..255) when `photons` and `rng` are given, else noise-free and not rounded."""
    i0 = background * TOP
    inten = i0 * np.exp(-np.clip(od, 0.0, None).astype(np.float64))
    if photons is None or rng is None:
        return inten.astype(np.float32)
    noise = rng.standard_normal(od.shape, dtype=np.float32)
    inten = inten + np.sqrt(inten * (i0 / photons) + read_noise * read_noise) * noise
    return np.clip(np.rint(inten), 0, TOP).astype(np.float32)


def to_unit(v: np.ndarray) -> np.ndarray:
    """Grey levels 0..255 → [−1, 1] (v/127.5 − 1), the networks' range."""
    return (v / HALF - 1.0).astype(np.float32)


def scene_pair(seed: int, cfg: DualGANConfig, sz: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR scan, HR truth) of one phantom, grey levels float32: LR (Z, side, side) with noise (rounded,
    8-bit; noise from `seed`), HR (sz·Z, side, side) noise-free and not rounded."""
    od = scene_od(seed, lr_planes=cfg.lr_planes, sz=sz, z_step_um=cfg.z_step_um, na=cfg.na, side=side)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    lr = to_intensity(od["lr"], background=cfg.background, photons=cfg.photons, read_noise=cfg.read_noise, rng=rng)
    hr = to_intensity(od["hr"], background=cfg.background, photons=None, read_noise=0.0, rng=None)
    return lr, hr


class ZsrSampler:
    """Unpaired LR / HR training crops (see the module docstring).

    Args:
        cfg: the `dualgan` section (imaging, bank, crops, noise).
        scale_zyx: the generator's factor; (sz, 1, 1) only.
        device: where `sample` puts its tensors.
    """

    def __init__(self, cfg: DualGANConfig, scale_zyx: tuple[int, int, int], device: torch.device | str = "cpu") -> None:
        self.cfg, self.sz, self.device = cfg, _check_scale(scale_zyx), torch.device(device)
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []

    def build(self) -> ZsrSampler:
        """Render and image the bank (a few seconds per phantom on one core). Returns self."""
        c = self.cfg
        for i in range(c.phantoms):
            kw = dict(lr_planes=c.lr_planes, sz=self.sz, z_step_um=c.z_step_um, na=c.na, side=c.phantom_side)
            self.lr.append(scene_od(c.phantom_seed_offset + 2 * i, which=("lr",), **kw)["lr"])  # type: ignore[arg-type]
            self.hr.append(scene_od(c.phantom_seed_offset + 2 * i + 1, which=("hr",), **kw)["hr"])  # type: ignore[arg-type]
        return self

    def _crop(self, vol: np.ndarray, rng: np.random.Generator, cz: int) -> np.ndarray:
        c = self.cfg
        k0 = int(rng.integers(0, c.lr_planes - c.crop_z + 1)) * (cz // c.crop_z)
        oy, ox = (int(v) for v in rng.integers(0, c.phantom_side - c.crop_yx + 1, 2))
        v = vol[k0 : k0 + cz, oy : oy + c.crop_yx, ox : ox + c.crop_yx]
        fz, fy, fx, tr = (bool(b) for b in rng.integers(0, 2, 4))
        v = v[::-1 if fz else 1, ::-1 if fy else 1, ::-1 if fx else 1]
        return np.ascontiguousarray(v.transpose(0, 2, 1) if tr else v)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n LR crops (n, 1, crop_z, c, c) and n HR crops (n, 1, sz·crop_z, c, c) of other phantoms,
        float32 in [−1, 1], with fresh noise; all randomness from `rng`."""
        if not self.lr:
            raise ConfigError("ZsrSampler.build() must run before sample() (no bank)")
        c = self.cfg
        out: dict[str, list[np.ndarray]] = {"lr": [], "hr": []}
        for key, bank, cz in (("lr", self.lr, c.crop_z), ("hr", self.hr, self.sz * c.crop_z)):
            for _ in range(n):
                od = self._crop(bank[int(rng.integers(len(bank)))], rng, cz)
                v = to_intensity(od, background=c.background, photons=c.photons, read_noise=c.read_noise, rng=rng)
                out[key].append(to_unit(v))
        lr = torch.from_numpy(np.stack(out["lr"])[:, None]).to(self.device)
        hr = torch.from_numpy(np.stack(out["hr"])[:, None]).to(self.device)
        return lr, hr
