"""`zse train CONFIG.yaml`: train ZSE-GAN (G_S, G_B, D_S, D_B) on ROIs in the ZSE-GAN layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("config", metavar="CONFIG")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Output folder (checkpoints, train_log.csv, validation PNGs). Default: runs/<config name>.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt (networks, optimisers, pools, RNG states). "
              "Without it, an OUT that already holds a run is refused, never overwritten.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: the config's train.device).")
@click.option("--data", "data", default=None, help="Dataset folder in the ZSE-GAN layout (overrides data.path).")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (overrides train.max_steps).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock limit; a final checkpoint is still written.")
@click.option("--amp", type=click.Choice(["none", "bf16"]), default=None, help="Mixed precision (overrides train.amp).")
@click.option("--seed", type=int, default=None, help="Overrides train.seed.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any config value, dotted, YAML-parsed (e.g. --set loss.p=0.3 --set arch.generator.n_res=3).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config: str, out: Path | None, resume: bool, device: str | None, data: str | None, max_steps: int | None,
          max_minutes: float | None, amp: str | None, seed: int | None, sets: tuple[str, ...], quiet: bool) -> None:
    """Train from CONFIG (a YAML file or a preset name: notebook, paper, zse-gan).

    Writes OUT/last.pt (training checkpoint, for --resume) and OUT/g_s.pt (inference checkpoint,
    usable as `zse enhance --model OUT/g_s.pt`). The config's `name` (default OUT runs/<name>) must be
    one folder name.
    """
    from zse.errors import ConfigError
    from zse.models.config import load_config
    from zse.models.train import train as run_train
    from zse.yamlfile import parse_yaml_value

    overrides: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. loss.p=0.3)")
        key, value = item.split("=", 1)
        if not key.strip():
            raise ConfigError(f"--set {item!r}: the key is empty; expected KEY=VALUE (e.g. loss.p=0.3)")
        overrides[key.strip()] = parse_yaml_value(value, f"--set {item!r}")
    cli_values: list[tuple[str, Any]] = [("train.device", device), ("data.path", data), ("train.max_steps", max_steps),
                                         ("train.max_minutes", max_minutes), ("train.amp", amp), ("train.seed", seed)]
    for key, value in cli_values:
        if value is not None:
            overrides[key] = value
    cfg = load_config(config, overrides)
    out_dir = out or Path("runs") / cfg.name
    result = run_train(cfg, out_dir, resume=resume, progress=not quiet)
    click.echo(f"trained {result.step} steps in {result.seconds / 60:.1f} min (stopped by {result.stopped_by}); "
               f"checkpoint {result.last_checkpoint}, inference weights {result.inference_checkpoint}")
