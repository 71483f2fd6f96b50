"""Ownership of an output: one writer per OUT, on one machine or across the nodes of a cluster.

A run that writes OUT (new, `--overwrite` or `--resume`) first creates the lock file
`<parent of OUT>/.<name of OUT>.zse-lock` with `O_CREAT | O_EXCL` — atomic on local file systems and on
NFS v3+/Lustre/GPFS — holding who owns it (host, pid, process start time, boot id, Slurm job, command,
start time) and a random token. The file sits beside OUT, not inside it, so it also guards an output
that does not exist yet or is being swapped in (see zse.pipeline.run).

While the run lasts, a daemon thread touches the lock every `HEARTBEAT_S` seconds. A second run finds
the lock and is refused with a line naming the first, unless the lock is stale:
- same host and boot: the owner process is gone (or its pid now belongs to a younger process);
- another host (or another boot): no heartbeat for `STALE_AFTER_S` seconds (a killed job, a lost node).
A stale lock is taken over (renamed away, then created anew), with a note on stderr.

Not promised: file systems without atomic exclusive create (very old NFS v2), or clocks between nodes
that disagree by more than `STALE_AFTER_S` (the heartbeat age is measured against the file's mtime,
set by the file server, and compared with this node's clock).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zse.errors import OutputError

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0


def lock_path(out_path: str | Path) -> Path:
    """`<parent>/.<name>.zse-lock` of an output path (resolved parent, so two spellings share one lock)."""
    out = Path(out_path)
    parent = out.parent.resolve()
    return parent / f".{out.name}.zse-lock"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _owner_info(command: str) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start_ticks": _start_ticks(pid),
        "boot_id": _boot_id(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "token": secrets.token_hex(8),
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or damaged: judged by its age alone
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def stale_reason(path: Path, info: dict[str, Any], now: float | None = None) -> str | None:
    """Why the lock at `path` (content `info`) no longer has a live owner, or None if it may still have one."""
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return "it is gone"
    same_machine = bool(info.get("boot_id")) and info.get("host") == socket.gethostname() and info.get("boot_id") == _boot_id()
    if same_machine and isinstance(info.get("pid"), int):
        pid = int(info["pid"])
        if not _pid_alive(pid):
            return f"its owner (pid {pid} on this host) has exited"
        ticks = info.get("start_ticks")
        if ticks is not None and _start_ticks(pid) not in (None, ticks):
            return f"its owner (pid {pid} on this host) has exited (the pid was reused)"
        return None
    if age > STALE_AFTER_S:
        return f"its owner has not touched it for {age:.0f} s (> {STALE_AFTER_S:.0f} s)"
    return None


def describe(info: dict[str, Any]) -> str:
    """`pid 123 on host node01 (Slurm job 45), started …: zse enhance …` from a lock's content."""
    if not info:
        return "an unknown zse run (unreadable lock)"
    job = f" (Slurm job {info['slurm_job']})" if info.get("slurm_job") else ""
    cmd = f": {info['command']}" if info.get("command") else ""
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}{job}, started {info.get('started', '?')}{cmd}"


def lock_owner(out_path: str | Path) -> str | None:
    """Who holds the lock of `out_path` (describe()), or None when nobody (or only a stale owner) does."""
    path = lock_path(out_path)
    info = _read(path)
    if info is None or stale_reason(path, info) is not None:
        return None
    return describe(info)


class OutputLock:
    """Exclusive ownership of an output path for one run (a context manager; see the module docstring).

    Args:
        out_path: the output the run will write (need not exist).
        command: what the owner runs, recorded for the message a second run gets.
        note: called with a one-line note when a stale lock is taken over (default: stderr).
    """

    def __init__(self, out_path: str | Path, command: str = "", note: Callable[[str], None] | None = None) -> None:
        self.out_path = Path(out_path)
        self.path = lock_path(out_path)
        self.info = _owner_info(command or " ".join(sys.argv))
        self._note = note or (lambda line: print(f"zse: note: {line}", file=sys.stderr))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ acquire / release

    def acquire(self) -> OutputLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # `zse enhance IN results/new/OUT` creates results/new
        except OSError as exc:
            raise OutputError(f"cannot write {self.out_path}: cannot create its folder {self.path.parent} ({exc.strerror})") from exc
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return self
            info = _read(self.path)
            if info is None:
                continue  # released between our create and read: try again
            reason = stale_reason(self.path, info)
            if reason is None:
                raise OutputError(f"{self.out_path} is being written by another zse run ({describe(info)}); wait for "
                                  f"it to finish or stop it (its lock: {self.path}, removed when it ends, taken over "
                                  f"{STALE_AFTER_S:.0f} s after a killed owner's last heartbeat)")
            if self._take_over(info):
                self._note(f"took over the lock of {self.out_path} from {describe(info)}: {reason}")
                self._start_heartbeat()
                return self
        raise OutputError(f"{self.out_path}: could not take its lock {self.path} (other runs keep creating it); try again")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise OutputError(f"cannot write {self.out_path}: creating its lock {self.path} failed ({exc.strerror})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(self.info, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _take_over(self, stale: dict[str, Any]) -> bool:
        """Move the stale lock aside and create ours; False if someone else changed it meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.info['token']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return self._create()
        moved = _read(aside)
        if moved is not None and moved.get("token") != stale.get("token"):
            # A fresh lock replaced the stale one between our read and our rename: put it back.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return self._create()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        info = _read(self.path)
        if info is not None and info.get("token") == self.info["token"]:
            self.path.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.path)
                except OSError:
                    pass

        self._thread = threading.Thread(target=beat, name="zse-lock-heartbeat", daemon=True)
        self._thread.start()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
