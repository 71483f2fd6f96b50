"""Opening a Dask client for a run: which cluster `--cluster` names, and the resources a block task needs.

`open_client` checks the cluster options and dispatches to the builder of the kind asked for
(`local`, `local-cuda`: zse.workflows.cluster.local; `slurm`: zse.workflows.cluster.slurm; an address
or a scheduler file: `remote_client`, here), under zse's Dask settings (`_quiet_config`, the one place
zse sets Dask's global config). `task_resources` answers what each block task asks the scheduler for.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from zse.errors import ConfigError
from zse.workflows.cluster.local import local_client, local_cuda_client
from zse.workflows.cluster.profile import DEFAULT_DASHBOARD, gpu_device
from zse.workflows.cluster.slurm import slurm_client

CLUSTER_KINDS = ("local", "local-cuda", "slurm")
_ADDRESS_RE = re.compile(r"^((tcp|tls|ucx|inproc)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")

# client -> resources each block task needs (filled by open_client, read by task_resources)
_RESOURCES: weakref.WeakKeyDictionary[Any, dict[str, float] | None] = weakref.WeakKeyDictionary()


def _validate_cluster(cluster: str | None, scheduler_file: str | None) -> str:
    """The kind of cluster asked for: one of CLUSTER_KINDS, "address" or "scheduler-file"."""
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


@contextlib.contextmanager
def _quiet_config() -> Iterator[None]:
    """Dask settings for zse runs (kept to this function): a block whose worker dies 3 times fails the run."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        yield


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
    opts = dict(locals())  # exactly the parameters above: nothing else is bound yet
    return _open_client(**{**opts, "no_tls": bool(no_tls)})


@contextlib.contextmanager
def _open_client(**opts: Any) -> Iterator[Any]:
    kind = _validate_cluster(opts["cluster"], opts["scheduler_file"])
    if opts["workers"] is not None and opts["workers"] < 1:
        raise ConfigError(f"--workers {opts['workers']}: must be at least 1")
    if opts["gpu_tasks_per_worker"] < 1:
        raise ConfigError(f"gpu_tasks_per_worker {opts['gpu_tasks_per_worker']}: must be at least 1")
    builders: dict[str, Callable[..., contextlib.AbstractContextManager[tuple[Any, dict[str, float] | None]]]] = {
        "local": local_client,
        "local-cuda": local_cuda_client,
        "slurm": slurm_client,
        "address": remote_client,
        "scheduler-file": remote_client,
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
        if kind == "local-cuda" or gpu_device(str(opts.get("device") or "cpu")):
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


@contextlib.contextmanager
def remote_client(
    *, cluster: str | None, scheduler_file: Any, no_tls: bool, tls_dir: Any, device: str, **_: Any
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    """`--cluster ADDRESS` or `--scheduler-file FILE`: connect (TLS unless --no-tls) to a running scheduler.

    Certificates come from --tls-dir, or beside the scheduler file; yields (client, task resources).
    """
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
