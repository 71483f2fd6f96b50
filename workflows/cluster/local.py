"""Clusters on this machine (`--cluster local`, `--cluster local-cuda`) and the worker plugins.

`local_client` starts a `distributed.LocalCluster` of worker processes listening on 127.0.0.1 only;
`local_cuda_client` a `dask_cuda.LocalCUDACluster`, one worker per visible GPU (extra `zse[gpu]`).
Both yield `(client, resources)`: the resources one block task needs ({"GPU": 1} on GPU workers, else
None). The worker plugins (`TorchThreads`, `PinGPU`) are registered by these builders and by the
Slurm one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from zse.errors import ConfigError
from zse.workflows.cluster.profile import dashboard_kwargs, gpu_device


class TorchThreads(WorkerPlugin):
    """Worker plugin: set torch's intra-op threads in each worker process (Nanny sets OMP to 1), and record
    the worker's cores, which CPU block tasks share among those running (zse.pipeline.block.share_cores)."""

    name = "zse-torch-threads"
    idempotent = True

    def __init__(self, threads: int, cores: int | None = None) -> None:
        self.threads = max(1, int(threads))
        self.cores = max(self.threads, int(cores)) if cores else self.threads  # the worker's share of the cores

    def setup(self, worker: Any) -> None:
        # Local worker processes share the terminal's process group: a Ctrl-C meant for zse would also
        # interrupt them mid-task and print their tracebacks. The client shuts them down instead.
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(self.threads)
        # a CPU block task running alone takes them all (zse.pipeline.block.share_cores)
        from zse.pipeline.block import WORKER_CORES_ENV

        os.environ[WORKER_CORES_ENV] = str(self.cores)
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


@contextlib.contextmanager
def local_client(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None,
    gpu_tasks_per_worker: int,
    dashboard_address: str | None,
    **_: Any,
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    """`--cluster local`: `workers` (default 1) processes on 127.0.0.1; yields (client, task resources)."""
    from distributed import Client, LocalCluster

    gpu = gpu_device(device)
    n_workers = workers or 1
    threads = threads_per_worker or (gpu_tasks_per_worker + 1 if gpu else 2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Every Dask thread may run a block at once on CPU: share the cores among them (measured on 2 cores:
    # 2 Dask threads × 2 torch threads was 1.4× slower than 1 torch thread each). GPU workers compute
    # one block at a time (a lock in zse.pipeline.block), so they keep cores // workers.
    torch_threads = max(1, cores // (n_workers * (1 if gpu else threads)))
    resources = {"GPU": float(gpu_tasks_per_worker)} if gpu else None
    env = {var: str(torch_threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    dash = dashboard_kwargs(dashboard_address)
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
        client.register_plugin(TorchThreads(torch_threads, cores=max(1, cores // n_workers)))
        yield client, ({"GPU": 1} if resources else None)


@contextlib.contextmanager
def local_cuda_client(
    *,
    device: str,
    workers: int | None,
    threads_per_worker: int | None,
    gpu_tasks_per_worker: int,
    dashboard_address: str | None,
    **_: Any,
) -> Iterator[tuple[Any, dict[str, float] | None]]:
    """`--cluster local-cuda`: one worker per visible GPU (or `workers`); yields (client, {"GPU": 1})."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise ConfigError(
            '--cluster local-cuda needs dask-cuda, which is not installed: pip install "zse[gpu]" '
            "(or use --cluster local with --device cuda for a single GPU)"
        ) from exc
    from distributed import Client

    if not gpu_device(device):
        raise ConfigError(f"--cluster local-cuda with --device {device!r}: use --device cuda")
    kwargs: dict[str, Any] = dict(
        threads_per_worker=threads_per_worker or gpu_tasks_per_worker + 1,
        resources={"GPU": float(gpu_tasks_per_worker)},
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )
    dash = dashboard_kwargs(dashboard_address)
    kwargs["dashboard_address"] = dash.pop("dashboard_address")
    kwargs["scheduler_kwargs"] = dash
    if workers:
        kwargs["n_workers"] = workers
    with LocalCUDACluster(**kwargs) as lc, Client(lc) as client:
        yield client, {"GPU": 1}
