"""`zse submit`, pre-emption/resume and SLURMCluster against a real one-node Slurm (.ci/slurm-up.sh).

Tests marked `slurm` skip with the reason from $ZSE_SLURM_DIR/status where Slurm cannot start. The
quoting test runs the rendered script with bash and a fake zse, so it needs no Slurm.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zse.workflows import cluster as zc
from zse.workflows import submit as zsub

# a folder name with a space, $, both quotes and ;
NASTY = "in put $HOME 'q' \"d\";x"
ZSE = [sys.executable, "-m", "zse.workflows.cli"]
# many tiny blocks so the interruption lands mid-run
RESUME_ARGS = "--block 32 --tile 32 --overlap 8 --no-skip-background"


def _zse(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*ZSE, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"zse {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def _needs_commands(*names: str) -> None:
    import click

    from zse.workflows.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in names:
        if name not in COMMANDS or cli.get_command(ctx, name) is None:
            pytest.skip(f"`zse {name}` is not available in this checkout yet")


def _levels(path: Path) -> list[np.ndarray]:
    from zse.pipeline.io.ngff import open_image

    return [np.asarray(level[...]) for level in open_image(path).levels]


def _fake_zse(tmp_path: Path) -> Path:
    """A stand-in for zse that records its argv as JSON lines."""
    script = tmp_path / "fake_zse.py"
    script.write_text(
        "import json, os, sys\n"
        "with open(os.environ['FAKE_ZSE_LOG'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    return script


# ------------------------------------------------------------------------------------ no Slurm needed
def test_section_names() -> None:
    assert zsub.section_name("/a/b/S 1.ome.zarr") == "S 1"
    assert zsub.section_name("/a/b/s2.zarr/") == "s2"
    assert zsub.section_name("x.ome.tif") == "x"
    assert zsub.section_name("plain") == "plain"


def test_script_quotes_paths_with_shell_characters(tmp_path: Path) -> None:
    """Render a batch for paths with spaces, $, quotes and ;, run it with bash and a fake zse: argv arrive intact."""
    base = tmp_path / NASTY
    slides = [base / "sec A.ome.zarr", base / "sec;$(touch pwned)`id`.zarr"]
    for s in slides:
        s.mkdir(parents=True)
    out = tmp_path / "out $dir 'x'"
    (out / "sec A.ome.zarr" / ".zse").mkdir(parents=True)
    (out / "sec A.ome.zarr" / ".zse" / "run.json").write_text("{}")  # started before: resumes
    profile = tmp_path / "p.yaml"
    profile.write_text(f"zse_command: {json.dumps(sys.executable + ' ' + str(_fake_zse(tmp_path)))}\ndevice: cpu\nworkers: 1\n")
    model = "my model $x;'.pt2"
    script, job, path = zsub.submit_batch([str(s) for s in slides], out, model=model, profile=str(profile), dry_run=True,
                                          enhance_args=["--tile", "64 px"])
    assert job is None and path is None
    script_file = tmp_path / "batch.sh"
    script_file.write_text(script)
    log = tmp_path / "argv.jsonl"
    env = {**os.environ, "FAKE_ZSE_LOG": str(log)}
    env.pop("SLURM_ARRAY_TASK_ID", None)
    proc = subprocess.run(["bash", str(script_file)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    common = ["--model", model, "--quiet"]
    tail = ["--device", "cpu", "--workers", "1", "--tile", "64 px"]
    assert calls == [
        ["enhance", str(slides[0]), str(out / "sec A.ome.zarr"), *common, "--resume", *tail],
        ["enhance", str(slides[1]), str(out / "sec;$(touch pwned)`id`.zarr".replace(".zarr", ".ome.zarr")), *common, *tail],
    ]
    assert not (tmp_path / "pwned").exists()
    # array mode: each task runs its own section
    array_script, *_ = zsub.submit_batch([str(s) for s in slides], out, model=model, profile=str(profile), array=True,
                                         dry_run=True)
    assert "#SBATCH --array=0-1" in array_script
    script_file.write_text(array_script)
    log.unlink()
    proc = subprocess.run(["bash", str(script_file)], capture_output=True, text=True, env={**env, "SLURM_ARRAY_TASK_ID": "1"})
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)[1] for line in log.read_text().splitlines()] == [str(slides[1])]


def test_submit_refuses_bad_values(tmp_path: Path) -> None:
    from zse.errors import ConfigError, InputError

    (tmp_path / "a.zarr").mkdir()
    with pytest.raises(ConfigError, match="--partition"):
        zsub.submit_batch([str(tmp_path / "a.zarr")], tmp_path / "o", model="identity", dry_run=True,
                          overrides={"partition": "gpu\n#SBATCH --uid=0"})
    with pytest.raises(InputError, match="no such file"):
        zsub.submit_batch([str(tmp_path / "missing.zarr")], tmp_path / "o", model="identity", dry_run=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.ome.zarr").mkdir()
    with pytest.raises(ConfigError, match="would both write"):
        zsub.submit_batch([str(tmp_path / "a.zarr"), str(tmp_path / "b" / "a.ome.zarr")], tmp_path / "o", model="identity",
                          dry_run=True)


def test_submit_cli_dry_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    (tmp_path / "s 1.zarr").mkdir()
    result = CliRunner().invoke(zsub.submit, [str(tmp_path / "s 1.zarr"), "--out", str(tmp_path / "o"), "--model", "identity",
                                              "--profile", "gpu-example", "--dry-run", "--walltime", "00:30:00"])
    assert result.exit_code == 0, result.output
    assert "#SBATCH --gres=gpu:1" in result.output and "#SBATCH --time=00:30:00" in result.output
    assert "#SBATCH --partition=gpu" in result.output and "module load cuda" in result.output
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


# ---------------------------------------------------------------------------------------- real Slurm
@pytest.fixture(scope="module")
def sections(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small synthetic sections in a folder whose name needs quoting."""
    _needs_commands("synth", "enhance", "info")
    base = tmp_path_factory.mktemp("slurm") / NASTY
    base.mkdir()
    paths = [base / "sec A.ome.zarr", base / "sec;B.ome.zarr"]
    for seed, p in enumerate(paths, start=1):
        _zse("synth", str(p), "--shape", "4,256,256", "--seed", str(seed), "--quiet")
    return paths


def _submit(*args: str) -> str:
    proc = _zse("submit", *args)
    job = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+", job), proc.stdout
    return job


@pytest.mark.slurm
def test_submit_array_batch_of_two_sections(sections: list[Path], tmp_path: Path, slurm_wait, slurm_jobs) -> None:
    t0 = time.monotonic()
    out = tmp_path / "out dir"
    job = _submit(*map(str, sections), "--out", str(out), "--model", "identity", "--profile", "ci", "--array")
    slurm_jobs.append(job)
    states = slurm_wait([job], timeout=150)
    logs = "\n".join(p.read_text() for p in sorted((out / "logs").glob("*.out")))
    assert states[job] == "COMPLETED", f"{states}\n{logs[-3000:]}"
    for section in sections:
        result = out / section.name
        info = _zse("info", str(result)).stdout
        assert "zse run: complete" in info, info
        import zarr
        from ome_zarr_models.v05.image import Image

        Image.from_zarr(zarr.open_group(str(result), mode="r"))  # valid NGFF 0.5
        (src,) = _levels(section)[:1]
        assert np.array_equal(_levels(result)[0], src)  # identity model
    print(f"array batch of 2 sections: {time.monotonic() - t0:.1f} s")


@pytest.mark.slurm
def test_scancel_then_resubmit_resumes_bit_identically(tmp_path: Path, slurm_wait, slurm_jobs) -> None:
    _needs_commands("synth", "enhance", "info")
    t0 = time.monotonic()
    src = tmp_path / "in" / "sec C.ome.zarr"
    _zse("synth", str(src), "--shape", "4,768,768", "--seed", "7", "--quiet")
    out = tmp_path / "out"
    result = out / "sec C.ome.zarr"
    args = [str(src), "--out", str(out), "--model", "identity", "--profile", "ci", "--enhance-args", RESUME_ARGS]
    job = _submit(*args)
    slurm_jobs.append(job)
    done_dir = result / ".zse" / "done" / "L0"
    deadline = time.monotonic() + 120
    while not (done_dir.is_dir() and any(done_dir.iterdir())):
        assert slurm_wait.job_state(job) in ("PENDING", "RUNNING", "CONFIGURING"), f"job ended before any block was done: {slurm_wait.job_state(job)}"
        assert time.monotonic() < deadline, "no block finished within 120 s"
        time.sleep(0.05)
    subprocess.run(["scancel", job], check=True, timeout=20)
    states = slurm_wait([job], timeout=120)
    assert states[job] == "CANCELLED", states
    # as zse.pipeline.plan.done_states counts: a marker being written (a dot-file, renamed when complete)
    # at the moment of the cancel is not a done block
    done_before = len([f for f in done_dir.iterdir() if not f.name.startswith(".")])
    total = (768 // 32) ** 2
    assert 0 < done_before < total, f"{done_before} of {total} blocks done when cancelled"
    # uninterrupted reference, run here while the resubmitted job runs under Slurm
    reference = tmp_path / "reference.ome.zarr"
    ref_proc = subprocess.Popen([*ZSE, "enhance", str(src), str(reference), "--model", "identity", "--quiet", "--workers", "1",
                                 "--device", "cpu", *RESUME_ARGS.split()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    job2 = _submit(*args)
    slurm_jobs.append(job2)
    states = slurm_wait([job2], timeout=300)
    _, ref_err = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, ref_err
    log = (out / "logs" / f"zse-batch-{job2}.out").read_text()
    assert states[job2] == "COMPLETED", log[-3000:]
    assert "--resume" in log
    match = re.search(r"(\d+) already done", log)
    assert match and int(match.group(1)) >= done_before, log[-2000:]
    assert "zse run: complete" in _zse("info", str(result)).stdout
    got, want = _levels(result), _levels(reference)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w)
    print(f"cancel after {done_before}/{total} blocks, resume: {time.monotonic() - t0:.1f} s")


@pytest.mark.slurm
def test_slurm_cluster_runs_a_task_over_tls(tmp_path: Path, fake_gpus: int, tls_refused) -> None:
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (extra zse[slurm])")
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    from distributed import Client

    t0 = time.monotonic()
    gpus = 1 if fake_gpus else 0
    with zc.open_client(device="cpu", workers=None, cluster="slurm", profile="ci", gpus_per_job=gpus, min_jobs=1,
                        run_dir=str(tmp_path / "run")) as client:
        address = client.scheduler.address
        assert address.startswith("tls://")
        http = client.cluster.scheduler.http_server
        assert {sock.getsockname()[0] for sock in http._sockets.values()} == {"127.0.0.1"}  # dashboard: localhost only
        client.wait_for_workers(1, timeout=120)
        resources = zc.task_resources(client)
        assert resources == ({"GPU": 1} if gpus else None)
        # os.getenv ships by reference (this test module is not importable on the Slurm worker)
        job_id = client.submit(os.getenv, "SLURM_JOB_ID", resources=resources, pure=False).result(timeout=60)
        visible = client.submit(os.getenv, "CUDA_VISIBLE_DEVICES", resources=resources, pure=False).result(timeout=60)
        assert job_id and re.fullmatch(r"\d+", job_id)
        if gpus:
            assert visible == "0"  # Slurm's gres gave the worker one (fake) GPU
        (worker,) = client.scheduler_info()["workers"].values()
        if gpus:
            assert worker["resources"] == {"GPU": 1.0}
        # without the run's certificate nobody gets in
        host_port = address.removeprefix("tls://")
        with pytest.raises((OSError, TimeoutError)):
            Client(f"tcp://{host_port}", timeout="3s")
        assert tls_refused(host_port, tmp_path / "run" / "tls" / "cert.pem")
        started = time.monotonic() - t0
    # the worker job ends with the cluster and the private key is gone
    deadline = time.monotonic() + 30
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, f"worker job {job_id} still queued after the cluster closed"
        time.sleep(0.5)
    assert not (tmp_path / "run" / "tls").exists()
    print(f"SLURMCluster worker up and task run in {started:.1f} s")


@pytest.mark.slurm
def test_dask_cluster_sbatch_scheduler_file_over_tls(sections: list[Path], tmp_path: Path, slurm_wait, slurm_jobs) -> None:
    """deploy/templates/dask-cluster.sbatch: TLS scheduler + srun worker + `zse enhance --scheduler-file`."""
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    import zse.deploy

    t0 = time.monotonic()
    template = Path(zse.deploy.__file__).parent / "templates" / "dask-cluster.sbatch"
    src = sections[0]
    out = tmp_path / "o $x;'q" / "res ult.ome.zarr"
    out.parent.mkdir()
    run_dir = tmp_path / "run dir"
    env = {**os.environ, "ZSE_PYTHON": sys.executable, "ZSE_RUN_DIR": str(run_dir), "ZSE_DASK_WORKER": ""}
    proc = subprocess.run(["sbatch", "--parsable", f"--output={tmp_path}/%j.log", "--mem=1G", "--cpus-per-task=1", str(template),
                           str(src), str(out), "identity", "--block", "128"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    slurm_jobs.append(job)
    states = slurm_wait([job], timeout=120)
    log = (tmp_path / f"{job}.log").read_text()
    assert states[job] == "COMPLETED", log[-3000:] + (run_dir / "workers.log").read_text()[-2000:]
    assert re.search(r"Scheduler at:\s+tls://", (run_dir / "scheduler.log").read_text())
    assert not (run_dir / "tls").exists()  # the key is removed when the job ends
    assert np.array_equal(_levels(out)[0], _levels(src)[0])
    print(f"dask-cluster.sbatch (scheduler file, TLS): {time.monotonic() - t0:.1f} s")


@pytest.mark.slurm
def test_enhance_cluster_slurm_adaptive(sections: list[Path], tmp_path: Path) -> None:
    """`zse enhance --cluster slurm`: adaptive scaling from 0 jobs submits a worker job, TLS, result equals input."""
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (extra zse[slurm])")
    pytest.importorskip("cryptography", reason="cryptography not installed (extra zse[slurm])")
    t0 = time.monotonic()
    out = tmp_path / "enh.ome.zarr"
    run_dir = tmp_path / "run"
    _zse("enhance", str(sections[1]), str(out), "--model", "identity", "--quiet", "--block", "128", "--cluster", "slurm",
         "--profile", "ci", "--min-jobs", "0", "--max-jobs", "1", "--run-dir", str(run_dir), timeout=150)
    assert np.array_equal(_levels(out)[0], _levels(sections[1])[0])
    assert list((run_dir / "logs").glob("*.err")), "no worker job ran"
    assert not (run_dir / "tls").exists()
    print(f"zse enhance --cluster slurm: {time.monotonic() - t0:.1f} s")
