"""Fixtures for tests that need a running one-node Slurm (started by .ci/slurm-up.sh).

`.ci/slurm-up.sh` writes "ok" or "unavailable: REASON" to $ZSE_SLURM_DIR/status (default
/tmp/zse-slurm/status). Tests marked `slurm` are skipped with that reason when Slurm is not usable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = Path(os.environ.get("ZSE_SLURM_DIR", "/tmp/zse-slurm"))
_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def slurm_unavailable_reason() -> str | None:
    """None when Slurm answers; else why the `slurm` tests are skipped."""
    status_file = SLURM_DIR / "status"
    if not status_file.is_file():
        return f"Slurm not started: run .ci/slurm-up.sh (no status file {status_file})"
    status = status_file.read_text().strip()
    if status != "ok":
        return f"Slurm unavailable ({status_file}): {status}"
    for tool in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"Slurm status says ok but {tool} is not on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    state = out.stdout.strip().splitlines()[0] if out.stdout.strip() else out.stderr.strip()
    if not state.startswith(("idle", "mix", "alloc", "comp")):
        return f"Slurm node not usable (sinfo: {state!r}); rerun .ci/slurm-up.sh"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "slurm" in item.keywords:
        reason = slurm_unavailable_reason()
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def fake_gpus() -> int:
    """Number of fake GPUs configured as gres=gpu in the test Slurm (0: none)."""
    try:
        return int((SLURM_DIR / "gpus").read_text().strip())
    except (OSError, ValueError):
        return 0


def job_state(job_id: str) -> str:
    """State of a Slurm job (or of the worst task of an array job), e.g. RUNNING, COMPLETED."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=20)
    states = [part.split("=", 1)[1] for line in out.stdout.splitlines() for part in line.split() if part.startswith("JobState=")]
    if not states:
        return "UNKNOWN"
    for bad in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
        if bad in states:
            return bad
    if all(s == "COMPLETED" for s in states):
        return "COMPLETED"
    return next(s for s in states if s not in _FINAL) if any(s not in _FINAL for s in states) else states[0]


def wait_jobs(job_ids: Iterable[str], timeout: float = 120.0) -> dict[str, str]:
    """Wait until every job is in a final state; return {job_id: state}."""
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        states = {j: job_state(j) for j in ids}
        if all(s in _FINAL for s in states.values()):
            return states
        if time.monotonic() > deadline:
            for j in ids:
                subprocess.run(["scancel", j], capture_output=True, timeout=20)
            raise AssertionError(f"Slurm jobs not finished after {timeout:.0f} s: {states}")
        time.sleep(0.5)


@pytest.fixture
def slurm_wait():
    """`wait_jobs(job_ids, timeout)` and `job_state(job_id)` for tests (conftest modules are not importable)."""
    wait_jobs.job_state = job_state  # type: ignore[attr-defined]
    return wait_jobs


@pytest.fixture
def slurm_jobs() -> Iterable[list[str]]:
    """A list to append submitted job ids to; they are cancelled after the test."""
    jobs: list[str] = []
    yield jobs
    for j in jobs:
        subprocess.run(["scancel", j], capture_output=True, timeout=20)


def _tls_without_client_cert_refused(host_port: str, ca: Path) -> bool:
    """Open a raw TLS connection that trusts the CA but presents no certificate; True if refused."""
    import socket
    import ssl

    host, port = host_port.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.settimeout(5)
                # TLS 1.3: the server checks the client certificate once the client's handshake ends
                tls.sendall(b"\x00" * 8)
                return tls.recv(1) == b""
        except (ssl.SSLError, ConnectionError):
            return True
        except TimeoutError:
            return False


@pytest.fixture
def tls_refused():
    """`tls_refused(host_port, ca_file) -> bool`: a TLS client without a certificate is turned away."""
    return _tls_without_client_cert_refused
