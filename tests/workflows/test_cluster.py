"""Cluster options, profiles, local clusters and TLS (no Slurm needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from zse.errors import ConfigError
from zse.workflows import cluster as zc
from zse.workflows import security as zs
from zse.workflows.cluster import client as zclient
from zse.workflows.cluster import profile as zprofile
from zse.workflows.cluster import slurm as zslurm


def _cmd() -> click.Command:
    @click.command()
    @click.option("--workers", type=int, default=None)
    @zc.cluster_options
    def cmd(workers: int | None, cluster_opts: dict) -> None:
        click.echo(repr(sorted(cluster_opts.items())))

    return cmd


def test_cluster_options_collected_into_one_dict() -> None:
    result = CliRunner().invoke(_cmd(), ["--cluster", "slurm", "--gpus-per-job", "2", "--max-jobs", "3", "--no-tls"])
    assert result.exit_code == 0, result.output
    opts = dict(eval(result.output))  # noqa: S307 - our own repr
    assert set(opts) == set(zc.CLUSTER_OPTION_NAMES)
    assert opts["cluster"] == "slurm" and opts["gpus_per_job"] == 2 and opts["max_jobs"] == 3 and opts["no_tls"] is True
    assert opts["dashboard_address"] == "127.0.0.1:0"
    help_text = CliRunner().invoke(_cmd(), ["--help"]).output
    assert "INSECURE" in help_text and "--scheduler-file" in help_text


@pytest.mark.parametrize("bad", ["slurmm", "local cuda", "http//x", ""])
def test_invalid_cluster_value(bad: str) -> None:
    if bad == "":
        assert zclient._validate_cluster(bad, None) == "local"
        return
    with pytest.raises(ConfigError, match="valid values are local, local-cuda, slurm"):
        zclient._validate_cluster(bad, None)


def test_cluster_kinds() -> None:
    assert zclient._validate_cluster("tls://10.0.0.5:8786", None) == "address"
    assert zclient._validate_cluster("node12:8786", None) == "address"
    assert zclient._validate_cluster("local", "sched.json") == "scheduler-file"
    with pytest.raises(ConfigError, match="both given"):
        zclient._validate_cluster("slurm", "sched.json")


def test_profiles_load_and_validate(tmp_path: Path) -> None:
    gpu = zc.load_profile("gpu-example")
    assert gpu["gpus_per_job"] == 1 and gpu["partition"] == "gpu"
    for name in ("cpu-example", "ci"):
        assert zc.load_profile(name)
    bad = tmp_path / "bad.yaml"
    bad.write_text("partition: gpu\nwaltime: '01:00:00'\n")
    with pytest.raises(ConfigError, match="unknown key 'waltime'"):
        zc.load_profile(bad)
    bad.write_text("cores: many\n")
    with pytest.raises(ConfigError, match=r"'cores': Input should be a valid integer.*\(given 'many'\)"):
        zc.load_profile(bad)
    with pytest.raises(ConfigError, match="gpu-example"):
        zc.load_profile("no-such-profile")


def test_profile_errors_are_one_line_and_say_where(tmp_path: Path) -> None:
    """Profile files go through the one YAML reader and the ClusterProfile model: strict types, its ranges."""
    bad = tmp_path / "bad.yaml"
    cases = {
        "partition: gpu\nwaltime: '01:00:00'\n": r"unknown key 'waltime'; valid keys: .*walltime",
        "partition: [gpu\n": r"is not valid YAML: .* at line \d+, column \d+",
        "- partition\n": r"must be a mapping, got list",
        "cores: '8'\n": r"'cores': Input should be a valid integer",  # YAML strings are not numbers
        "workers: true\n": r"'workers': Input should be a valid integer",  # nor are booleans
        "walltime: 4:00:00\n": r"'walltime': Input should be a valid string",  # YAML reads 14400 here
        "max_jobs: 0\n": r"'max_jobs': Input should be greater than or equal to 1",  # as --max-jobs
        "job_script_prologue: module load x\n": r"'job_script_prologue': Input should be a valid list",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigError, match=expected) as info:
            zc.load_profile(bad)
        assert "\n" not in str(info.value) and str(bad) in str(info.value)
    bad.write_bytes(b"partition: \xff\n")
    with pytest.raises(ConfigError, match=r"not a UTF-8 text file \(byte 0xff at offset 11\)"):
        zc.load_profile(bad)
    bad.write_text("")
    assert zc.load_profile(bad) == {}
    bad.write_text("account: null\njob_extra_directives: ['--constraint=a100']\n")
    assert zc.load_profile(bad) == {"account": None, "job_extra_directives": ["--constraint=a100"]}


def test_profile_settings_with_a_flag_come_from_the_model() -> None:
    """--partition ... --max-jobs: name, help and range from ClusterProfile's fields, for every command."""
    flagged = [name for name, info in zc.ClusterProfile.model_fields.items() if (info.json_schema_extra or {}).get("cli")]
    assert flagged == ["partition", "account", "walltime", "memory", "gpus_per_job", "min_jobs", "max_jobs"]
    assert set(flagged) < set(zc.CLUSTER_OPTION_NAMES)
    params = {p.name: p for p in _cmd().params}
    for name in flagged:
        assert params[name].help == zc.ClusterProfile.model_fields[name].description
    result = CliRunner().invoke(_cmd(), ["--max-jobs", "0"])
    assert result.exit_code == 2 and "--max-jobs" in result.output and "x>=1" in result.output
    result = CliRunner().invoke(_cmd(), ["--gpus-per-job", "-1"])
    assert result.exit_code == 2 and "x>=0" in result.output
    for path in sorted(zprofile.PROFILE_DIR.glob("*.yaml")):
        assert zc.ClusterProfile.model_validate(zc.load_profile(path))  # the bundled profiles stay valid


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("10:00", 600), ("01:00:00", 3600), ("1-00", 86400), ("1-02:03:04", 93784), ("2-12:00", 216000)],
)
def test_parse_walltime(text: str, seconds: int) -> None:
    assert zc.parse_walltime(text) == seconds


@pytest.mark.parametrize("bad", ["1h", "1:2:3:4", "-1", "00:00:00", "a-01"])
def test_parse_walltime_invalid(bad: str) -> None:
    with pytest.raises(ConfigError, match="walltime"):
        zc.parse_walltime(bad)


def test_worker_lifetime_before_walltime() -> None:
    args = zslurm.worker_lifetime_args("04:00:00")
    lifetime = int(args[args.index("--lifetime") + 1].rstrip("s"))
    stagger = int(args[args.index("--lifetime-stagger") + 1].rstrip("s"))
    assert lifetime + stagger < 4 * 3600 and lifetime >= 4 * 3600 - 600
    assert "--lifetime-restart" not in args
    assert "--lifetime-restart" in zslurm.worker_lifetime_args("00:10:00", restart=True)
    short = zslurm.worker_lifetime_args("00:02:00")
    assert int(short[1].rstrip("s")) + int(short[3].rstrip("s")) < 120


def test_slurm_job_script_gres_lifetime_tls(tmp_path: Path) -> None:
    """The SLURMCluster job script asks for the GPUs, ends workers early and carries TLS (no submission)."""
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (extra zse[slurm])")
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    from dask_jobqueue import SLURMCluster

    settings = zslurm.slurm_settings(zc.load_profile("gpu-example"), walltime="01:00:00", account="lab 1", max_jobs=3)
    assert settings["account"] == "lab 1" and settings["max_jobs"] == 3 and settings["cores"] == 8
    kwargs = zslurm.slurm_cluster_kwargs(settings, run_dir=tmp_path, dashboard_address="127.0.0.1:0")
    files = zs.make_certificates(tmp_path)
    with SLURMCluster(**kwargs, security=zs.security_for(files), protocol="tls://") as sc:
        script = sc.job_script()
        assert sc.scheduler_address.startswith("tls://")
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH -p gpu" in script or "#SBATCH --partition=gpu" in script
    assert "--lifetime 3240s" in script and "--lifetime-stagger" in script
    assert "--resources GPU=2" in script
    assert f"--tls-ca-file {files.cert}" in script and f"--tls-key {files.key}" in script
    assert "#SBATCH -t 01:00:00" in script


def test_task_resources_from_opts() -> None:
    assert zc.task_resources({"device": "cpu", "cluster": "local"}) is None
    assert zc.task_resources({"device": "cuda", "cluster": "local"}) == {"GPU": 1}
    assert zc.task_resources({"device": "cpu", "cluster": "slurm", "gpus_per_job": 1}) == {"GPU": 1}
    assert zc.task_resources({"device": "cuda:0", "cluster": "local-cuda"}) == {"GPU": 1}


def _threads() -> tuple[int, str | None]:
    import torch

    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def _http_bound(client) -> set[str]:
    server = client.cluster.scheduler.http_server
    return {sock.getsockname()[0] for sock in server._sockets.values()}


def test_local_cluster_runs_tasks_on_localhost() -> None:
    with zc.open_client(device="cpu", workers=1) as client:
        info = client.scheduler_info()
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(w["host"] == "127.0.0.1" for w in info["workers"].values())
        assert [w["nthreads"] for w in info["workers"].values()] == [2]
        assert zc.task_resources(client) is None
        n_torch, omp = client.submit(_threads).result()
        cores = len(os.sched_getaffinity(0))
        # the cores are shared among the worker's 2 Dask threads (each may run a block at once)
        assert n_torch == max(1, cores // 2) and omp == str(max(1, cores // 2))
        assert "127.0.0.1" in client.dashboard_link
        assert _http_bound(client) == {"127.0.0.1"}


def test_local_cluster_gpu_resources() -> None:
    """device=cuda: workers declare GPU=gpu_tasks_per_worker, tasks ask for one (no GPU needed to check)."""
    with zc.open_client(device="cuda", workers=1, gpu_tasks_per_worker=2, dashboard_address="none") as client:
        (worker,) = client.scheduler_info()["workers"].values()
        assert worker["resources"] == {"GPU": 2.0} and worker["nthreads"] == 3
        res = zc.task_resources(client)
        assert res == {"GPU": 1}
        assert client.submit(sum, [1, 2], resources=res).result() == 3
        # "none": Dask's fallback to :8787 on every interface is not taken
        assert _http_bound(client) == {"127.0.0.1"}


def test_local_cuda_without_dask_cuda_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import fails even where it is installed
    with pytest.raises(ConfigError, match=r'pip install "zse\[gpu\]"'):
        with zc.open_client(device="cuda", workers=None, cluster="local-cuda"):
            pass


def test_remote_without_certificates_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no TLS certificates"):
        with zc.open_client(device="cpu", workers=None, cluster="tls://127.0.0.1:1"):
            pass
    (tmp_path / "sched.json").write_text("{}")
    with pytest.raises(ConfigError, match="--no-tls"):
        with zc.open_client(device="cpu", workers=None, scheduler_file=str(tmp_path / "sched.json")):
            pass


def test_certificates_are_private(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    files = zs.make_certificates(tmp_path / "run")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    assert zs.find_certificates(tmp_path / "run") == files
    assert zs.find_certificates(tmp_path) is None
    out = subprocess.run([sys.executable, "-m", "zse.workflows.security", str(tmp_path / "cli")], capture_output=True, text=True)
    assert out.returncode == 0 and Path(out.stdout.strip()) == tmp_path / "cli" / "tls"


@pytest.fixture
def tls_scheduler(tmp_path: Path):
    """`dask scheduler` + `dask worker` with per-run TLS and a scheduler file, as the sbatch template starts them."""
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    files = zs.make_certificates(tmp_path)
    sched_file = tmp_path / "scheduler.json"
    tls = zs.dask_cli_tls_args(files)
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [
        subprocess.Popen([dask, "scheduler", "--scheduler-file", str(sched_file), "--protocol", "tls", "--host", "127.0.0.1",
                          "--port", "0", "--dashboard-address", "127.0.0.1:0", *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]
    deadline = time.monotonic() + 30
    while not sched_file.is_file() or not sched_file.read_text().strip():
        assert time.monotonic() < deadline, "dask scheduler did not write its scheduler file"
        time.sleep(0.1)
    procs.append(
        subprocess.Popen([dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--host", "127.0.0.1",
                          "--no-nanny", *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    yield sched_file, files
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_tls_scheduler_file_client_and_refusals(tls_scheduler, tmp_path: Path, tls_refused) -> None:
    import json

    from distributed import Client

    sched_file, files = tls_scheduler
    address = json.loads(sched_file.read_text())["address"]
    assert address.startswith("tls://127.0.0.1:")
    # with the run's certificates (found beside the scheduler file): works
    with zc.open_client(device="cpu", workers=None, scheduler_file=str(sched_file)) as client:
        assert client.submit(sum, [2, 3]).result(timeout=30) == 5
    with zc.open_client(device="cpu", workers=None, cluster=address, tls_dir=str(files.directory)) as client:
        assert client.submit(sum, [4, 5]).result(timeout=30) == 9
    host_port = address.removeprefix("tls://")
    # a plain TCP client is refused
    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://{host_port}", timeout="3s")
    # a TLS client without a certificate: the scheduler requires one and aborts the handshake
    assert tls_refused(host_port, files.cert)
    # a TLS client with another run's certificate is refused too
    other = zs.make_certificates(tmp_path / "other")
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=zs.security_for(other), timeout="3s")
