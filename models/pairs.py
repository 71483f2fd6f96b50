"""The pair synthesiser of `unet3d-gan`: (blurred z-scan, optical-section truth) pairs made on the fly.

WFCON-Net's authors train without paired confocal data by simulating pairs; this module does that with
the project's own optics (`zse.models.optics`) and the same truth as `zse synth` (`zse.models.simulator`):

1. An absorption volume μ (1/µm), float32 (Z, L, L), L = 2 × the training crop, from one of
   - the phantom (`phantom_mu`: neurons, glia, fibres, neuropil in a section with soft faces), a bank
     rendered once per z-step from seeds ≥ `phantom_seed_offset` (never the benchmark's seeds), cropped,
     flipped and transposed at random, its section shifted by up to ±`focus_shift` planes;
   - real in-focus content: a section of thickness T ∈ `section_um` around the (shifted) centre plane
     filled with layers of 1–3 planes, each a different in-focus patch (sharpest planes of the training
     stacks and brightness-matched trainA2D patches) turned into optical density and spread over the
     section, μ = OD_patch / T. The column then carries one patch's mean OD (as a real plane does) and
     each in-slice plane of the truth shows one real in-focus patch at its own depth.
2. Imaging, per sample with NA and z-step drawn from `na` × `z_step_um`: OD_k = dz · Σ (h_wf ∗ μ)
   (widefield PSF, every plane summing to 1; linear in z, periodic in y, x on the L × L window of which
   the central crop is kept), I = I0·exp(−OD) with I0 = `background` × 255, shot noise (`photons`
   electrons at I0) and read noise, rounded and clipped to 8 bits. Truth: I0·exp(−T·(h_conf ∗ μ))
   with the optical-section PSF (`optics.confocal_psf_zyx`), no noise, not rounded.

`sample()` returns float32 x, t of shape (N, 1, Z, S, S) in [-1, 1] (v/127.5 − 1). Everything random
comes from the numpy Generator passed in, so training is reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch

from zse.errors import InputError
from zse.models import optics
from zse.models.config import PairConfig
from zse.models.data import match_brightness

TOP = 255.0
HALF = 127.5


@dataclass(frozen=True)
class _Otfs:
    wf: torch.Tensor  # rFFT of the widefield PSF placed for (Lz, L, L) convolution
    conf: torch.Tensor  # rFFT of the optical-section PSF


def content_pool(sharpest: np.ndarray, files: np.ndarray | None) -> np.ndarray:
    """In-focus content for the layered volumes: uint8 (K, H, W).

    `sharpest`: the sharpest plane of each training stack (K1, H, W); `files`: optional in-focus
    patches (K2, H', W') (trainA2D), brightness-matched to `sharpest` (their mean and standard deviation
    mapped linearly onto the sharpest planes'; the Huron trainA2D patches are brighter, mean 168 vs 137)
    and cropped or skipped to the same size.
    """
    s = np.asarray(sharpest)
    if s.dtype != np.uint8 or (files is not None and np.asarray(files).dtype != np.uint8):
        raise InputError(f"the pair synthesiser images 8-bit data; the in-focus content is {s.dtype} (uint16 datasets "
                         "are not supported for unet3d-gan yet)")
    if s.ndim != 3 or s.shape[0] == 0:
        raise InputError(f"content pool needs (K, H, W) in-focus planes, got shape {s.shape}")
    parts = [s.astype(np.uint8)]
    if files is not None and len(files):
        h, w = s.shape[1:]
        f = np.asarray(files)
        if f.shape[1] >= h and f.shape[2] >= w:
            parts.append(match_brightness(f[:, :h, :w], s, "uint8"))
    return np.concatenate(parts)


class PairSynthesiser:
    """Makes (x, truth) training pairs; see the module docstring.

    Args:
        cfg: ranges of the imaging and sources (`PairConfig`).
        z: planes per stack (29).
        crop: lateral size S of the returned pairs (the window L = 2·S is imaged, its centre kept).
        content: uint8 (K, H, W) in-focus planes (`content_pool`), H, W ≥ 2·crop; None = phantom only.
        device: where the FFTs run.
    """

    def __init__(self, cfg: PairConfig, z: int, crop: int, content: np.ndarray | None, device: torch.device | str = "cpu"):
        self.cfg, self.z, self.crop, self.win = cfg, int(z), int(crop), 2 * int(crop)
        self.device = torch.device(device)
        if content is not None and (content.shape[1] < self.win or content.shape[2] < self.win):
            raise InputError(f"in-focus content is {content.shape[1]}×{content.shape[2]} px; crop {crop} needs ≥ {self.win}")
        self.content = None if content is None else torch.from_numpy(np.ascontiguousarray(content)).to(self.device)
        self.content_i0 = 0.0 if content is None else float(np.percentile(content[:, ::4, ::4], 99.5))  # its background
        if cfg.phantom_side < self.win:
            raise InputError(f"phantom_side {cfg.phantom_side} is smaller than the imaged window {self.win}")
        self.lz = scipy.fft.next_fast_len(2 * self.z - 1, real=True)
        self._otf: dict[tuple[float, float], _Otfs] = {}
        self.bank: list[tuple[torch.Tensor, float, float]] = []  # (μ (Z, P, P), z_step_um, section_um)

    # ---------------------------------------------------------------------------------------- set-up

    def build(self, seed: int) -> PairSynthesiser:
        """Render the phantom bank and the OTFs (tens of seconds on 2 cores). Returns self."""
        from zse.models.simulator import make_params, phantom_mu

        rng = np.random.default_rng(seed)
        c = self.cfg
        for dz in c.z_step_um:
            for k in range(c.phantom_seeds):
                section = float(rng.uniform(*c.section_um))
                params = make_params(z_step_um=float(dz), section_um=section, section_wobble_um=1.0,
                                     neurons_per_mm2=float(rng.uniform(1200, 2800)), glia_per_mm2=float(rng.uniform(800, 2200)),
                                     fibres_per_mm2=float(rng.uniform(6000, 18000)))
                mu = phantom_mu(c.phantom_seed_offset + 1000 * int(round(dz * 100)) + k, self.z,
                                (0, 0, c.phantom_side, c.phantom_side), params)
                self.bank.append((torch.from_numpy(mu).to(self.device), float(dz), section))
        for na in c.na:
            for dz in c.z_step_um:
                self._otfs(float(na), float(dz))
        return self

    def _place(self, psf: np.ndarray) -> torch.Tensor:
        """rFFT of `psf` (odd sizes, centred) placed with wrap-around on the (Lz, L, L) grid."""
        lz, w = self.lz, self.win
        pz, py, _ = (s // 2 for s in psf.shape)
        grid = np.zeros((lz, w, w), dtype=np.float32)
        zi = np.arange(-pz, pz + 1) % lz
        yi = np.arange(-py, py + 1) % w
        np.add.at(grid, np.ix_(zi, yi, yi), psf)
        return torch.fft.rfftn(torch.from_numpy(grid).to(self.device))

    def _otfs(self, na: float, dz: float) -> _Otfs:
        key = (round(na, 4), round(dz, 4))
        if key not in self._otf:
            lat = self.win - 1  # odd; the window is periodic, so a wider PSF would wrap anyway
            wf = optics.widefield_psf_zyx((2 * self.z - 1, lat, lat), (dz, 1.0, 1.0), na=na)
            hz = min(self.z - 1, optics.CONFOCAL_HALF_Z)
            r = optics.psf_lateral_radius_px(hz * dz, na=optics.HIGH_NA, refractive_index=optics.HIGH_NA_INDEX)
            conf = optics.confocal_psf_zyx((2 * hz + 1, 2 * r + 1, 2 * r + 1), (dz, 1.0, 1.0))
            self._otf[key] = _Otfs(self._place(wf), self._place(conf))
        return self._otf[key]

    # ---------------------------------------------------------------------------------------- sources

    def _phantom(self, rng: np.random.Generator) -> tuple[torch.Tensor, float, float]:
        mu, dz, section = self.bank[int(rng.integers(len(self.bank)))]
        side = mu.shape[-1]
        oy, ox = (int(v) for v in rng.integers(0, side - self.win + 1, 2))
        m = mu[:, oy : oy + self.win, ox : ox + self.win]
        m = _flip(m, rng, z=True)
        shift = int(rng.integers(-self.cfg.focus_shift, self.cfg.focus_shift + 1))
        return _shift_z(m, shift), dz, section

    def _layers(self, rng: np.random.Generator, dz: float) -> tuple[torch.Tensor, float]:
        assert self.content is not None
        z, w = self.z, self.win
        section = float(rng.uniform(*self.cfg.section_um))
        n_pl = max(1, int(round(section / dz)))
        centre = (z - 1) / 2 + int(rng.integers(-self.cfg.focus_shift, self.cfg.focus_shift + 1))
        k0 = int(math.floor(centre - (n_pl - 1) / 2 + 0.5))  # n_pl planes centred on `centre` (ties go down)
        mu = torch.zeros((z, w, w), device=self.device)
        k = k0
        while k < k0 + n_pl:
            n = min(int(rng.integers(1, 4)), k0 + n_pl - k)
            idx = int(rng.integers(self.content.shape[0]))
            h, wd = self.content.shape[1:]
            oy, ox = int(rng.integers(0, h - w + 1)), int(rng.integers(0, wd - w + 1))
            patch = _flip(self.content[idx, oy : oy + w, ox : ox + w].float()[None], rng, z=False)[0]
            od = torch.log(self.content_i0 / patch.clamp(min=1.0)).clamp(min=0.0)
            lo, hi = max(k, 0), min(k + n, z)
            if lo < hi:
                mu[lo:hi] = od / section
            k += n
        return mu, section

    # ---------------------------------------------------------------------------------------- imaging

    def optical_density(self, mu: torch.Tensor, *, na: float, dz: float, section_um: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(widefield OD, optical-section OD) of μ (Z, L, L) (1/µm), both float32 (Z, L, L):
        dz·(h_wf ∗ μ) (linear in z, periodic in y, x) and section_um·(h_conf ∗ μ)."""
        otf = self._otfs(na, dz)
        spec = torch.fft.rfftn(mu, s=(self.lz, self.win, self.win))
        od = torch.fft.irfftn(spec * otf.wf, s=(self.lz, self.win, self.win))[: self.z] * dz
        od_t = torch.fft.irfftn(spec * otf.conf, s=(self.lz, self.win, self.win))[: self.z] * section_um
        return od, od_t

    def image(self, mu: torch.Tensor, *, na: float, dz: float, section_um: float, i0: float, photons: float,
              read_noise: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Widefield z-scan (8-bit grey levels, float) and optical-section truth (float, not rounded) of
        μ (Z, L, L), both (Z, L, L)."""
        od, od_t = self.optical_density(mu, na=na, dz=dz, section_um=section_um)
        inten = i0 * torch.exp(-od.clamp(min=0.0))
        noise = torch.from_numpy(rng.standard_normal(tuple(inten.shape), dtype=np.float32)).to(self.device)
        gain = i0 / photons
        x = (inten + torch.sqrt(inten * gain + read_noise * read_noise) * noise).round().clamp(0.0, TOP)
        truth = i0 * torch.exp(-od_t.clamp(min=0.0))
        return x, truth

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n pairs: x, truth float32 (n, 1, Z, S, S) in [-1, 1]."""
        c = self.cfg
        xs, ts = [], []
        a = (self.win - self.crop) // 2
        for _ in range(n):
            na = float(c.na[int(rng.integers(len(c.na)))])
            if self.content is not None and rng.uniform() < c.layers_fraction:
                dz = float(c.z_step_um[int(rng.integers(len(c.z_step_um)))])
                mu, section = self._layers(rng, dz)
            else:
                if not self.bank:
                    raise InputError("PairSynthesiser.build() must run before sample() (no phantom bank)")
                mu, dz, section = self._phantom(rng)
            i0 = TOP * float(rng.uniform(*c.background))
            photons = float(math.exp(rng.uniform(math.log(c.photons[0]), math.log(c.photons[1]))))
            read = float(rng.uniform(*c.read_noise))
            x, t = self.image(mu, na=na, dz=dz, section_um=section, i0=i0, photons=photons, read_noise=read, rng=rng)
            xs.append(x[:, a : a + self.crop, a : a + self.crop])
            ts.append(t[:, a : a + self.crop, a : a + self.crop])
        x = torch.stack(xs)[:, None] / HALF - 1.0
        t = torch.stack(ts)[:, None] / HALF - 1.0
        return x.contiguous(), t.contiguous()


def _flip(v: torch.Tensor, rng: np.random.Generator, *, z: bool) -> torch.Tensor:
    """Random flips in y, x (and z when `z`), and a random y↔x transpose, of (Z, Y, X)."""
    fz, fy, fx, tr = (bool(b) for b in rng.integers(0, 2, 4))
    dims = [d for d, f in ((0, fz and z), (1, fy), (2, fx)) if f]
    if dims:
        v = v.flip(dims)
    return v.transpose(1, 2) if tr else v


def _shift_z(v: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift (Z, Y, X) by `shift` planes along z, filling with zeros (empty space)."""
    if shift == 0:
        return v
    out = torch.zeros_like(v)
    if shift > 0:
        out[shift:] = v[:-shift]
    else:
        out[:shift] = v[-shift:]
    return out
