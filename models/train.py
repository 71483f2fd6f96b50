"""The ZSE-GAN training loop: one file, one loop; every variant is a config value.

Per step (batch of N blurred stacks x, in-focus patches y*, in-focus vertical crops y29):
    fake = G_S(x); rec = G_B(fake); idt_b = G_B(x); idt_s = G_S(fake)
    generators: L_G (losses.generator_loss), one Adam step for G_S and G_B together
    discriminators: fakes through the image pools, L_D (losses.discriminator_loss), one Adam step
Outputs in OUT: train_log.csv (losses per `log_every` steps), val_XXXXXXX.png (orthogonal views of a
fixed validation ROI, input beside output), last.pt (training checkpoint every `ckpt_every` steps
and at the end), g_s.pt (inference checkpoint, G_S only) at the end, config.yaml.
`resume=True` restores networks, optimisers, schedulers, pools and all RNG states from last.pt: on
CPU, N steps straight and N/2 + resume + N/2 give identical weights. Without `resume`, a folder that
already holds a run (`RUN_FILES`) is refused rather than overwritten (`prepare_run_dir`).

Length (~410 lines): one loop, readable top to bottom (nanoGPT's rule), rather than split into callbacks.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

import zse
from zse.errors import ConfigError, InputError, ModelError, OutputError
from zse.models.checkpoint import (
    FORMAT,
    NORMALISATION,
    VERSION,
    export_generator,
    load_checkpoint,
    save_checkpoint,
)
from zse.models.config import Config, config_sections_differ
from zse.models.data import RoiDataset
from zse.models.losses import Draws, ImagePool, discriminator_loss, generator_loss, plane_weights
from zse.models.networks.discriminators import build_discriminator
from zse.models.networks.generators import build_generator, structural_radius_yx

LOG_FIELDS = ["step", "time_s", "lr_g", "g_total", "g_adv_b", "g_adv_s_xy", "g_adv_s_vert", "g_cycle", "g_identity",
              "g_fidelity", "d_total", "d_s", "d_b"]


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    last_checkpoint: Path
    inference_checkpoint: Path | None
    log: Path
    seconds: float
    stopped_by: str  # "max_steps" | "max_minutes"


RUN_FILES = ("last.pt", "g_s.pt", "train_log.csv", "config.yaml")
"""Files a training run writes into its folder; any of them present means the folder holds a run."""


def prepare_run_dir(out_dir: str | Path, resume: bool) -> Path:
    """Create the run folder for a new run, or check it holds a checkpoint for `resume`.

    Raises:
        OutputError: OUT is a file, cannot be created, or (without `resume`) already holds a run, which
            a new run would overwrite.
        InputError: `resume` without OUT/last.pt.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"the run folder {out} is a file; choose a folder with --out")
    if resume:
        if not (out / "last.pt").is_file():
            raise InputError(f"--resume: no checkpoint {out / 'last.pt'} to resume from")
        return out
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held:
        raise OutputError(f"{out} already holds a training run ({', '.join(held)}); pass --resume to continue it, or "
                          "choose another --out (or run name) for a new run")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    return out


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N'; ConfigError if CUDA is asked for but absent."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here (use --device cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"device {device!r} not supported; valid: cpu, cuda, cuda:N")
    return torch.device(device)


def _rng_state(np_rng: np.random.Generator, py_rng: random.Random, device: torch.device) -> dict[str, Any]:
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_gen": np_rng.bit_generator.state,
        "python_gen": list(py_rng.getstate()[1]) + [py_rng.getstate()[0]],
        "python_global": list(random.getstate()[1]) + [random.getstate()[0]],
    }
    g: Any = np.random.get_state()  # noqa: NPY002 (global state, saved for libraries that use it)
    st["numpy_global"] = {"keys": torch.from_numpy(g[1].astype(np.int64)), "pos": int(g[2]), "has_gauss": int(g[3]),
                          "cached_gaussian": float(g[4])}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any], np_rng: np.random.Generator, py_rng: random.Random, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    np_rng.bit_generator.state = st["numpy_gen"]
    pg = st["python_gen"]
    py_rng.setstate((pg[-1], tuple(pg[:-1]), None))
    pg = st["python_global"]
    random.setstate((pg[-1], tuple(pg[:-1]), None))
    g = st["numpy_global"]
    keys = g["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, g["pos"], g["has_gauss"], g["cached_gaussian"]))  # noqa: NPY002
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state_all(st["cuda"])


def seed_everything(seed: int) -> tuple[np.random.Generator, random.Random]:
    """Seed torch, Python and numpy's global generators; return the loop's own numpy and Python generators."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    return np.random.default_rng(seed), random.Random(seed)


def restore_training(last: Path, cfg: Config, nets: dict[str, torch.nn.Module], opts: dict[str, Any],
                     scheds: dict[str, Any], np_rng: np.random.Generator, py_rng: random.Random,
                     device: torch.device) -> dict[str, Any]:
    """Load `last` into networks, optimisers, schedules and RNGs for `--resume` (refusing a checkpoint
    trained with another configuration, `train.*` aside); returns the checkpoint dict."""
    ck = load_checkpoint(last, map_location="cpu")
    if ck.get("kind") != "training":
        raise ModelError(f"--resume: {last} is an {ck.get('kind')!r} checkpoint, not a training checkpoint (written by "
                         "`zse train` with optimiser and RNG states)")
    recorded = ck.get("config", {})
    diff = config_sections_differ(recorded if isinstance(recorded, dict) else {}, cfg)
    if diff:
        raise ConfigError(f"--resume: {last} was trained with a different configuration (sections differ: {', '.join(diff)})")
    try:
        for k, m in nets.items():
            m.load_state_dict(ck["state"][k])
        for k, o in opts.items():
            o.load_state_dict(ck["optim"][k])
        for k, s in scheds.items():
            s.load_state_dict(ck["sched"][k])
        _set_rng_state(ck["rng"], np_rng, py_rng, device)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as exc:
        raise ModelError(f"--resume: {last} cannot be resumed from ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]}); it is damaged or not written by this zse") from None
    return ck


def resumed_step(ck: dict[str, Any], last: Path) -> int:
    """The step count of a training checkpoint `ck` read from `last` (ModelError when absent or not an int)."""
    if not isinstance(ck.get("step"), int) or isinstance(ck.get("step"), bool):
        raise ModelError(f"--resume: {last} has no step count (step {ck.get('step')!r}); it is damaged")
    return int(ck["step"])


def open_log(out: Path, cfg: Config, resume: bool, fields: list[str]) -> tuple[Any, csv.DictWriter]:
    """Write OUT/config.yaml and open OUT/train_log.csv (appended to on resume): (file, writer)."""
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log_path = out / "train_log.csv"
    new_log = not (resume and log_path.exists())
    log_f = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.DictWriter(log_f, fieldnames=fields)
    if new_log:
        writer.writeheader()
    return log_f, writer


def _lr_lambda(cfg: Config):
    total = cfg.train.max_steps
    kind, start = cfg.optim.schedule, cfg.optim.decay_start

    def f(step: int) -> float:
        t = min(step / max(total, 1), 1.0)
        if kind == "constant":
            return 1.0
        if kind == "linear-decay":
            return 1.0 if t < start else max(0.0, 1.0 - (t - start) / max(1.0 - start, 1e-9))
        return 0.5 * (1 + math.cos(math.pi * t))

    return f


def orthoview_png(x: torch.Tensor, y: torch.Tensor, path: Path, title: str = "") -> None:
    """Orthogonal views of one stack, input (top) beside output (bottom): xy at the focal plane
    (sharpest input plane), xy at the outer plane 0, xz at the middle row, yz at the middle column.
    x, y: (1, 1, Z, Y, X) in [-1, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zse.models.losses import plane_sharpness

    xv, yv = x[0, 0].float().cpu().numpy(), y[0, 0].float().cpu().numpy()
    z, h, w = xv.shape
    focal = int(plane_sharpness(x.float().cpu()).argmax())
    views = [(f"xy focal z={focal}", lambda v: v[focal]), ("xy outer z=0", lambda v: v[0]),
             (f"xz y={h // 2}", lambda v: v[:, h // 2, :]), (f"yz x={w // 2}", lambda v: v[:, :, w // 2].T)]
    fig, axes = plt.subplots(2, 4, figsize=(14, 7), gridspec_kw={"width_ratios": [1, 1, 1, max(z / h, 0.25)]})
    for row, (vol, lab) in enumerate(((xv, "input"), (yv, "G_S"))):
        for col, (name, fn) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(fn(vol), cmap="gray", vmin=-1, vmax=1, aspect="equal", interpolation="nearest")
            ax.set_title(f"{lab}: {name}", fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _checkpoint_dict(cfg: Config, step: int, nets: dict[str, torch.nn.Module], opts: dict[str, Any], scheds: dict[str, Any],
                     pools: dict[str, ImagePool], rng: dict[str, Any], margin: int) -> dict[str, Any]:
    g = cfg.arch.generator
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": "training",
        "model_kind": cfg.arch.name,
        "arch": cfg.arch.model_dump(mode="json"),
        "config": cfg.model_dump(mode="json"),
        "normalisation": NORMALISATION,
        "tile": {"z": cfg.data.z_planes, "yx": cfg.train.tile_yx},
        "margin_px": margin,
        "translation_equivariant": g.norm != "instance" and g.res_norm != "instance",
        "zse_version": zse.__version__,
        "step": step,
        "state": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in nets.items()},
        "optim": {k: o.state_dict() for k, o in opts.items()},
        "sched": {k: s.state_dict() for k, s in scheds.items()},
        "pools": {k: p.state_dict() for k, p in pools.items()},
        "rng": rng,
    }


def train(
    cfg: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    data: RoiDataset | None = None,
) -> TrainResult:
    """Train the method of `cfg.arch.kind` (ZSE-GAN here; "unet3d-gan" in `zse.models.train_physics`,
    "dualgan-3d" in `zse.models.train_dualgan`, "cyclegan-2d" in `zse.models.train_cyclegan`)
    with `cfg` (device, steps, time limit from cfg.train) writing into `out_dir`.

    Raises:
        InputError: dataset problems; ConfigError: bad device/options; ModelError: unusable resume
        checkpoint.
    """
    if cfg.arch.kind == "unet3d-gan":
        from zse.models.train_physics import train_unet3d_gan

        return train_unet3d_gan(cfg, out_dir, resume=resume, progress=progress, data=data)  # type: ignore[no-any-return]
    if cfg.arch.kind == "dualgan-3d":
        from zse.models.train_dualgan import train_dualgan_3d

        return train_dualgan_3d(cfg, out_dir, resume=resume, progress=progress)  # type: ignore[no-any-return]
    if cfg.arch.kind == "cyclegan-2d":
        from zse.models.train_cyclegan import train_cyclegan_2d

        return train_cyclegan_2d(cfg, out_dir, resume=resume, progress=progress, data=data)  # type: ignore[no-any-return]
    t_start = time.monotonic()
    device = resolve_device(cfg.train.device)
    out = prepare_run_dir(out_dir, resume)
    last = out / "last.pt"
    tc, lc = cfg.train, cfg.loss
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)

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

    # ---- networks, optimisers, schedules, pools
    nets = {"g_s": build_generator(cfg.arch.generator), "g_b": build_generator(cfg.arch.generator),
            "d_s": build_discriminator(cfg.arch.discriminator), "d_b": build_discriminator(cfg.arch.discriminator)}
    for m in nets.values():
        m.to(device).train()
    g_s, g_b, d_s, d_b = nets["g_s"], nets["g_b"], nets["d_s"], nets["d_b"]
    oc = cfg.optim
    def adam(params: Any, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=lr, betas=oc.betas, weight_decay=oc.weight_decay)

    if oc.separate_generators:  # one Adam per generator
        opts = {"g_s": adam(g_s.parameters(), oc.lr_g), "g_b": adam(g_b.parameters(), oc.lr_g)}
    else:  # the notebook: one Adam for both
        opts = {"g": adam(itertools.chain(g_s.parameters(), g_b.parameters()), oc.lr_g)}
    opts["d"] = adam(itertools.chain(d_s.parameters(), d_b.parameters()), oc.lr_d)
    g_opts = [o for k, o in opts.items() if k != "d"]
    scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for k, o in opts.items()}
    pools = {"fake_s": ImagePool(lc.pool_size), "rec_b": ImagePool(lc.pool_size)}
    margin = structural_radius_yx(cfg.arch.generator)

    step = 0
    if resume:
        ck = restore_training(last, cfg, nets, opts, scheds, np_rng, py_rng, device)
        try:
            for k, p in pools.items():
                p.load_state_dict(ck["pools"][k], device)
            step = int(ck["step"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise ModelError(f"--resume: {last} cannot be resumed from (pools or step: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:160]})") from None

    if tc.compile:
        g_s_run: Any = torch.compile(g_s)
        g_b_run: Any = torch.compile(g_b)
    else:
        g_s_run, g_b_run = g_s, g_b
    log_f, writer = open_log(out, cfg, resume, LOG_FIELDS)
    log_path = out / "train_log.csv"

    amp = tc.amp == "bf16"
    autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    z = cfg.data.z_planes
    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    stopped_by = "max_steps"
    deadline = None if tc.max_minutes is None else t_start + 60.0 * tc.max_minutes
    cyc_w = plane_weights(lc.cycle_weights, z, None if lc.cycle_weights.kind != "sharpness" else val_x, cycle=True).to(device)
    acc: dict[str, torch.Tensor] = {}
    alpha_fixed = None if lc.alpha.kind == "sharpness" else plane_weights(lc.alpha, z).to(device)
    n_acc = 0
    try:
        while step < tc.max_steps:
            x, y2d, y29 = data.sample(np_rng, tc.batch_size, crop=cfg.data.crop_yx, flips=cfg.data.flips, device=device)
            alpha = alpha_fixed if alpha_fixed is not None else plane_weights(lc.alpha, z, x).to(device)
            if lc.cycle_weights.kind == "sharpness":
                cyc_w = plane_weights(lc.cycle_weights, z, x, cycle=True).to(device)
            dr = Draws.draw(py_rng, z, x.shape[-2], x.shape[-1])

            # ---- generators
            for p in itertools.chain(d_s.parameters(), d_b.parameters()):
                p.requires_grad_(False)
            for o in g_opts:
                o.zero_grad(set_to_none=True)
            with autocast():
                fake = g_s_run(x)
                rec = g_b_run(fake.detach() if step < lc.cycle_warmup_steps else fake)
                idt_b = g_b_run(x) if lc.lambda_identity > 0 else None  # two generator passes saved when off
                idt_s = g_s_run(fake) if lc.lambda_identity > 0 else None
                loss_g, terms_g = generator_loss(x, fake, rec, idt_b, idt_s, d_s, d_b, lc, alpha, cyc_w, dr)
            loss_g.backward()
            if oc.grad_clip:
                torch.nn.utils.clip_grad_norm_(itertools.chain(g_s.parameters(), g_b.parameters()), oc.grad_clip)
            for o in g_opts:
                o.step()

            # ---- discriminators
            for p in itertools.chain(d_s.parameters(), d_b.parameters()):
                p.requires_grad_(True)
            fake_p = pools["fake_s"].query(fake.detach().float(), py_rng)
            rec_p = pools["rec_b"].query(rec.detach().float(), py_rng)
            opts["d"].zero_grad(set_to_none=True)
            with autocast():
                loss_d, terms_d = discriminator_loss(x, y2d, y29, fake_p, rec_p, d_s, d_b, lc, alpha, dr)
            loss_d.backward()
            if oc.grad_clip:
                torch.nn.utils.clip_grad_norm_(itertools.chain(d_s.parameters(), d_b.parameters()), oc.grad_clip)
            opts["d"].step()
            for s in scheds.values():
                s.step()
            step += 1
            bar.update(1)

            for k, v in {**terms_g, **terms_d}.items():  # stays on the device: no sync per step
                acc[k] = acc[k] + v if k in acc else v
            n_acc += 1
            if step % tc.log_every == 0 or step == tc.max_steps:
                row = {k: v.item() / n_acc for k, v in acc.items()}
                row.update(step=step, time_s=round(time.monotonic() - t_start, 2), lr_g=float(g_opts[0].param_groups[0]["lr"]))
                writer.writerow(row)
                log_f.flush()
                bar.set_postfix(g=f"{row['g_total']:.3f}", d=f"{row['d_total']:.3f}", cyc=f"{row['g_cycle']:.3f}")
                acc, n_acc = {}, 0
            if step % tc.image_every == 0:
                _val_image(g_s, val_x, out / f"val_{step:07d}.png", step, amp, device)
            if step % tc.ckpt_every == 0:
                rng = _rng_state(np_rng, py_rng, device)
                save_checkpoint(_checkpoint_dict(cfg, step, nets, opts, scheds, pools, rng, margin), last)
            if deadline is not None and time.monotonic() > deadline:
                stopped_by = "max_minutes"
                break
    finally:
        bar.close()
        log_f.close()

    rng = _rng_state(np_rng, py_rng, device)
    save_checkpoint(_checkpoint_dict(cfg, step, nets, opts, scheds, pools, rng, margin), last)
    _val_image(g_s, val_x, out / f"val_{step:07d}.png", step, amp, device)
    inf = export_generator(last, out / "g_s.pt")
    return TrainResult(out, step, last, inf, log_path, time.monotonic() - t_start, stopped_by)


def _val_image(g_s: torch.nn.Module, val_x: torch.Tensor, path: Path, step: int, amp: bool, device: torch.device) -> None:
    was = g_s.training
    g_s.eval()
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        y = g_s(val_x).float()
    g_s.train(was)
    orthoview_png(val_x, y, path, title=f"step {step}")
