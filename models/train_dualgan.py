"""The `dualgan-3d` training loop (3D-dualHRGAN, Zhou et al.: z super-resolution by a dual WGAN-GP; `zse
train` calls it through `zse.models.train.train` when `arch.kind` is "dualgan-3d"). One file, one loop.

Networks (`zse.models.networks.wdsr`): G (LR→HR, "g_s": the enhancer the pipeline runs), F (HR→LR
degrader, "g_b"), critics D_hr, D_lr. Data: unpaired simulator crops (`zse.models.zsr_data.ZsrSampler`).
Per step (batch N of unpaired LR crops l, HR crops h):
    n_critic × [new batch; x̂ = G(l), ŷ = F(h) (no grad); α ~ U(0, 1) per sample
        L_D = D_hr(x̂) − D_hr(h) + λ_gp·GP(D_hr, h, x̂) + D_lr(ŷ) − D_lr(l) + λ_gp·GP(D_lr, l, ŷ)
        one RMSprop step for both critics]
    on the last batch: L_G = λ_adv·(−D_hr(G(l)) − D_lr(F(h))) + λ_cyc·(‖F(G(l)) − l‖₁ + ‖G(F(h)) − h‖₁),
        one Adam step for G and F together
(D(·) is the mean of the critic's score map; GP = E[(‖∇D(x̂)‖₂ − 1)²] at random interpolates.)
Outputs in OUT (as the other loops): train_log.csv, val_XXXXXXX.png (x-z views of a held-out simulator
scene: LR input, G's output, linear interpolation, fine-step truth), last.pt (networks, optimisers,
schedules, RNG states, `scale_zyx`), g_s.pt (the inference checkpoint, `scale_zyx` kept), config.yaml.
Validation in the log: `val_l1` (mean |G(l) − truth| on the held-out scene, [−1, 1] units) beside
`val_l1_linear` (the same for linear interpolation, the untrained generator). `resume=True` restores
everything: on CPU, N steps straight and N/2 + resume + N/2 give identical weights (tested).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from zse.errors import ConfigError
from zse.models.checkpoint import export_generator, save_checkpoint
from zse.models.config import Config
from zse.models.networks.wdsr import (
    build_critic,
    build_degrader,
    build_wdsr_generator,
    critic_score,
    gradient_penalty,
)
from zse.models.train_physics import _checkpoint, aligned_margin
from zse.models.zsr_data import ZsrSampler, scene_pair, to_unit

LOG_FIELDS = ["step", "time_s", "lr_g", "g_total", "adv", "cycle", "cycle_lr", "cycle_hr", "d_total", "d_hr", "d_lr",
              "gp", "wdist_hr", "wdist_lr", "val_l1", "val_l1_linear"]
VAL_SIDE = 48


def linear_upsample_z(v: torch.Tensor, sz: int) -> torch.Tensor:
    """Linear interpolation along z by `sz` at the voxel-shuffle positions ((N, 1, Z, Y, X) → (N, 1, sz·Z, Y, X))."""
    return torch.nn.functional.interpolate(v, scale_factor=(sz, 1, 1), mode="trilinear", align_corners=False)


def train_dualgan_3d(cfg: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> Any:
    """Train `dualgan-3d` with `cfg` into `out_dir`; returns a `zse.models.train.TrainResult`.

    Raises: ConfigError (device, a y-x scale factor, resume with another config), OutputError/InputError
    (run folder), ModelError (damaged resume checkpoint).
    """
    from zse.models.train import (
        TrainResult,
        _lr_lambda,
        _rng_state,
        open_log,
        prepare_run_dir,
        resolve_device,
        restore_training,
        resumed_step,
        seed_everything,
    )

    t_start = time.monotonic()
    device = resolve_device(cfg.train.device)
    tc, dc = cfg.train, cfg.dualgan
    scale = tuple(int(s) for s in cfg.arch.wdsr.scale_zyx)
    if cfg.arch.kind != "dualgan-3d":
        raise ConfigError(f"train_dualgan_3d needs arch.kind 'dualgan-3d', got {cfg.arch.kind!r}")
    sampler = ZsrSampler(dc, scale, device)  # checks the factor before the run folder is made  # type: ignore[arg-type]
    sz = sampler.sz
    out = prepare_run_dir(out_dir, resume)
    last = out / "last.pt"
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)

    # ---- seeds, data (a bank of LR and HR phantoms; a held-out paired scene for validation)
    np_rng, py_rng = seed_everything(tc.seed)
    sampler.build()
    lr_v, hr_v = scene_pair(dc.phantom_seed_offset - 1, dc, sz, min(VAL_SIDE, dc.phantom_side))
    val_lr = torch.from_numpy(to_unit(lr_v))[None, None].to(device)
    val_hr = torch.from_numpy(to_unit(hr_v))[None, None].to(device)
    val_lin = linear_upsample_z(val_lr, sz)
    val_l1_linear = float((val_lin - val_hr).abs().mean())

    # ---- networks, optimisers, schedules
    w = cfg.arch.wdsr
    nets: dict[str, torch.nn.Module] = {"g_s": build_wdsr_generator(w), "g_b": build_degrader(w),
                                        "d_hr": build_critic(w), "d_lr": build_critic(w)}
    for m in nets.values():
        m.to(device).train()
    g, f, d_hr, d_lr = nets["g_s"], nets["g_b"], nets["d_hr"], nets["d_lr"]
    opts: dict[str, Any] = {
        "g": torch.optim.Adam(itertools.chain(g.parameters(), f.parameters()), lr=dc.lr_g, betas=dc.betas_g),
        "d": torch.optim.RMSprop(itertools.chain(d_hr.parameters(), d_lr.parameters()), lr=dc.lr_critic)}
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for k, o in opts.items()}
    margin = aligned_margin(cfg)

    def checkpoint() -> dict[str, Any]:
        ck = _checkpoint(cfg, step, nets, opts, scheds, _rng_state(np_rng, py_rng, device), margin)
        ck["scale_zyx"] = list(scale)
        return ck

    step = 0
    if resume:
        ck = restore_training(last, cfg, nets, opts, scheds, np_rng, py_rng, device)
        step = resumed_step(ck, last)
    log_f, writer = open_log(out, cfg, resume, LOG_FIELDS)
    log_path = out / "train_log.csv"

    def validate(path: Path | None) -> float:
        g.eval()
        with torch.inference_mode():
            y = g(val_lr).float()
        g.train()
        if path is not None:
            _val_image(val_lr, y, val_lin, val_hr, sz, dc.z_step_um / sz, path, f"dualgan-3d step {step}")
        return float((y - val_hr).abs().mean())

    def set_critics(flag: bool) -> None:
        for p in itertools.chain(d_hr.parameters(), d_lr.parameters()):
            p.requires_grad_(flag)

    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    stopped_by = "max_steps"
    deadline = None if tc.max_minutes is None else t_start + 60.0 * tc.max_minutes
    acc: dict[str, float] = {}
    n_acc = 0
    try:
        while step < tc.max_steps:
            # ---- critics
            set_critics(True)
            for _ in range(dc.n_critic):
                lr, hr = sampler.sample(np_rng, tc.batch_size)
                alpha = torch.from_numpy(np_rng.uniform(size=(2, tc.batch_size)).astype(np.float32)).to(device)
                with torch.no_grad():
                    fake_hr, fake_lr = g(lr), f(hr)
                opts["d"].zero_grad(set_to_none=True)
                w_hr = critic_score(d_hr, hr).mean() - critic_score(d_hr, fake_hr).mean()
                w_lr = critic_score(d_lr, lr).mean() - critic_score(d_lr, fake_lr).mean()
                gp = gradient_penalty(d_hr, hr, fake_hr, alpha[0]) + gradient_penalty(d_lr, lr, fake_lr, alpha[1])
                loss_d = -w_hr - w_lr + dc.lambda_gp * gp
                loss_d.backward()
                opts["d"].step()

            # ---- generators (on the last critic batch)
            set_critics(False)
            opts["g"].zero_grad(set_to_none=True)
            fake_hr, fake_lr = g(lr), f(hr)
            adv = -critic_score(d_hr, fake_hr).mean() - critic_score(d_lr, fake_lr).mean()
            cyc_lr = (f(fake_hr) - lr).abs().mean()
            cyc_hr = (g(fake_lr) - hr).abs().mean()
            loss = dc.lambda_adv * adv + dc.lambda_cycle * (cyc_lr + cyc_hr)
            loss.backward()
            opts["g"].step()
            for s in scheds.values():
                s.step()
            step += 1
            bar.update(1)

            terms = {"g_total": loss, "adv": adv, "cycle": cyc_lr + cyc_hr, "cycle_lr": cyc_lr, "cycle_hr": cyc_hr,
                     "d_total": loss_d, "d_hr": -w_hr, "d_lr": -w_lr, "gp": gp, "wdist_hr": w_hr, "wdist_lr": w_lr}
            for k, v in terms.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            n_acc += 1
            if step % tc.log_every == 0 or step == tc.max_steps:
                row: dict[str, Any] = {k: v / n_acc for k, v in acc.items()}
                row.update(step=step, time_s=round(time.monotonic() - t_start, 2), lr_g=float(scheds["g"].get_last_lr()[0]),
                           val_l1_linear=val_l1_linear)
                if step % tc.image_every == 0:
                    row["val_l1"] = validate(out / f"val_{step:07d}.png")
                writer.writerow(row)
                log_f.flush()
                bar.set_postfix(cyc=f"{row['cycle']:.4f}", w_hr=f"{row['wdist_hr']:.3f}")
                acc, n_acc = {}, 0
            if step % tc.ckpt_every == 0:
                save_checkpoint(checkpoint(), last)
            if deadline is not None and time.monotonic() > deadline:
                stopped_by = "max_minutes"
                break
    finally:
        bar.close()
        log_f.close()

    save_checkpoint(checkpoint(), last)
    validate(out / f"val_{step:07d}.png")
    inf = export_generator(last, out / "g_s.pt")
    return TrainResult(out, step, last, inf, log_path, time.monotonic() - t_start, stopped_by)


@torch.no_grad()
def _val_image(lr: torch.Tensor, y: torch.Tensor, lin: torch.Tensor, truth: torch.Tensor, sz: int, aspect: float,
               path: Path, title: str) -> None:
    """x-z views at the middle row (z down; `aspect` = fine z step / pixel): LR input (each plane
    repeated sz times), G's output, linear interpolation, the fine-step truth, |output − truth|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = lr.shape[3] // 2
    views = [("LR input (nearest)", lr.repeat_interleave(sz, dim=2)), ("G (dualgan-3d)", y.clamp(-1, 1)),
             ("linear", lin), ("fine-step truth", truth)]
    fig, axes = plt.subplots(1, len(views) + 1, figsize=(3.2 * (len(views) + 1), 3.6))
    for ax, (name, v) in zip(axes, views, strict=False):
        ax.imshow(v[0, 0, :, h, :].float().cpu().numpy(), cmap="gray", vmin=-1, vmax=1, aspect=aspect,
                  interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    err = (y - truth)[0, 0, :, h, :].abs().float().cpu().numpy()
    axes[-1].imshow(err, cmap="magma", vmin=0, vmax=0.1, aspect=aspect, interpolation="nearest")
    axes[-1].set_title(f"|G − truth| (0..0.1), mean {err.mean():.4f}", fontsize=8)
    axes[-1].axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
