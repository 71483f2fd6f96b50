"""The `unet3d-gan` training loop (WFCON's 3D U-Net GAN recipe adapted; `zse train` calls it through
`zse.models.train.train` when `arch.kind` is "unet3d-gan"). One file, one loop, read top to bottom.

Per step:
    x_syn, t_syn = pairs.sample()                 synthetic blurred z-scan and its optical-section truth
    y_syn = G(x_syn); L = λ_l1·L1(y_syn, t_syn) [+ λ_vgg·VGG(y_syn, t_syn)]
    from `physics.finetune_start` on, also a real training stack x_r:
        y_r = G(x_r); k = sharpest plane of x_r; i = a plane within ±adv_half_planes of k
        L += λ_adv·½·MSE(D(y_r[z=i]), 1) + λ_keep·L1(HP(y_r[z=k]), HP(x_r[z=k]))
        D: ½·[MSE(D(real in-focus plane), 1) + MSE(D(y_r[z=i]), 0)]   (its own Adam step)
Outputs in OUT (as ZSE-GAN's loop): train_log.csv, val_XXXXXXX.png (a held-out real stack and a
synthetic validation pair, input / output / truth), last.pt, g_s.pt (the generator; the key is shared
with ZSE-GAN's G_S so every checkpoint reader works unchanged), config.yaml.
Validation (`val_l1`, `val_ssim_gain` in the log): a fixed batch of 8 synthetic pairs drawn from the seed
+ 1 stream, L1 to the truth and the mean SSIM gain over the input on planes where the truth has tissue.
At `finetune_start` the weights are also exported as supervised.pt (the end of the supervised phase).
`resume=True` restores networks, optimisers, schedules and RNG states: on CPU, N steps straight and
N/2 + resume + N/2 give identical weights (tested).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import zse
from zse.models.checkpoint import (
    FORMAT,
    NORMALISATION,
    VERSION,
    export_generator,
    save_checkpoint,
)
from zse.models.config import Config
from zse.models.data import RoiDataset
from zse.models.losses import (
    in_slice_planes,
    keep_loss,
    lsgan_discriminator,
    lsgan_generator,
    supervised_l1,
    take_planes,
)
from zse.models.networks import (
    build_discriminator,
    build_enhancer,
    enhancer_is_equivariant,
    enhancer_radius_yx,
)
from zse.models.pairs import PairSynthesiser, content_pool

LOG_FIELDS = ["step", "time_s", "lr_g", "g_total", "l1", "vgg", "adv", "keep", "d_total", "val_l1", "val_ssim_gain"]


def aligned_margin(cfg: Config) -> int:
    """The generator's receptive radius rounded up to a multiple of its down-sampling period, so tiles
    that start on the lattice keep the network's stride phases: the margin a checkpoint declares."""
    from zse.pipeline.run import phase_aligned

    period = 2 ** (len(cfg.arch.unet.widths) - 1) if cfg.arch.kind == "unet3d-gan" else 4
    return phase_aligned(enhancer_radius_yx(cfg.arch), max(period, 4))


def _checkpoint(cfg: Config, step: int, nets: dict[str, torch.nn.Module], opts: dict[str, Any], scheds: dict[str, Any],
                rng: dict[str, Any], margin: int) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "kind": "training", "model_kind": cfg.arch.name,
        "arch": cfg.arch.model_dump(mode="json"), "config": cfg.model_dump(mode="json"), "normalisation": NORMALISATION,
        "tile": {"z": cfg.data.z_planes, "yx": cfg.train.tile_yx}, "margin_px": margin,
        "translation_equivariant": enhancer_is_equivariant(cfg.arch), "zse_version": zse.__version__, "step": step,
        "state": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in nets.items()},
        "optim": {k: o.state_dict() for k, o in opts.items()},
        "sched": {k: s.state_dict() for k, s in scheds.items()},
        "rng": rng,
    }


def train_unet3d_gan(cfg: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                     data: RoiDataset | None = None) -> Any:
    """Train `unet3d-gan` with `cfg` into `out_dir`; returns a `zse.models.train.TrainResult`.

    Raises: InputError (dataset), ConfigError (device, options, resume with another config), ModelError
    (VGG weights missing or unsafe).
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
    out = prepare_run_dir(out_dir, resume)
    last = out / "last.pt"
    tc, pc, oc = cfg.train, cfg.physics, cfg.optim
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)
    crop = cfg.data.crop_yx or tc.tile_yx

    # ---- seeds, data, pair synthesiser
    np_rng, py_rng = seed_everything(tc.seed)
    if data is None:
        data = RoiDataset.load(cfg.data.path, z_planes=cfg.data.z_planes, val_fraction=cfg.data.val_fraction,
                               split_seed=cfg.data.split_seed)
    files = data.sharp2d.cpu().numpy()
    data = data.with_sharpest_plane_reals()  # D's reals: the training stacks' own sharpest planes
    pool = content_pool(data.sharp2d.cpu().numpy(), files)
    pairs = PairSynthesiser(cfg.data.pairs, cfg.data.z_planes, crop, pool, device).build(tc.seed)
    if cfg.data.to_device:
        data = data.to(device)
    val_real = data.fixed_val(device)
    val_x, val_t = pairs.sample(np.random.default_rng(tc.seed + 1), 8)

    vgg = None
    if pc.lambda_vgg > 0:
        from zse.models.networks.vgg import load_vgg19_features

        vgg = load_vgg19_features(pc.vgg_weights, pc.vgg_layer).to(device)

    # ---- networks, optimisers, schedules
    nets = {"g_s": build_enhancer(cfg.arch), "d": build_discriminator(cfg.arch.discriminator)}
    for m in nets.values():
        m.to(device).train()
    g, d = nets["g_s"], nets["d"]
    opts = {"g": torch.optim.Adam(g.parameters(), lr=oc.lr_g, betas=oc.betas, weight_decay=oc.weight_decay),
            "d": torch.optim.Adam(d.parameters(), lr=oc.lr_d, betas=oc.betas, weight_decay=oc.weight_decay)}
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for k, o in opts.items()}
    margin = aligned_margin(cfg)

    step = 0
    if resume:
        ck = restore_training(last, cfg, nets, opts, scheds, np_rng, py_rng, device)
        step = resumed_step(ck, last)
    log_f, writer = open_log(out, cfg, resume, LOG_FIELDS)
    log_path = out / "train_log.csv"

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
            finetune = pc.finetune_start is not None and step >= pc.finetune_start
            if finetune and step == pc.finetune_start and step > 0:
                # the end of the supervised phase, kept for comparison with the fine-tuned weights
                save_checkpoint(_checkpoint(cfg, step, nets, opts, scheds, _rng_state(np_rng, py_rng, device), margin), last)
                export_generator(last, out / "supervised.pt")
            x_syn, t_syn = pairs.sample(np_rng, tc.batch_size)

            # ---- generator
            for p in d.parameters():
                p.requires_grad_(False)
            opts["g"].zero_grad(set_to_none=True)
            with autocast():
                y_syn = g(x_syn)
                l1 = supervised_l1(y_syn, t_syn)
                loss = pc.lambda_l1 * l1
                terms = {"l1": l1.detach()}
                if vgg is not None:
                    from zse.models.networks.vgg import vgg_loss

                    lv = vgg_loss(vgg, y_syn, t_syn)
                    loss = loss + pc.lambda_vgg * lv
                    terms["vgg"] = lv.detach()
                if finetune:
                    x_r, y_real, _ = data.sample(np_rng, tc.batch_size, crop=crop, flips=cfg.data.flips, device=device)
                    y_r = g(x_r)
                    k, i = in_slice_planes(x_r, pc.adv_half_planes, py_rng)
                    fake_plane = take_planes(y_r, i)
                    adv = lsgan_generator(d(fake_plane))
                    keep = keep_loss(take_planes(y_r, k), take_planes(x_r, k), pc.keep_sigma)
                    loss = loss + pc.lambda_adv * adv + pc.lambda_keep * keep
                    terms.update(adv=adv.detach(), keep=keep.detach())
            loss.backward()
            if oc.grad_clip:
                torch.nn.utils.clip_grad_norm_(g.parameters(), oc.grad_clip)
            opts["g"].step()

            # ---- discriminator (real-data phase only)
            if finetune:
                for p in d.parameters():
                    p.requires_grad_(True)
                opts["d"].zero_grad(set_to_none=True)
                with autocast():
                    ld = lsgan_discriminator(d(y_real), d(fake_plane.detach().float()))
                ld.backward()
                opts["d"].step()
                terms["d_total"] = ld.detach()
            with warnings.catch_warnings():  # D's schedule follows the global step, also while D is idle
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                for s in scheds.values():
                    s.step()
            step += 1
            bar.update(1)
            terms["g_total"] = loss.detach()
            for key, v in terms.items():
                acc[key] = acc.get(key, 0.0) + float(v)
            n_acc += 1
            if step % tc.log_every == 0 or step == tc.max_steps:
                row: dict[str, Any] = {key: v / n_acc for key, v in acc.items()}
                row.update(step=step, time_s=round(time.monotonic() - t_start, 2), lr_g=float(scheds["g"].get_last_lr()[0]))
                if step % tc.image_every == 0:
                    row.update(_validate(g, val_x, val_t))
                    _val_image(g, val_real, val_x[:1], val_t[:1], out / f"val_{step:07d}.png", step)
                writer.writerow(row)
                log_f.flush()
                bar.set_postfix(l1=f"{row.get('l1', 0):.4f}", adv=f"{row.get('adv', 0):.3f}")
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
    _val_image(g, val_real, val_x[:1], val_t[:1], out / f"val_{step:07d}.png", step)
    inf = export_generator(last, out / "g_s.pt")
    return TrainResult(out, step, last, inf, log_path, time.monotonic() - t_start, stopped_by)


@torch.no_grad()
def _validate(g: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
    """L1 to the truth and mean SSIM gain over the input on the fixed synthetic validation batch."""
    from zse.models.metrics import ssim

    g.eval()
    y = torch.cat([g(x[i : i + 1]) for i in range(x.shape[0])]).clamp(-1, 1)
    g.train()
    gains = []
    for n in range(x.shape[0]):
        for zi in range(0, x.shape[2], 2):
            tt = t[n, 0, zi].cpu().numpy()
            if tt.std() < 0.02:  # an empty plane: SSIM to a flat truth rewards smoothness, not faithfulness
                continue
            gains.append(ssim(y[n, 0, zi].cpu().numpy(), tt, data_range=2.0) - ssim(x[n, 0, zi].cpu().numpy(), tt, data_range=2.0))
    return {"val_l1": float((y - t).abs().mean()), "val_ssim_gain": float(np.mean(gains))}


@torch.no_grad()
def _val_image(g: torch.nn.Module, real: torch.Tensor, x: torch.Tensor, t: torch.Tensor, path: Path, step: int) -> None:
    """Orthogonal views: a held-out real stack (input, output) and a synthetic pair (input, output, truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zse.models.losses import plane_sharpness

    g.eval()
    rows = [("real input", real), ("real output", g(real).clamp(-1, 1)), ("synthetic input", x),
            ("synthetic output", g(x).clamp(-1, 1)), ("synthetic truth", t)]
    g.train()
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 2.6 * len(rows)),
                             gridspec_kw={"width_ratios": [1, 1, 1]})
    for r, (name, v) in enumerate(rows):
        vol = v[0, 0].float().cpu().numpy()
        src = real if r < 2 else x
        k = int(plane_sharpness(src.float().cpu()).argmax())
        h = vol.shape[1] // 2
        for c, (title, img) in enumerate(((f"xy z={k}", vol[k]), ("xy z=0", vol[0]), (f"xz y={h} (z ×1.4)", vol[:, h, :]))):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=-1, vmax=1, aspect=1.4 if c == 2 else "equal", interpolation="nearest")
            ax.set_title(f"{name}: {title}", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"unet3d-gan step {step}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
