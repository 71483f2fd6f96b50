"""ZSE-GAN losses, as the authors' notebook codes them (LSGAN), with the paper's log form as an option.

Notation (zse axes): x = blurred z-scan (N, 1, Z, Y, X) in [-1, 1]; G_S(x) = sharp estimate;
G_B(G_S(x)) = reconstruction; D_S, D_B: 2D PatchGANs. `adv(s, t)` is MSE(s, t) for "lsgan" and
BCE-with-logits(s, t) for "paper-log" (the paper's exponents p and α become multipliers of the log
terms: log(a^b) = b·log a). Planes i are drawn uniformly; sections are at a random row/column j in a
random orientation (xz at fixed y, or yz at fixed x), presented to D_S as (lateral, z) images like the
in-focus 128×29 crops.

Generator:
    L_G = α_i0·adv(D_B(rec[z=i0]), 1)
        + α_i·(1−p)·adv(D_S(G_S(x)[z=i]), 1) + p·½·adv(D_S(section_j(G_S(x))), 1)
        + λ_cyc · reduce_i( w_i · L1(rec[z=i], x[z=i]) )        (reduce = max, or Σ/Z for "mean")
        + λ_id · ( L1(G_B(x), x) + L1(G_S(G_S(x)), G_S(x)) )
        + λ_fid · L1(lowpass_σ(G_S(x)), lowpass_σ(x))             (optional, 0 in the notebook; or L2)
During the first `cycle_warmup_steps` steps rec = G_B(G_S(x).detach()) (0 in the notebook).
Discriminators (fakes drawn from image pools of whole volumes):
    L_DS = d·[ (1−p)·adv(D_S(y*), 1) + p·adv(D_S(y29), 1)
             + α_i·(1−p)·adv(D_S(f[z=i]), 0) + p·½·adv(D_S(section_j(f)), 0) ]
    L_DB = d·[ α_k·adv(D_B(x[z=k]), 1) + α_m·adv(D_B(r[z=m]), 0) ]
with d = 0.5 (`LossConfig.d_factor`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zse.errors import ConfigError
from zse.models.config import LossConfig, WeightSpec

# --------------------------------------------------------------------------------------------------
# Per-plane weight vectors


def _nb_gauss(sigma: float, x: float) -> float:
    """The notebook's `gaussian(sigma, 0, x)`: round(N(x; 0, σ)·3.4 + 0.1, 2)."""
    pdf = math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))
    return round(pdf * 3.4 + 0.1, 2)


def notebook_alpha(z: int = 29) -> list[float]:
    """α of the notebook ("anisotropic"): 1.67 at both ends, 1.00 at the centre plane (Z = 29)."""
    n = (z + 1) // 2
    out = []
    for i in range(z):
        d = i if i < n else z - 1 - i
        out.append(round(round(_nb_gauss(1.6, 0.2 * d), 2) + 0.72, 2))
    return out


def notebook_cycle_weights(z: int = 29) -> list[float]:
    """Cycle weights of the notebook ("similarity"): 3.05 at plane 0, 1.03 at 14, 2.97 at 28 (Z = 29)."""
    n = (z + 1) // 2
    centre = (z - 1) / 2
    out = []
    for i in range(z):
        if i < n:
            out.append(_nb_gauss(0.46, 0.05 * i))
        else:
            out.append(round(_nb_gauss(0.45, 0.05 * (z - 1 - i)) - 0.01 * (i - centre), 2))
    return out


def plane_sharpness(x: torch.Tensor) -> torch.Tensor:
    """Variance of the 2D Laplacian of each z plane. x (N, 1, Z, Y, X) → (N, Z) float32."""
    n, _, z, h, w = x.shape
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device, dtype=torch.float32)
    lap = F.conv2d(x.float().reshape(n * z, 1, h, w), k.view(1, 1, 3, 3))
    return lap.reshape(n, z, -1).var(dim=-1)


def plane_weights(spec: WeightSpec, z: int, x: torch.Tensor | None = None, *, cycle: bool = False) -> torch.Tensor:
    """The weight vector (Z,) float32 described by `spec` (on x's device when x is given).

    "sharpness" needs the blurred batch x (N, 1, Z, Y, X); the weights are averaged over the batch.
    """
    device = x.device if x is not None else None
    if spec.kind == "notebook":
        vals = notebook_cycle_weights(z) if cycle else notebook_alpha(z)
        return torch.tensor(vals, dtype=torch.float32, device=device)
    if spec.kind == "uniform":
        return torch.ones(z, dtype=torch.float32, device=device)
    if spec.kind == "vector":
        if spec.values is None or len(spec.values) != z:
            got = 0 if spec.values is None else len(spec.values)
            raise ConfigError(f"weight vector has {got} values, the stacks have {z} planes")
        return torch.tensor(spec.values, dtype=torch.float32, device=device)
    if spec.kind == "focus-distance":
        c = (z - 1) / 2 if spec.focal_plane is None else float(spec.focal_plane)
        d = torch.abs(torch.arange(z, dtype=torch.float32, device=device) - c)
        d = d / d.max().clamp_min(1e-6)
        return spec.lo + (spec.hi - spec.lo) * d**spec.power
    if spec.kind == "sharpness":
        if x is None:
            raise ConfigError("weights of kind 'sharpness' need the input stack")
        s = plane_sharpness(x).mean(dim=0)
        rel = 1.0 - s / s.max().clamp_min(1e-12)
        return spec.lo + (spec.hi - spec.lo) * rel.clamp(0, 1) ** spec.power
    raise ConfigError(f"unknown weight kind '{spec.kind}'")


# --------------------------------------------------------------------------------------------------
# Building blocks


def adversarial(kind: str) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """adv(scores, target): MSE to a constant ("lsgan") or BCE-with-logits ("paper-log")."""
    if kind == "lsgan":
        return lambda s, t: F.mse_loss(s.float(), torch.full_like(s.float(), t))
    if kind == "paper-log":
        return lambda s, t: F.binary_cross_entropy_with_logits(s.float(), torch.full_like(s.float(), t))
    raise ConfigError(f"unknown loss kind '{kind}' (valid: lsgan, paper-log)")


def horizontal(v: torch.Tensor, i: int) -> torch.Tensor:
    """Plane z = i of (N, 1, Z, Y, X) → (N, 1, Y, X)."""
    return v[:, :, i]


def section(v: torch.Tensor, j: int, orient: int) -> torch.Tensor:
    """A vertical section as a (lateral, z) image: orient 0 = xz at y = j → (N, 1, X, Z);
    orient 1 = yz at x = j → (N, 1, Y, Z). Same orientation as the in-focus 128×29 crops."""
    s = v[:, :, :, j, :] if orient == 0 else v[:, :, :, :, j]
    return s.transpose(-1, -2)


CHARBONNIER_EPS = 1e-3


def cycle_loss(rec: torch.Tensor, x: torch.Tensor, w: torch.Tensor, reduce: str, norm: str = "l1") -> torch.Tensor:
    """Per-plane weighted error: max_i w_i·E_i ("max", notebook) or Σ_i w_i·E_i / Z ("mean"), with E_i the
    mean over plane i of |d| ("l1", notebook), d² ("l2") or √(d² + ε²) − ε ("charbonnier", ε = 1e-3: L1
    away from 0, smooth at the identity, so no kink pins G_S there), d = rec − x."""
    d = rec.float() - x.float()
    if norm == "l1":
        e = d.abs()
    elif norm == "l2":
        e = d * d
    elif norm == "charbonnier":
        e = torch.sqrt(d * d + CHARBONNIER_EPS**2) - CHARBONNIER_EPS
    else:
        raise ConfigError(f"unknown cycle norm '{norm}' (valid: l1, l2, charbonnier)")
    per_plane = e.mean(dim=(0, 1, 3, 4)) * w  # (Z,)
    if reduce == "max":
        return per_plane.max()
    if reduce == "mean":
        return per_plane.mean()
    raise ConfigError(f"unknown cycle reduce '{reduce}' (valid: max, mean)")


def gaussian_lowpass_yx(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur in y, x of every plane (replicate borders). (N, 1, Z, Y, X) → same."""
    n, c, z, h, w = v.shape
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=v.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    p = v.float().reshape(n * c * z, 1, h, w)
    p = F.conv2d(F.pad(p, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    p = F.conv2d(F.pad(p, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return p.reshape(n, c, z, h, w)


def fidelity_loss(fake: torch.Tensor, x: torch.Tensor, sigma: float, norm: str = "l1") -> torch.Tensor:
    """L1 (or mean squared, norm="l2") difference of the y, x low-passes of G_S(x) and x (local mean
    intensity preserved)."""
    a, b = gaussian_lowpass_yx(fake, sigma), gaussian_lowpass_yx(x, sigma)
    if norm == "l1":
        return F.l1_loss(a, b)
    if norm == "l2":
        return F.mse_loss(a, b)
    raise ConfigError(f"unknown fidelity norm '{norm}' (valid: l1, l2)")


@dataclass(frozen=True)
class Draws:
    """The random plane / section choices of one step (drawn like the notebook's random.randint).

    g_b: plane of the D_B term of L_G; g_s: plane of the D_S horizontal term of L_G; g_j, g_o:
    section index and orientation of L_G; d_s, d_j, d_o: the same for the D_S fake term of L_D;
    d_b_real, d_b_fake: planes of the D_B terms of L_D.
    """

    g_b: int
    g_s: int
    g_j: int
    g_o: int
    d_s: int
    d_j: int
    d_o: int
    d_b_real: int
    d_b_fake: int

    @classmethod
    def draw(cls, rng: random.Random, z: int, y: int, x: int) -> Draws:
        g_b = rng.randint(0, z - 1)
        g_o = rng.randint(0, 1)
        g_j = rng.randint(0, (y if g_o == 0 else x) - 1)
        g_s = rng.randint(0, z - 1)
        d_o = rng.randint(0, 1)
        d_j = rng.randint(0, (y if d_o == 0 else x) - 1)
        d_s = rng.randint(0, z - 1)
        return cls(g_b, g_s, g_j, g_o, d_s, d_j, d_o, rng.randint(0, z - 1), rng.randint(0, z - 1))


def generator_loss(
    x: torch.Tensor,
    fake: torch.Tensor,
    rec: torch.Tensor,
    idt_b: torch.Tensor | None,
    idt_s: torch.Tensor | None,
    d_s: nn.Module,
    d_b: nn.Module,
    cfg: LossConfig,
    alpha: torch.Tensor,
    cyc_w: torch.Tensor,
    dr: Draws,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_G and its terms (detached 0-d tensors, for logging without a device sync).

    Args:
        x: blurred input; fake = G_S(x); rec = G_B(fake); idt_b = G_B(x); idt_s = G_S(fake); all
            (N, 1, Z, Y, X); idt_b and idt_s may be None when cfg.lambda_identity is 0. alpha, cyc_w:
            (Z,) weights. dr: the step's random draws.
    """
    adv = adversarial(cfg.kind)
    p = cfg.p
    l_gb = alpha[dr.g_b] * adv(d_b(horizontal(rec, dr.g_b)), 1.0)
    l_gs_h = alpha[dr.g_s] * (1 - p) * adv(d_s(horizontal(fake, dr.g_s)), 1.0)
    l_gs_v = p * 0.5 * adv(d_s(section(fake, dr.g_j, dr.g_o)), 1.0)
    l_cyc = cycle_loss(rec, x, cyc_w, cfg.cycle_reduce, cfg.cycle_norm)
    if idt_b is not None and idt_s is not None:
        l_idt = F.l1_loss(idt_b.float(), x.float()) + F.l1_loss(idt_s.float(), fake.float())
    elif cfg.lambda_identity > 0:
        raise ValueError("generator_loss: lambda_identity > 0 needs idt_b and idt_s")
    else:
        l_idt = torch.zeros((), device=x.device)
    total = l_gb + l_gs_h + l_gs_v + cfg.lambda_cycle * l_cyc + cfg.lambda_identity * l_idt
    l_fid = fidelity_loss(fake, x, cfg.fidelity_sigma, cfg.fidelity_norm) if cfg.lambda_fidelity > 0 else torch.zeros((), device=x.device)
    total = total + cfg.lambda_fidelity * l_fid
    terms = {"g_total": total, "g_adv_b": l_gb, "g_adv_s_xy": l_gs_h, "g_adv_s_vert": l_gs_v, "g_cycle": l_cyc,
             "g_identity": l_idt, "g_fidelity": l_fid}
    return total, {k: v.detach().float() for k, v in terms.items()}


def discriminator_loss(
    x: torch.Tensor,
    y2d: torch.Tensor,
    y29: torch.Tensor,
    fake_pool: torch.Tensor,
    rec_pool: torch.Tensor,
    d_s: nn.Module,
    d_b: nn.Module,
    cfg: LossConfig,
    alpha: torch.Tensor,
    dr: Draws,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_D = L_DS + L_DB and its terms (detached 0-d tensors).

    Args:
        x: blurred input (N, 1, Z, Y, X); y2d: in-focus patches (N, 1, Y, X); y29: in-focus vertical
            crops (N, 1, lateral, Z); fake_pool, rec_pool: volumes from the image pools (detached).
    """
    adv = adversarial(cfg.kind)
    p = cfg.p
    s_real = (1 - p) * adv(d_s(y2d), 1.0) + p * adv(d_s(y29), 1.0)
    s_fake = alpha[dr.d_s] * (1 - p) * adv(d_s(horizontal(fake_pool, dr.d_s)), 0.0) + p * 0.5 * adv(
        d_s(section(fake_pool, dr.d_j, dr.d_o)), 0.0
    )
    b_real = alpha[dr.d_b_real] * adv(d_b(horizontal(x, dr.d_b_real)), 1.0)
    b_fake = alpha[dr.d_b_fake] * adv(d_b(horizontal(rec_pool, dr.d_b_fake)), 0.0)
    l_ds = cfg.d_factor * (s_real + s_fake)
    l_db = cfg.d_factor * (b_real + b_fake)
    total = l_ds + l_db
    return total, {k: v.detach().float() for k, v in {"d_total": total, "d_s": l_ds, "d_b": l_db}.items()}


class ImagePool:
    """History of generated volumes (Shrivastava et al.; the notebook's ImagePool).

    `query(batch)` returns, per image, the image itself while the pool fills; afterwards with
    probability ½ a stored image (replaced by the new one), else the new one. Random choices come
    from the given `random.Random`, so runs are reproducible and resumable (`state_dict`).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif rng.uniform(0, 1) > 0.5:
                k = rng.randint(0, self.size - 1)
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, object]:
        return {"size": self.size, "images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state: dict[str, object], device: torch.device | str) -> None:
        self.size = int(state["size"])  # type: ignore[call-overload]
        self.images = [t.to(device) for t in state["images"]]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# unet3d-gan (PhysicsLossConfig; docs/training.md)


def supervised_l1(out: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean |out − truth| over all voxels (N, 1, Z, Y, X)."""
    return (out.float() - truth.float()).abs().mean()


def highpass_yx(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """v − Gaussian_σ(v) in y, x per plane, for (N, 1, Y, X) or (N, 1, Z, Y, X)."""
    if v.dim() == 4:
        return v - gaussian_lowpass_yx(v[:, :, None], sigma)[:, :, 0]
    return v - gaussian_lowpass_yx(v, sigma)


def keep_loss(out_plane: torch.Tensor, x_plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """L1 between the high-passes (σ px) of the output's and the input's sharpest plane, (N, 1, Y, X):
    the in-focus detail of a real stack stays where (and at the depth) it is."""
    return (highpass_yx(out_plane.float(), sigma) - highpass_yx(x_plane.float(), sigma)).abs().mean()


def lsgan_generator(scores_fake: torch.Tensor) -> torch.Tensor:
    """½·MSE(D(fake), 1)."""
    s = scores_fake.float()
    return 0.5 * ((s - 1.0) ** 2).mean()


def lsgan_discriminator(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """½·[MSE(D(real), 1) + MSE(D(fake), 0)]."""
    return 0.5 * (((scores_real.float() - 1.0) ** 2).mean() + (scores_fake.float() ** 2).mean())


def in_slice_planes(x: torch.Tensor, half: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample of x (N, 1, Z, Y, X): the sharpest plane k (variance of the Laplacian) and one plane
    drawn uniformly from [k − half, k + half] ∩ [0, Z). Returns two int64 tensors (N,)."""
    k = plane_sharpness(x).argmax(dim=1)
    z = x.shape[2]
    picks = [min(max(int(kk) + rng.randint(-half, half), 0), z - 1) for kk in k.tolist()]
    return k, torch.tensor(picks, dtype=torch.int64, device=x.device)


def take_planes(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Plane idx[n] of sample n of v (N, 1, Z, Y, X) → (N, 1, Y, X)."""
    return v[torch.arange(v.shape[0], device=v.device), :, idx]
