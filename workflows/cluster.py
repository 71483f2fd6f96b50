"""Dask clusters for zse: the only module that builds clusters or touches Dask's global config.

Commands that run on Dask take the shared options with `@cluster_options` and open a client with
`open_client`:

    @click.command()
    @cluster_options
    def enhance(..., cluster_opts: dict):
        with open_client(device=device, workers=workers, **cluster_opts) as client:
            futures = [client.submit(run_block, b, resources=task_resources(client)) for b in blocks]

Cluster kinds (`--cluster`):
    local        LocalCluster of worker processes on this machine (default; CPU or one GPU).
    local-cuda   dask_cuda.LocalCUDACluster, one worker per visible GPU (extra `zse[gpu]`).
    slurm        dask_jobqueue.SLURMCluster, one Slurm job per worker group, adaptive between
                 --min-jobs and --max-jobs, workers end a few minutes before the walltime
                 (extra `zse[slurm]`).
    ADDRESS      an existing scheduler (tcp://host:port, tls://host:port), or --scheduler-file FILE.

Security: clusters reachable from other machines (slurm, an address, a scheduler file) talk TLS with
per-run certificates (`zse.workflows.security`) unless `--no-tls` is given (insecure: anyone who can
reach the scheduler can run code as you). Dashboards bind to 127.0.0.1 unless --dashboard-address says
otherwise. `local` clusters listen on 127.0.0.1 only.

GPU tasks: workers with a GPU declare the Dask resource `GPU = gpu_tasks_per_worker`; block tasks are
submitted with `resources={"GPU": 1}` (`task_resources`), so at most that many block tasks use a GPU at
once. Resources go on `client.submit`, never on collections (graph fusion drops them, dask#7036).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from distributed.diagnostics.plugin import WorkerPlugin

from zse.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

CLUSTER_KINDS = ("local", "local-cuda", "slurm")


def _profile_dir() -> Path:
    """deploy/profiles of the installed zse.deploy package."""
    import zse.deploy

    return Path(zse.deploy.__file__).resolve().parent / "profiles"


PROFILE_DIR = _profile_dir()
DEFAULT_DASHBOARD = "127.0.0.1:0"
_ADDRESS_RE = re.compile(r"^((tcp|tls|ucx|inproc)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")

# Names of the keyword arguments `cluster_options` collects into `cluster_opts` (and open_client takes).
CLUSTER_OPTION_NAMES = (
    "cluster",
    "scheduler_file",
    "profile",
    "partition",
    "account",
    "walltime",
    "memory",
    "gpus_per_job",
    "min_jobs",
    "max_jobs",
    "dashboard_address",
    "no_tls",
    "tls_dir",
    "run_dir",
)

# Keys a Slurm profile (deploy/profiles/*.yaml) may set; CLI options override them.
PROFILE_KEYS = {
    "partition": str,
    "account": str,
    "walltime": str,
    "memory": str,
    "cores": int,
    "processes": int,
    "gpus_per_job": int,
    "gpu_tasks_per_worker": int,
    "min_jobs": int,
    "max_jobs": int,
    "job_extra_directives": list,
    "job_script_prologue": list,
    "interface": str,
    "local_directory": str,
    "python": str,
    "lifetime_restart": bool,
    "device": str,
    "workers": int,
    "threads_per_worker": int,
    "array_parallelism": int,
    "description": str,
    "zse_command": str,
}

# client -> resources each block task needs (filled by open_client, read by task_resources)
_RESOURCES: weakref.WeakKeyDictionary[Any, dict[str, float] | None] = weakref.WeakKeyDictionary()

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- options
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

    options = [
        click.option(
            "--cluster",
            default="local",
            show_default=True,
            metavar="[local|local-cuda|slurm|ADDRESS]",
            help="Where blocks run: local processes, one worker per local GPU (needs zse[gpu]), "
            "Slurm jobs (needs zse[slurm]), or the address of a running Dask scheduler.",
        ),
        click.option(
            "--scheduler-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Connect to the scheduler described by this file (dask scheduler --scheduler-file); "
            "TLS certificates are looked up beside it (tls/).",
        ),
        click.option(
            "--profile",
            default=None,
            metavar="NAME_OR_YAML",
            help="Slurm profile: a name in deploy/profiles/ (e.g. gpu-example) or a YAML file.",
        ),
        click.option("--partition", default=None, help="Slurm partition (queue) for worker jobs."),
        click.option("--account", default=None, help="Slurm account charged for worker jobs."),
        click.option("--walltime", default=None, help="Slurm walltime per worker job, e.g. 02:00:00."),
        click.option("--memory", default=None, help="Memory per worker job, e.g. 64GB."),
        click.option(
            "--gpus-per-job",
            type=click.IntRange(min=0),
            default=None,
            help="GPUs per Slurm job (--gres=gpu:N).",
        ),
        click.option(
            "--min-jobs",
            type=click.IntRange(min=0),
            default=None,
            help="Adaptive scaling: fewest Slurm jobs.",
        ),
        click.option(
            "--max-jobs", type=click.IntRange(min=1), default=None, help="Adaptive scaling: most Slurm jobs."
        ),
        click.option(
            "--dashboard-address",
            default=DEFAULT_DASHBOARD,
            show_default=True,
            help="Dask dashboard address; 127.0.0.1 keeps it private to this machine, ':0' exposes it "
            "on all interfaces, 'none' disables it.",
        ),
        click.option(
            "--no-tls",
            is_flag=True,
            default=False,
            help="INSECURE: talk to Slurm workers or a remote scheduler without TLS, so anyone who can "
            "reach the scheduler can run code as you. Only on a trusted, private network.",
        ),
        click.option(
            "--tls-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Folder with the run's cert.pem and key.pem for --cluster ADDRESS / --scheduler-file.",
        ),
        click.option(
            "--run-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Folder for Slurm worker logs and TLS files (on a filesystem the nodes share); "
            "default ./.zse-cluster/<time>-<pid>.",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- profiles
def load_profile(name_or_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Load a Slurm profile: a name in deploy/profiles/ (without .yaml) or a YAML file path."""
    if name_or_path is None:
        return {}
    import yaml

    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROFILE_DIR / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"--profile {text!r}: no such profile file; valid: a YAML file or one of {known}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--profile {path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--profile {path}: expected a mapping of settings, got {type(data).__name__}")
    for key, value in data.items():
        if key not in PROFILE_KEYS:
            raise ConfigError(f"--profile {path}: unknown key {key!r}; valid keys: {sorted(PROFILE_KEYS)}")
        expected = PROFILE_KEYS[key]
        if (
            value is not None
            and not isinstance(value, expected)
            or (expected is int and isinstance(value, bool))
        ):
            raise ConfigError(f"--profile {path}: {key} = {value!r} should be {expected.__name__}")
    return data


def parse_walltime(walltime: str) -> int:
    """Slurm walltime (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds."""
    text = str(walltime).strip()
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            raise ConfigError(f"--walltime {walltime!r}: not a Slurm time (e.g. 02:00:00 or 1-12:00:00)")
        days = int(d)
        parts = text.split(":")
        if not 1 <= len(parts) <= 3:
            raise ConfigError(f"--walltime {walltime!r}: not a Slurm time (e.g. 02:00:00 or 1-12:00:00)")
        parts += ["0"] * (3 - len(parts))
    else:
        parts = text.split(":")
        if len(parts) == 1:
            parts = ["0", parts[0], "0"]
        elif len(parts) == 2:
            parts = ["0", *parts]
        elif len(parts) != 3:
            raise ConfigError(f"--walltime {walltime!r}: not a Slurm time (e.g. 02:00:00 or 1-12:00:00)")
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"--walltime {walltime!r}: not a Slurm time (e.g. 02:00:00 or 1-12:00:00)")
    h, m, s = (int(p) for p in parts)
    seconds = ((days * 24 + h) * 60 + m) * 60 + s
    if seconds <= 0:
        raise ConfigError(f"--walltime {walltime!r}: must be positive")
    return seconds


def worker_lifetime_args(walltime: str, *, restart: bool = False) -> list[str]:
    """`dask worker` arguments that end a worker a few minutes before the job's walltime.

    margin = 10% of the walltime, between 1 and 10 minutes; stagger = a third of it, so workers of
    different jobs do not all leave at once. `--lifetime-restart` only when asked: under Slurm a
    restarted worker would keep the job alive until the walltime kills it; without it the worker and
    its job end cleanly and adaptive scaling submits a fresh job.
    """
    total = parse_walltime(walltime)
    margin = min(600, max(60, total // 10))
    margin = min(margin, max(1, total // 2))
    stagger = max(1, margin // 3)
    lifetime = max(1, total - margin)
    args = ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    if restart:
        args.append("--lifetime-restart")
    return args


# --------------------------------------------------------------------------------------- plugins
class TorchThreads(WorkerPlugin):
    """Worker plugin: set torch's intra-op threads in each worker process (Nanny sets OMP to 1)."""

    name = "zse-torch-threads"
    idempotent = True

    def __init__(self, threads: int) -> None:
        self.threads = max(1, int(threads))

    def setup(self, worker: Any) -> None:
        # Local worker processes share the terminal's process group: a Ctrl-C meant for zse would also
        # interrupt them mid-task and print their tracebacks. The client shuts them down instead.
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(self.threads)
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return
        torch.set_num_threads(self.threads)

    def teardown(self, worker: Any) -> None:  # pragma: no cover - nothing to undo
        return None


class PinGPU(WorkerPlugin):
    """Worker plugin: with several worker processes in one Slurm job, give each one GPU of the job.

    Uses the worker name's trailing index (`<job>-<i>`, as `dask worker --nworkers N` names them) to
    narrow CUDA_VISIBLE_DEVICES before CUDA is initialised.
    """

    name = "zse-pin-gpu"
    idempotent = True

    def setup(self, worker: Any) -> None:
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        if len(visible) <= 1:
            return
        match = re.search(r"-(\d+)$", str(getattr(worker, "name", "")))
        index = int(match.group(1)) if match else 0
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[index % len(visible)]


# ---------------------------------------------------------------------------------------- helpers
def _validate_cluster(cluster: str | None, scheduler_file: str | None) -> str:
    kind = (cluster or "local").strip()
    if scheduler_file:
        if kind not in ("local", ""):
            raise ConfigError(
                f"--cluster {cluster!r} and --scheduler-file {scheduler_file!r} both given; use one"
            )
        return "scheduler-file"
    if kind in CLUSTER_KINDS:
        return kind
    if _ADDRESS_RE.match(kind):
        return "address"
    raise ConfigError(
        f"--cluster {cluster!r}: valid values are {', '.join(CLUSTER_KINDS)} or a scheduler address "
        "such as tls://10.0.0.5:8786"
    )


def _dashboard_kwargs(address: str | None) -> dict[str, Any]:
    """Scheduler keyword arguments for --dashboard-address ("none" disables the dashboard).

    Passing dashboard_address=None does not disable it (Dask then binds :8787 on every interface):
    "none" keeps the scheduler's HTTP server (health checks) on 127.0.0.1 and turns the dashboard off.
    """
    if address is None:
        return {"dashboard_address": DEFAULT_DASHBOARD}
    if address.strip().lower() in ("none", "off", ""):
        return {"dashboard_address": DEFAULT_DASHBOARD, "dashboard": False}
    return {"dashboard_address": address}


def _default_run_dir() -> Path:
    return Path.cwd() / ".zse-cluster" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _gpu_device(device: str) -> bool:
    return str(device).lower().startswith("cuda")


@contextlib.contextmanager
def _quiet_config() -> Iterator[None]:
    """Dask settings for zse runs (kept to this module): a block whose worker dies 3 times fails the run."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        yield


# ------------------------------------------------------------------------------------------ client
def open_client(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None = None,
    gpu_tasks_per_worker: int = 1,
    cluster: str | None = "local",
    scheduler_file: str | os.PathLike[str] | None = None,
    profile: str | os.PathLike[str] | None = None,
    partition: str | None = None,
    account: str | None = None,
    walltime: str | None = None,
    memory: str | None = None,
    gpus_per_job: int | None = None,
    min_jobs: int | None = None,
    max_jobs: int | None = None,
    dashboard_address: str | None = DEFAULT_DASHBOARD,
    no_tls: bool | None = False,
    tls_dir: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """Open a Dask cluster (or connect to one) and yield a `distributed.Client`; close both on exit.

    Args:
        device: "cpu" or "cuda[:i]": where the model runs; GPU workers declare the resource GPU.
        workers: local worker processes (local: default 1; local-cuda: default one per visible GPU);
            for slurm the worker processes per job (default 1, or gpus_per_job).
        threads_per_worker: Dask threads per worker (default 2, or gpu_tasks_per_worker + 1 on GPU
            workers) so reading and writing overlap compute.
        gpu_tasks_per_worker: block tasks allowed on one GPU at a time (worker resource GPU = this).
        cluster, scheduler_file, profile, ...: the `cluster_options`, see `zse enhance --help`.

    Raises:
        ConfigError: invalid options, a missing optional extra, missing TLS certificates.
    """
    return _open_client(
        device=device,
        workers=workers,
        threads_per_worker=threads_per_worker,
        gpu_tasks_per_worker=gpu_tasks_per_worker,
        cluster=cluster,
        scheduler_file=scheduler_file,
        profile=profile,
        partition=partition,
        account=account,
        walltime=walltime,
        memory=memory,
        gpus_per_job=gpus_per_job,
        min_jobs=min_jobs,
        max_jobs=max_jobs,
        dashboard_address=dashboard_address,
        no_tls=bool(no_tls),
        tls_dir=tls_dir,
        run_dir=run_dir,
    )


@contextlib.contextmanager
def _open_client(**opts: Any) -> Iterator[Any]:
    kind = _validate_cluster(opts["cluster"], opts["scheduler_file"])
    if opts["workers"] is not None and opts["workers"] < 1:
        raise ConfigError(f"--workers {opts['workers']}: must be at least 1")
    if opts["gpu_tasks_per_worker"] < 1:
        raise ConfigError(f"gpu_tasks_per_worker {opts['gpu_tasks_per_worker']}: must be at least 1")
    builders: dict[str, Callable[..., contextlib.AbstractContextManager[tuple[Any, dict[str, float] | None]]]] = {
        "local": _local,
        "local-cuda": _local_cuda,
        "slurm": _slurm,
        "address": _remote,
        "scheduler-file": _remote,
    }
    with _quiet_config(), builders[kind](**opts) as (client, resources):
        _RESOURCES[client] = resources
        yield client


def task_resources(client_or_opts: Any) -> dict[str, float] | None:
    """Resources one block task needs: {"GPU": 1} where the workers declare a GPU resource, else None.

    Accepts a Client from `open_client` (answer recorded when it was opened, else asked from the
    scheduler's current workers) or a mapping of `open_client` keyword arguments (device, cluster,
    gpus_per_job) for deciding before a client exists.
    """
    if isinstance(client_or_opts, Mapping):
        opts = client_or_opts
        kind = str(opts.get("cluster") or "local")
        if kind == "local-cuda" or _gpu_device(str(opts.get("device") or "cpu")):
            return {"GPU": 1}
        if kind == "slurm" and (opts.get("gpus_per_job") or 0) > 0:
            return {"GPU": 1}
        return None
    try:
        if client_or_opts in _RESOURCES:
            return _RESOURCES[client_or_opts]
    except TypeError:
        pass
    info = client_or_opts.scheduler_info()
    for worker in info.get("workers", {}).values():
        if (worker.get("resources") or {}).get("GPU"):
            return {"GPU": 1}
    return None


# ---------------------------------------------------------------------------------------- builders
@contextlib.contextmanager
def _local(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None,
    gpu_tasks_per_worker: int,
    dashboard_address: str | None,
    **_: Any,
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    from distributed import Client, LocalCluster

    gpu = _gpu_device(device)
    n_workers = workers or 1
    threads = threads_per_worker or (gpu_tasks_per_worker + 1 if gpu else 2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Every Dask thread may run a block at once on CPU: share the cores among them (measured on 2 cores:
    # 2 Dask threads × 2 torch threads was 1.4× slower than 1 torch thread each). GPU workers compute
    # one block at a time (a lock in zse.pipeline.block), so they keep cores // workers.
    torch_threads = max(1, cores // (n_workers * (1 if gpu else threads)))
    resources = {"GPU": float(gpu_tasks_per_worker)} if gpu else None
    env = {var: str(torch_threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    dash = _dashboard_kwargs(dashboard_address)
    kwargs: dict[str, Any] = dict(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=dash.pop("dashboard_address"),
        scheduler_kwargs=dash,
        silence_logs=logging.ERROR,
        env=env,
    )
    if resources:
        kwargs["resources"] = resources
    with LocalCluster(**kwargs) as lc, Client(lc) as client:
        client.register_plugin(TorchThreads(torch_threads))
        yield client, ({"GPU": 1} if resources else None)


@contextlib.contextmanager
def _local_cuda(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None,
    gpu_tasks_per_worker: int,
    dashboard_address: str | None,
    **_: Any,
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise ConfigError(
            '--cluster local-cuda needs dask-cuda, which is not installed: pip install "zse[gpu]" '
            "(or use --cluster local with --device cuda for a single GPU)"
        ) from exc
    from distributed import Client

    if not _gpu_device(device):
        raise ConfigError(f"--cluster local-cuda with --device {device!r}: use --device cuda")
    kwargs: dict[str, Any] = dict(
        threads_per_worker=threads_per_worker or gpu_tasks_per_worker + 1,
        resources={"GPU": float(gpu_tasks_per_worker)},
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )
    dash = _dashboard_kwargs(dashboard_address)
    kwargs["dashboard_address"] = dash.pop("dashboard_address")
    kwargs["scheduler_kwargs"] = dash
    if workers:
        kwargs["n_workers"] = workers
    with LocalCUDACluster(**kwargs) as lc, Client(lc) as client:
        yield client, {"GPU": 1}


@contextlib.contextmanager
def _slurm(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None,
    gpu_tasks_per_worker: int,
    profile: Any,
    partition: str | None,
    account: str | None,
    walltime: str | None,
    memory: str | None,
    gpus_per_job: int | None,
    min_jobs: int | None,
    max_jobs: int | None,
    dashboard_address: str | None,
    no_tls: bool,
    run_dir: Any,
    **_: Any,
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise ConfigError(
            '--cluster slurm needs dask-jobqueue, which is not installed: pip install "zse[slurm]"'
        ) from exc
    from distributed import Client

    settings = slurm_settings(
        load_profile(profile),
        partition=partition,
        account=account,
        walltime=walltime,
        memory=memory,
        gpus_per_job=gpus_per_job,
        min_jobs=min_jobs,
        max_jobs=max_jobs,
        workers=workers,
        threads_per_worker=threads_per_worker,
        gpu_tasks_per_worker=gpu_tasks_per_worker,
        device=device,
    )
    own_run_dir = run_dir is None
    rdir = Path(run_dir) if run_dir is not None else _default_run_dir()
    rdir.mkdir(parents=True, exist_ok=True)
    security = None
    tls_files = None
    if not no_tls:
        from zse.workflows.security import make_certificates, security_for

        tls_files = make_certificates(rdir)
        security = security_for(tls_files)
    else:
        log.warning("--no-tls: Slurm workers and scheduler talk without encryption or authentication")
    kwargs = slurm_cluster_kwargs(settings, run_dir=rdir, dashboard_address=dashboard_address)
    if security is not None:
        kwargs["security"] = security
        kwargs["protocol"] = "tls://"
    try:
        with SLURMCluster(**kwargs) as sc:
            sc.adapt(minimum_jobs=settings["min_jobs"], maximum_jobs=settings["max_jobs"])
            with Client(sc, security=security) as client:
                client.register_plugin(TorchThreads(settings["torch_threads"]))
                if settings["gpus_per_job"] and settings["processes"] > 1:
                    client.register_plugin(PinGPU())
                yield client, ({"GPU": 1} if settings["gpus_per_job"] else None)
    finally:
        if tls_files is not None:
            shutil.rmtree(tls_files.directory, ignore_errors=True)
        if own_run_dir:
            with contextlib.suppress(OSError):
                rdir.rmdir()  # only if empty (logs are kept)


def slurm_settings(profile: Mapping[str, Any], **cli: Any) -> dict[str, Any]:
    """Merge a profile with command-line values (which win) and fill defaults for a SLURMCluster."""
    s: dict[str, Any] = dict(profile)
    for key, value in cli.items():
        if value is not None:
            s[key] = value
    gpu = _gpu_device(str(s.get("device") or "cpu"))
    s.setdefault("walltime", "01:00:00")
    s.setdefault("memory", "16GB")
    gpus = int(s.get("gpus_per_job") or (1 if gpu else 0))
    s["gpus_per_job"] = gpus
    processes = int(s.get("processes") or s.get("workers") or max(1, gpus))
    s["processes"] = processes
    tasks = int(s.get("gpu_tasks_per_worker") or 1)
    s["gpu_tasks_per_worker"] = tasks
    threads = int(s.get("threads_per_worker") or (tasks + 1 if gpus else 2))
    s["cores"] = int(s.get("cores") or processes * threads)
    s["threads_per_worker"] = max(1, s["cores"] // processes)
    s["torch_threads"] = max(1, s["cores"] // processes)
    s["min_jobs"] = int(s.get("min_jobs") or 0)
    s["max_jobs"] = int(s.get("max_jobs") or max(1, s["min_jobs"]))
    if s["max_jobs"] < s["min_jobs"]:
        raise ConfigError(f"--max-jobs {s['max_jobs']} is below --min-jobs {s['min_jobs']}")
    parse_walltime(s["walltime"])
    return s


def slurm_cluster_kwargs(
    settings: Mapping[str, Any], *, run_dir: Path, dashboard_address: str | None
) -> dict[str, Any]:
    """Keyword arguments for `dask_jobqueue.SLURMCluster` from merged `slurm_settings`."""
    extra = list(settings.get("job_extra_directives") or [])
    if settings["gpus_per_job"]:
        extra.append(f"--gres=gpu:{settings['gpus_per_job']}")
    worker_args = worker_lifetime_args(settings["walltime"], restart=bool(settings.get("lifetime_restart")))
    if settings["gpus_per_job"]:
        # each worker process uses one GPU of the job (PinGPU narrows CUDA_VISIBLE_DEVICES)
        worker_args += ["--resources", f"GPU={settings['gpu_tasks_per_worker']}"]
    scheduler_options: dict[str, Any] = _dashboard_kwargs(dashboard_address)
    kwargs: dict[str, Any] = dict(
        cores=settings["cores"],
        processes=settings["processes"],
        memory=settings["memory"],
        walltime=settings["walltime"],
        job_extra_directives=extra,
        job_script_prologue=list(settings.get("job_script_prologue") or []),
        worker_extra_args=worker_args,
        log_directory=str(run_dir / "logs"),
        local_directory=settings.get("local_directory") or str(run_dir / "workers"),
        shared_temp_directory=str(run_dir),
        python=settings.get("python") or sys.executable,
        job_name="zse-worker",
        scheduler_options=scheduler_options,
        silence_logs="warning",
    )
    if settings.get("partition"):
        kwargs["queue"] = settings["partition"]
    if settings.get("account"):
        kwargs["account"] = settings["account"]
    if settings.get("interface"):
        kwargs["interface"] = settings["interface"]
    return kwargs


@contextlib.contextmanager
def _remote(
    *, cluster: str | None, scheduler_file: Any, no_tls: bool, tls_dir: Any, device: str, **_: Any
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    from distributed import Client

    from zse.workflows.security import find_certificates, security_for

    address = None if scheduler_file else str(cluster)
    where = Path(tls_dir) if tls_dir else (Path(scheduler_file).parent if scheduler_file else None)
    files = find_certificates(where) if where is not None else None
    if tls_dir and files is None:
        raise ConfigError(f"--tls-dir {tls_dir}: no cert.pem and key.pem there (or in its tls/ folder)")
    security = None
    if files is not None and not no_tls:
        security = security_for(files)
    elif not no_tls:
        raise ConfigError(
            f"{'--scheduler-file ' + str(scheduler_file) if scheduler_file else '--cluster ' + str(address)}: "
            "no TLS certificates found (expected cert.pem and key.pem in "
            f"{(str(where) + '/tls') if where else '--tls-dir'}); pass --tls-dir, or --no-tls on a trusted "
            "network (insecure)"
        )
    if scheduler_file and not Path(scheduler_file).is_file():
        raise ConfigError(f"--scheduler-file {scheduler_file}: no such file")
    if address and security is not None and address.startswith("tcp://"):
        raise ConfigError(f"--cluster {address}: the scheduler uses TLS here, give tls://{address[6:]}")
    if address and security is not None and "://" not in address:
        address = "tls://" + address
    kwargs: dict[str, Any] = {"security": security, "timeout": "60s"}
    if scheduler_file:
        kwargs["scheduler_file"] = str(scheduler_file)
    else:
        kwargs["address"] = address
    try:
        client = Client(**kwargs)
    except OSError as exc:
        raise ConfigError(
            f"cannot connect to the Dask scheduler ({address or scheduler_file}): {exc}"
        ) from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=120)
            resources = task_resources(client)
        except TimeoutError:
            resources = task_resources({"device": device})
        yield client, resources


def make_run_dir(base: str | os.PathLike[str] | None = None) -> Path:
    """A fresh run directory for cluster files under `base` (default ./.zse-cluster)."""
    root = Path(base) if base is not None else Path.cwd() / ".zse-cluster"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))
