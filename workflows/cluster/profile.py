"""Cluster settings: the Slurm profile model, profile files, and the shared `--cluster ...` options.

`ClusterProfile` is the one declaration of the Slurm settings a profile (deploy/profiles/*.yaml or
any YAML file given to `--profile`) may set: each field's type, range and meaning. Profile files are
validated against it (`load_profile`), and the settings that are also command-line options (those
marked `cli` in their field) become the click options `--partition`, `--account`, ... of
`cluster_options`, with the field's description as their help and its range as their type. The
other cluster options (where the cluster is, TLS, dashboard, run folder) are not profile settings and
are declared once in this module, beside them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from zse.errors import ConfigError, validation_message
from zse.yamlfile import load_yaml_mapping

F = TypeVar("F", bound=Callable[..., Any])


def _profile_dir() -> Path:
    """deploy/profiles of the installed zse.deploy package."""
    import zse.deploy

    return Path(zse.deploy.__file__).resolve().parent / "profiles"


PROFILE_DIR = _profile_dir()
DEFAULT_DASHBOARD = "127.0.0.1:0"

_CLI: JsonDict = {"cli": True}  # field marker: also a command-line option of `cluster_options` (CLI values win)


class ClusterProfile(BaseModel):
    """Slurm settings of a profile file; every key is optional (unset: the command's default applies).

    Types are strict, as written in YAML: a number is not a string (quote walltimes: YAML reads
    4:00:00 as the number 14400), "8" is not an integer, and true is not 1. Where `--cluster slurm` fills unset values (walltime 01:00:00, memory 16GB, cores
    and processes from the GPUs and threads) is `zse.workflows.cluster.slurm.slurm_settings`; `zse
    submit` leaves unset ones to Slurm.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    description: str | None = Field(None, description="One line saying what the profile is for (not used by zse).")
    partition: str | None = Field(None, description="Slurm partition (queue) for worker jobs.", json_schema_extra=_CLI)
    account: str | None = Field(None, description="Slurm account charged for worker jobs.", json_schema_extra=_CLI)
    walltime: str | None = Field(
        None, description="Slurm walltime per worker job, e.g. 02:00:00.", json_schema_extra=_CLI
    )
    memory: str | None = Field(None, description="Memory per worker job, e.g. 64GB.", json_schema_extra=_CLI)
    cores: int | None = Field(None, description="CPU cores per job (sbatch --cpus-per-task).")
    processes: int | None = Field(None, description="Dask worker processes per job (default: workers, or one per GPU).")
    gpus_per_job: int | None = Field(
        None, ge=0, description="GPUs per Slurm job (--gres=gpu:N).", json_schema_extra=_CLI
    )
    gpu_tasks_per_worker: int | None = Field(
        None, description="Block tasks sharing one GPU at a time (the worker resource GPU = this)."
    )
    min_jobs: int | None = Field(
        None, ge=0, description="Adaptive scaling: fewest Slurm jobs.", json_schema_extra=_CLI
    )
    max_jobs: int | None = Field(None, ge=1, description="Adaptive scaling: most Slurm jobs.", json_schema_extra=_CLI)
    job_extra_directives: list[str] | None = Field(
        None, description="More #SBATCH directives, one per entry (e.g. --constraint=a100)."
    )
    job_script_prologue: list[str] | None = Field(
        None, description="Shell lines run before zse in every job (modules, venv, container)."
    )
    interface: str | None = Field(None, description="Network interface the workers listen on (e.g. ib0).")
    local_directory: str | None = Field(
        None, description="Workers' scratch folder (default: workers/ in the run folder)."
    )
    python: str | None = Field(None, description="Python executable the workers run (default: this one).")
    lifetime_restart: bool | None = Field(
        None, description="Restart a worker that reaches its lifetime instead of letting its job end."
    )
    device: str | None = Field(None, description="Where the model runs in the jobs: cpu, cuda or cuda:N.")
    workers: int | None = Field(None, description="Worker processes per job (zse submit: zse enhance --workers).")
    threads_per_worker: int | None = Field(None, description="Dask threads per worker process.")
    array_parallelism: int | None = Field(
        None, description="zse submit --array: at most this many sections at once."
    )
    zse_command: str | None = Field(
        None, description="Command that runs zse in a job (e.g. apptainer exec --nv zse.sif zse)."
    )


def load_profile(name_or_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The settings a Slurm profile sets (keys of `ClusterProfile`; only those present in the file).

    `name_or_path`: a name in deploy/profiles/ (without .yaml) or a YAML file path; None gives {}.

    Raises:
        ConfigError: no such profile, not a YAML mapping, an unknown key or a value of the wrong type.
    """
    if name_or_path is None:
        return {}
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROFILE_DIR / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"--profile {text!r}: no such profile file; valid: a YAML file or one of {known}")
    data = load_yaml_mapping(path, "--profile")
    try:
        profile = ClusterProfile.model_validate(data)
    except ValidationError as exc:
        message = f"--profile {path}: {validation_message(exc)}"
        if any(err["type"] == "extra_forbidden" for err in exc.errors()):
            message += f"; valid keys: {', '.join(sorted(ClusterProfile.model_fields))}"
        raise ConfigError(message) from None
    return profile.model_dump(exclude_unset=True)


# ----------------------------------------------------------------------------------------- options
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _profile_option(name: str, info: FieldInfo) -> Callable[[F], F]:
    """The click option for a `ClusterProfile` field: its name, its description as help, its range."""
    param_type: click.ParamType | None = None
    if int in get_args(info.annotation):
        ge = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)  # Field(ge=...)
        param_type = click.IntRange(min=ge)
    return click.option(_flag(name), type=param_type, default=None, help=info.description)


# The cluster options that are not profile settings, with the click options they become.
_WHERE: dict[str, dict[str, Any]] = {
    "cluster": dict(
        default="local",
        show_default=True,
        metavar="[local|local-cuda|slurm|ADDRESS]",
        help="Where blocks run: local processes, one worker per local GPU (needs zse[gpu]), "
        "Slurm jobs (needs zse[slurm]), or the address of a running Dask scheduler.",
    ),
    "scheduler_file": dict(
        type=click.Path(dir_okay=False),
        default=None,
        help="Connect to the scheduler described by this file (dask scheduler --scheduler-file); "
        "TLS certificates are looked up beside it (tls/).",
    ),
    "profile": dict(
        default=None,
        metavar="NAME_OR_YAML",
        help="Slurm profile: a name in deploy/profiles/ (e.g. gpu-example) or a YAML file.",
    ),
}
_HOW: dict[str, dict[str, Any]] = {
    "dashboard_address": dict(
        default=DEFAULT_DASHBOARD,
        show_default=True,
        help="Dask dashboard address; 127.0.0.1 keeps it private to this machine, ':0' exposes it "
        "on all interfaces, 'none' disables it.",
    ),
    "no_tls": dict(
        is_flag=True,
        default=False,
        help="INSECURE: talk to Slurm workers or a remote scheduler without TLS, so anyone who can "
        "reach the scheduler can run code as you. Only on a trusted, private network.",
    ),
    "tls_dir": dict(
        type=click.Path(file_okay=False),
        default=None,
        help="Folder with the run's cert.pem and key.pem for --cluster ADDRESS / --scheduler-file.",
    ),
    "run_dir": dict(
        type=click.Path(file_okay=False),
        default=None,
        help="Folder for Slurm worker logs and TLS files (on a filesystem the nodes share); "
        "default ./.zse-cluster/<time>-<pid>.",
    ),
}
_OPTIONS: dict[str, Callable[[Any], Any]] = {
    **{name: click.option(_flag(name), **attrs) for name, attrs in _WHERE.items()},
    **{
        name: _profile_option(name, info)
        for name, info in ClusterProfile.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("cli")
    },
    **{name: click.option(_flag(name), **attrs) for name, attrs in _HOW.items()},
}

#: Names of the keyword arguments `cluster_options` collects into `cluster_opts` (and open_client takes).
CLUSTER_OPTION_NAMES: tuple[str, ...] = tuple(_OPTIONS)


def cluster_options(func: F) -> F:
    """Click decorator: add the cluster options and pass them as one dict, `cluster_opts`.

    The decorated function receives `cluster_opts: dict` (keys `CLUSTER_OPTION_NAMES`) instead of the
    individual options, so command option names never collide; pass it on as
    `open_client(device=..., workers=..., **cluster_opts)`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = {name: kwargs.pop(name, None) for name in CLUSTER_OPTION_NAMES}
        return func(*args, cluster_opts=opts, **kwargs)

    for option in reversed(_OPTIONS.values()):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------- option meanings
def gpu_device(device: str) -> bool:
    """Whether `device` ("cpu", "cuda", "cuda:N") is a GPU."""
    return str(device).lower().startswith("cuda")


def dashboard_kwargs(address: str | None) -> dict[str, Any]:
    """Scheduler keyword arguments for --dashboard-address ("none" disables the dashboard).

    Passing dashboard_address=None does not disable it (Dask then binds :8787 on every interface):
    "none" keeps the scheduler's HTTP server (health checks) on 127.0.0.1 and turns the dashboard off.
    """
    if address is None:
        return {"dashboard_address": DEFAULT_DASHBOARD}
    if address.strip().lower() in ("none", "off", ""):
        return {"dashboard_address": DEFAULT_DASHBOARD, "dashboard": False}
    return {"dashboard_address": address}
