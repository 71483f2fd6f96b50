"""Dask clusters for zse: the only package that builds clusters or touches Dask's global config.

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

Modules: `profile` (the Slurm profile model `ClusterProfile`, profile files, the click options),
`client` (`open_client`, `task_resources`, remote schedulers), `local` (local clusters, worker
plugins), `slurm` (Slurm settings, walltimes, SLURMCluster with TLS).
"""

from zse.workflows.cluster.client import make_run_dir, open_client, task_resources
from zse.workflows.cluster.profile import CLUSTER_OPTION_NAMES, ClusterProfile, cluster_options, load_profile
from zse.workflows.cluster.slurm import parse_walltime

__all__ = [
    "CLUSTER_OPTION_NAMES",
    "ClusterProfile",
    "cluster_options",
    "load_profile",
    "make_run_dir",
    "open_client",
    "parse_walltime",
    "task_resources",
]
