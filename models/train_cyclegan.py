"""The `cyclegan-2d` training loop (COMI, Zhang et al.: out-of-focus correction by a CycleGAN, plane by
plane; `zse train` calls it through `zse.models.train.train` when `arch.kind` is "cyclegan-2d"). One file,
one loop, read top to bottom; the losses are `CycleGANConfig`'s (see its docstring).

Per step (unpaired, 2D):
    x = one random plane of each of N random training stacks (blurred, any depth), cropped to crop_yx
    y = N in-focus patches (`data.reals`: trainA2D, brightness-matched with "files-matched")
    fake_s = G_S(x); rec_x = G_B(fake_s); fake_b = G_B(y); rec_y = G_S(fake_b)
    generators: L_G (adversarial, VGG content, cycle, identity), one Adam step for G_S and G_B together
    discriminators: D_S (in-focus: y vs fake_s), D_B (blurred: x vs fake_b), LSGAN, one Adam step
G_S and G_B are `PlanewiseGenerator`s (zse.models.networks.resnet2d): the loop calls their 2D `.net`; the
checkpoint stores the planewise module, so G_S runs on (N, 1, Z, Y, X) tiles in the pipeline.
Outputs in OUT (as the other loops): train_log.csv, val_XXXXXXX.png (orthogonal views of a held-out
stack, input above G_S's output, every `image_every` steps and at the end), last.pt (networks,
optimisers, schedules, RNG states, every `ckpt_every` steps and at the end), g_s.pt (the inference
checkpoint), config.yaml. `val_change` in the log: mean |G_S(v) − v| over the held-out stack.
`resume=True` restores everything: on CPU, N steps straight and N/2 + resume + N/2 give identical weights.
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

from zse.models.checkpoint import export_generator, save_checkpoint
from zse.models.config import Config
from zse.models.data import RoiDataset
from zse.models.losses import lsgan_discriminator, lsgan_generator
from zse.models.networks import build_discriminator, build_enhancer
from zse.models.train_physics import _checkpoint, aligned_margin

LOG_FIELDS = ["step", "time_s", "lr_g", "g_total", "adv", "content", "cycle", "identity", "d_total", "d_s", "d_b",
              "val_change"]


def sample_planes(data: RoiDataset, rng: np.random.Generator, batch: int, *, crop: int | None, flips: bool,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One unpaired batch drawn with `rng`: x (N, 1, Y, X) one random plane of each of N random training
    stacks, y (N, 1, Y, X) in-focus patches; float32 in [-1, 1], cropped to `crop`."""
    stacks, y, _ = data.sample(rng, batch, crop=crop, flips=flips, device=device)
    planes = torch.as_tensor(rng.integers(0, stacks.shape[2], batch), device=stacks.device)
    x = stacks[torch.arange(batch, device=stacks.device), :, planes]  # (N, 1, Y, X)
    return x.contiguous(), y


def _distance(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a.float() - b.float())
    return d.abs().mean() if kind == "l1" else (d * d).mean()


def train_cyclegan_2d(cfg: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                      data: RoiDataset | None = None) -> Any:
    """Train `cyclegan-2d` with `cfg` into `out_dir`; returns a `zse.models.train.TrainResult`.

    Raises: InputError (dataset), ConfigError (device, options, resume with another config), ModelError
    (VGG weights missing or unsafe, damaged resume checkpoint).
    """
    from zse.models.train import (
        TrainResult,
        _lr_lambda,
        _rng_state,
        open_log,
        orthoview_png,
        prepare_run_dir,
        resolve_device,
        restore_training,
        resumed_step,
        seed_everything,
    )

    t_start = time.monotonic()
    device = resolve_device(cfg.train.device)
    tc, cc, oc = cfg.train, cfg.cyclegan, cfg.optim
    vgg = None
    if cc.needs_vgg:  # before the run folder is made: a missing file is one line and leaves nothing behind
        from zse.models.networks.vgg import load_vgg19_features

        vgg = load_vgg19_features(cc.vgg_weights, cc.vgg_layer, setting="cyclegan.vgg_weights").to(device)
    out = prepare_run_dir(out_dir, resume)
    last = out / "last.pt"
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)
    crop = cfg.data.crop_yx or tc.tile_yx

    # ---- seeds and data
    np_rng, py_rng = seed_everything(tc.seed)
    if data is None:
        data = RoiDataset.load(cfg.data.path, z_planes=cfg.data.z_planes, val_fraction=cfg.data.val_fraction,
                               split_seed=cfg.data.split_seed)
    if cfg.data.reals == "sharpest-plane":
        data = data.with_sharpest_plane_reals()
    elif cfg.data.reals == "files-matched":
        data = data.with_matched_reals()
    if cfg.data.to_device:
        data = data.to(device)
    val_x = data.fixed_val(device)

    # ---- networks, optimisers, schedules
    nets = {"g_s": build_enhancer(cfg.arch), "g_b": build_enhancer(cfg.arch),
            "d_s": build_discriminator(cfg.arch.discriminator), "d_b": build_discriminator(cfg.arch.discriminator)}
    for m in nets.values():
        m.to(device).train()
    g_s, g_b = nets["g_s"].net, nets["g_b"].net  # the 2D networks inside the planewise wrappers
    d_s, d_b = nets["d_s"], nets["d_b"]
    opts = {"g": torch.optim.Adam(itertools.chain(g_s.parameters(), g_b.parameters()), lr=oc.lr_g, betas=oc.betas,
                                  weight_decay=oc.weight_decay),
            "d": torch.optim.Adam(itertools.chain(d_s.parameters(), d_b.parameters()), lr=oc.lr_d, betas=oc.betas,
                                  weight_decay=oc.weight_decay)}
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for k, o in opts.items()}
    margin = aligned_margin(cfg)

    step = 0
    if resume:
        ck = restore_training(last, cfg, nets, opts, scheds, np_rng, py_rng, device)
        step = resumed_step(ck, last)
    log_f, writer = open_log(out, cfg, resume, LOG_FIELDS)
    log_path = out / "train_log.csv"

    def content_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        from zse.models.networks.vgg import vgg_loss_2d

        assert vgg is not None
        return vgg_loss_2d(vgg, a, b, cc.distance)

    def val_image(path: Path) -> float:
        nets["g_s"].eval()
        with torch.inference_mode():
            y = nets["g_s"](val_x).float()
        nets["g_s"].train()
        orthoview_png(val_x, y.clamp(-1, 1), path, title=f"cyclegan-2d step {step}")
        return float((y - val_x).abs().mean())

    amp = tc.amp == "bf16"
    autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    stopped_by = "max_steps"
    deadline = None if tc.max_minutes is None else t_start + 60.0 * tc.max_minutes
    acc: dict[str, float] = {}
    n_acc = 0
    try:
        while step < tc.max_steps:
            x, y = sample_planes(data, np_rng, tc.batch_size, crop=crop, flips=cfg.data.flips, device=device)

            # ---- generators
            for p in itertools.chain(d_s.parameters(), d_b.parameters()):
                p.requires_grad_(False)
            opts["g"].zero_grad(set_to_none=True)
            with autocast():
                fake_s, fake_b = g_s(x), g_b(y)
                rec_x, rec_y = g_b(fake_s), g_s(fake_b)
                adv = lsgan_generator(d_s(fake_s)) + lsgan_generator(d_b(fake_b))
                zero = adv.new_zeros(())
                content = content_of(fake_s, x) + content_of(fake_b, y) if cc.lambda_content > 0 else zero
                if cc.cycle_space == "vgg" and cc.lambda_cycle > 0:
                    cycle = content_of(rec_x, x) + content_of(rec_y, y)
                else:
                    cycle = _distance(cc.distance, rec_x, x) + _distance(cc.distance, rec_y, y)
                identity = (_distance(cc.distance, g_s(y), y) + _distance(cc.distance, g_b(x), x)
                            if cc.lambda_identity > 0 else zero)
                loss = (cc.lambda_adv * adv + cc.lambda_content * content + cc.lambda_cycle * cycle
                        + cc.lambda_identity * identity)
            loss.backward()
            if oc.grad_clip:
                torch.nn.utils.clip_grad_norm_(itertools.chain(g_s.parameters(), g_b.parameters()), oc.grad_clip)
            opts["g"].step()

            # ---- discriminators
            for p in itertools.chain(d_s.parameters(), d_b.parameters()):
                p.requires_grad_(True)
            opts["d"].zero_grad(set_to_none=True)
            with autocast():
                l_ds = lsgan_discriminator(d_s(y), d_s(fake_s.detach()))
                l_db = lsgan_discriminator(d_b(x), d_b(fake_b.detach()))
                loss_d = l_ds + l_db
            loss_d.backward()
            if oc.grad_clip:
                torch.nn.utils.clip_grad_norm_(itertools.chain(d_s.parameters(), d_b.parameters()), oc.grad_clip)
            opts["d"].step()
            for s in scheds.values():
                s.step()
            step += 1
            bar.update(1)

            terms = {"g_total": loss, "adv": adv, "content": content, "cycle": cycle, "identity": identity,
                     "d_total": loss_d, "d_s": l_ds, "d_b": l_db}
            for k, v in terms.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            n_acc += 1
            if step % tc.log_every == 0 or step == tc.max_steps:
                row: dict[str, Any] = {k: v / n_acc for k, v in acc.items()}
                row.update(step=step, time_s=round(time.monotonic() - t_start, 2), lr_g=float(scheds["g"].get_last_lr()[0]))
                if step % tc.image_every == 0:
                    row["val_change"] = val_image(out / f"val_{step:07d}.png")
                writer.writerow(row)
                log_f.flush()
                bar.set_postfix(adv=f"{row['adv']:.3f}", cyc=f"{row['cycle']:.3f}", d=f"{row['d_total']:.3f}")
                acc, n_acc = {}, 0
            if step % tc.ckpt_every == 0:
                save_checkpoint(_checkpoint(cfg, step, nets, opts, scheds, _rng_state(np_rng, py_rng, device), margin), last)
            if deadline is not None and time.monotonic() > deadline:
                stopped_by = "max_minutes"
                break
    finally:
        bar.close()
        log_f.close()

    save_checkpoint(_checkpoint(cfg, step, nets, opts, scheds, _rng_state(np_rng, py_rng, device), margin), last)
    val_image(out / f"val_{step:07d}.png")
    inf = export_generator(last, out / "g_s.pt")
    return TrainResult(out, step, last, inf, log_path, time.monotonic() - t_start, stopped_by)
