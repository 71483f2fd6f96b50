"""Slurm clusters (`--cluster slurm`): settings from a profile and the options, jobs, walltimes, TLS.

`slurm_client` starts a `dask_jobqueue.SLURMCluster` (extra `zse[slurm]`): one Slurm job per worker
group, adaptive between `min_jobs` and `max_jobs`, workers ending a few minutes before the walltime
(`worker_lifetime_args`), and TLS with per-run certificates (`zse.workflows.security`) unless
`--no-tls`. `slurm_settings` merges a profile (`load_profile`) with the command-line values and fills
the defaults; `slurm_cluster_kwargs` turns the result into SLURMCluster's arguments. `parse_walltime`
reads Slurm times (also for `zse submit`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from zse.errors import ConfigError
from zse.workflows.cluster.local import PinGPU, TorchThreads
from zse.workflows.cluster.profile import dashboard_kwargs, gpu_device, load_profile

log = logging.getLogger(__name__)


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



def _default_run_dir() -> Path:
    """./.zse-cluster/<time>-<pid>: the run folder when --run-dir is not given (removed if left empty)."""
    return Path.cwd() / ".zse-cluster" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


@contextlib.contextmanager
def slurm_client(
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
    """`--cluster slurm`: an adaptive SLURMCluster with per-run TLS; yields (client, task resources).

    Worker logs go to RUN_DIR/logs (kept); the TLS files are removed when the cluster closes.
    """
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
                client.register_plugin(TorchThreads(settings["torch_threads"], cores=settings["torch_threads"]))
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
    gpu = gpu_device(str(s.get("device") or "cpu"))
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
    scheduler_options: dict[str, Any] = dashboard_kwargs(dashboard_address)
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

