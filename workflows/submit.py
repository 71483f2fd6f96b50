"""`zse submit`: enhance a batch of sections with ONE Slurm job (sequential) or job array.

    zse submit SLIDE... --out DIR --model M [--profile P] [--array] [--dry-run]

Renders `zse.deploy/templates/batch.sbatch` (string.Template with every value shell-quoted by
`shlex.quote`, so paths with spaces, `$`, quotes or `;` are safe), saves it as
`DIR/logs/zse-batch-<time>.sbatch`, submits it with `sbatch --parsable` and prints the job id on
stdout. Each section SLIDE becomes `DIR/<name>.ome.zarr` (name = file name without .ome.zarr, .zarr,
.ome.tif(f), .tif(f), ...). Submitting again finishes what is missing (`zse enhance --resume`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from zse import __version__
from zse.errors import ConfigError, InputError, OutputError
from zse.workflows.cluster import load_profile, parse_walltime

_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", ".ndpi", ".czi", ".npz", ".npy")
_SAFE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.:+=,@/\-\[\]%]+$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.:+=,@/\-]+$")


class _Template(string.Template):
    """`@@NAME` placeholders: bash's own `$` and `${...}` stay untouched."""

    delimiter = "@@"
    idpattern = r"[A-Z][A-Z_]*"


def _template_path() -> Path:
    import zse.deploy

    return Path(zse.deploy.__file__).resolve().parent / "templates" / "batch.sbatch"


def section_name(slide: str | os.PathLike[str]) -> str:
    """Output name of a section: the file or folder name without image suffixes."""
    name = Path(str(slide).rstrip("/")).name
    low = name.lower()
    for suffix in _SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _directive(option: str, value: Any) -> str:
    text = str(value)
    if not _SAFE_DIRECTIVE.match(text):
        raise ConfigError(f"{option} {text!r}: only letters, digits and _ . : + = , @ / - [ ] % are allowed in Slurm values")
    return text


def _bash_array(items: Sequence[str], indent: str = "  ") -> str:
    return "\n".join(f"{indent}{shlex.quote(str(item))}" for item in items)


def render_script(
    slides: Sequence[Path],
    outs: Sequence[Path],
    *,
    model: str,
    settings: Mapping[str, Any],
    array: bool,
    enhance_args: Sequence[str],
    log_dir: Path | None,
) -> tuple[str, list[str]]:
    """The sbatch script and the `sbatch` options that could not go into it (paths with odd characters).

    `settings`: merged profile and options (partition, account, walltime, memory, cores, gpus_per_job,
    job_extra_directives, job_script_prologue, zse_command, array_parallelism, job_name).
    """
    lines = [f"#SBATCH --job-name={_directive('--job-name', settings.get('job_name') or 'zse-batch')}"]
    if settings.get("partition"):
        lines.append(f"#SBATCH --partition={_directive('--partition', settings['partition'])}")
    if settings.get("account"):
        lines.append(f"#SBATCH --account={_directive('--account', settings['account'])}")
    if settings.get("walltime"):
        parse_walltime(settings["walltime"])
        lines.append(f"#SBATCH --time={_directive('--walltime', settings['walltime'])}")
    if settings.get("memory"):
        lines.append(f"#SBATCH --mem={_directive('--memory', settings['memory'])}")
    lines.append(f"#SBATCH --cpus-per-task={int(settings.get('cores') or 1)}")
    lines.append("#SBATCH --nodes=1")
    lines.append("#SBATCH --ntasks=1")
    if settings.get("gpus_per_job"):
        lines.append(f"#SBATCH --gres=gpu:{int(settings['gpus_per_job'])}")
    if settings.get("requeue"):
        lines.append("#SBATCH --requeue")
    lines.append("#SBATCH --open-mode=append")
    if array:
        limit = settings.get("array_parallelism")
        spec = f"0-{len(slides) - 1}" + (f"%{int(limit)}" if limit else "")
        lines.append(f"#SBATCH --array={spec}")
    for extra in settings.get("job_extra_directives") or []:
        text = str(extra)
        if "\n" in text or "\r" in text:
            raise ConfigError(f"job_extra_directives {text!r}: one directive per entry, no newlines")
        lines.append(f"#SBATCH {text}")
    cli_options: list[str] = []
    if log_dir is not None:
        pattern = "%x-%A_%a.out" if array else "%x-%j.out"
        log_text = str(log_dir)
        if _SAFE_PATH.match(log_text):
            lines.append(f"#SBATCH --output={log_text}/{pattern}")
        else:  # spaces, quotes, $ or % in the path: pass it as one argv element, never through a shell
            cli_options.append(f"--output={log_text.replace('%', '%%')}/{pattern}")

    zse_command = settings.get("zse_command")
    zse_argv = shlex.split(zse_command) if zse_command else [sys.executable, "-m", "zse.workflows.cli"]
    prologue = "\n".join(str(line) for line in settings.get("job_script_prologue") or [])
    submit_comment = ""
    if cli_options:
        shown = " ".join(shlex.quote(o) for o in cli_options)
        submit_comment = "# submitted with: sbatch " + re.sub(r"[\r\n]", "?", shown) + " THIS_FILE"
    script = _Template(_template_path().read_text()).substitute(
        COUNT=str(len(slides)),
        MODEL_COMMENT=re.sub(r"[\r\n]", " ", model),
        SBATCH_LINES="\n".join(lines),
        VERSION=__version__,
        SUBMIT_COMMENT=submit_comment,
        ZSE_COMMAND=" ".join(shlex.quote(a) for a in zse_argv),
        MODEL=shlex.quote(model),
        SLIDES=_bash_array([str(s) for s in slides]),
        OUTS=_bash_array([str(o) for o in outs]),
        ENHANCE_ARGS=" ".join(shlex.quote(a) for a in enhance_args),
        PROLOGUE=prologue,
    )
    return script, cli_options


def plan_outputs(slides: Sequence[str], out_dir: Path) -> tuple[list[Path], list[Path]]:
    """Absolute input paths and their outputs `out_dir/<name>.ome.zarr`; refuses missing inputs and name clashes."""
    ins: list[Path] = []
    outs: list[Path] = []
    seen: dict[str, Path] = {}
    for slide in slides:
        path = Path(slide).expanduser().absolute()
        if not path.exists():
            raise InputError(f"{slide}: no such file or folder")
        name = section_name(path)
        if name in seen:
            raise ConfigError(f"{slide} and {seen[name]} would both write {out_dir / (name + '.ome.zarr')}; rename one")
        seen[name] = path
        ins.append(path)
        outs.append(out_dir / f"{name}.ome.zarr")
    return ins, outs


def submit_batch(
    slides: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    profile: str | None = None,
    array: bool = False,
    dry_run: bool = False,
    overrides: Mapping[str, Any] | None = None,
    enhance_args: Sequence[str] = (),
) -> tuple[str, str | None, Path | None]:
    """Render (and unless `dry_run`, save and submit) the batch script; returns (script, job id, script path)."""
    if not slides:
        raise ConfigError("zse submit: give at least one SLIDE")
    settings: dict[str, Any] = dict(load_profile(profile))
    for key, value in (overrides or {}).items():
        if value is not None:
            settings[key] = value
    out = Path(out_dir).expanduser().absolute()
    ins, outs = plan_outputs(slides, out)
    args: list[str] = []
    if settings.get("device"):
        args += ["--device", str(settings["device"])]
    if settings.get("workers") is not None:
        args += ["--workers", str(int(settings["workers"]))]
    args += list(enhance_args)
    log_dir = out / "logs"
    script, cli_options = render_script(ins, outs, model=model, settings=settings, array=array, enhance_args=args, log_dir=log_dir)
    if dry_run:
        return script, None, None
    if shutil.which("sbatch") is None:
        raise ConfigError("zse submit: sbatch not found on PATH (is Slurm available here?); use --dry-run to see the script")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create {log_dir}: {exc}") from exc
    script_path = log_dir / f"zse-batch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.sbatch"
    script_path.write_text(script)
    script_path.chmod(0o700)
    proc = subprocess.run(["sbatch", "--parsable", *cli_options, str(script_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"sbatch refused {script_path}: {proc.stderr.strip() or proc.stdout.strip()}")
    job_id = proc.stdout.strip().split(";")[0]
    return script, job_id, script_path


@click.command()
@click.argument("slides", nargs=-1, required=True, type=click.Path(), metavar="SLIDE...")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for DIR/<name>.ome.zarr outputs and logs/.")
@click.option("--model", required=True, help="Model for `zse enhance --model` (registry name or file).")
@click.option("--profile", default=None, metavar="NAME_OR_YAML", help="Slurm profile: a name in deploy/profiles/ or a YAML file.")
@click.option("--array", is_flag=True, help="One array task per section (in parallel) instead of one job running them in turn.")
@click.option("--dry-run", is_flag=True, help="Print the sbatch script instead of submitting it.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--account", default=None, help="Slurm account.")
@click.option("--walltime", default=None, help="Slurm time limit per job (per array task), e.g. 04:00:00.")
@click.option("--memory", default=None, help="Memory per job, e.g. 64GB.")
@click.option("--cores", type=click.IntRange(min=1), default=None, help="CPU cores per job (--cpus-per-task).")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, help="GPUs per job (--gres=gpu:N).")
@click.option("--device", default=None, help="zse enhance --device inside the job (cpu, cuda).")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="zse enhance --workers inside the job.")
@click.option("--requeue", is_flag=True, default=None, help="Let Slurm requeue the job after a pre-emption or node failure (it resumes).")
@click.option("--job-name", default=None, help="Slurm job name (default zse-batch).")
@click.option("--enhance-args", default="", help="More `zse enhance` options, as one shell-quoted string, e.g. \"--tile 256 --ngff 0.4\".")
def submit(slides: tuple[str, ...], out_dir: str, model: str, profile: str | None, array: bool, dry_run: bool,
           partition: str | None, account: str | None, walltime: str | None, memory: str | None, cores: int | None,
           gpus_per_job: int | None, device: str | None, workers: int | None, requeue: bool | None, job_name: str | None,
           enhance_args: str) -> None:
    """Enhance SLIDE... on Slurm with one sbatch job (or --array); prints the job id.

    Each SLIDE is written to OUT/<name>.ome.zarr. Submit the same command again after a pre-emption or
    walltime kill: sections already started resume and finish only their missing blocks.
    """
    try:
        extra = shlex.split(enhance_args)
    except ValueError as exc:
        raise ConfigError(f"--enhance-args {enhance_args!r}: {exc}") from exc
    overrides = {"partition": partition, "account": account, "walltime": walltime, "memory": memory, "cores": cores,
                 "gpus_per_job": gpus_per_job, "device": device, "workers": workers, "requeue": requeue, "job_name": job_name}
    script, job_id, script_path = submit_batch(slides, out_dir, model=model, profile=profile, array=array,
                                               dry_run=dry_run, overrides=overrides, enhance_args=extra)
    if dry_run:
        click.echo(script, nl=False)
        return
    mode = f"array of {len(slides)} tasks" if array else f"{len(slides)} section(s) in turn"
    click.echo(f"zse submit: job {job_id} ({mode}); script {script_path}; logs in {Path(out_dir).absolute() / 'logs'}", err=True)
    click.echo(job_id)
