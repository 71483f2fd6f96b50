"""Hostile outputs and concurrent runs (issue 12): one owner per OUT, --overwrite that never loses data,
blocks that match the chunks, done-markers that are checked, one-line errors for what the OS refuses.

Every case checks the input tree (hashes and mtimes) afterwards, and what must survive (a victim image, an
old result) with the same digest.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from zse_pipeline_helpers import (
    assert_one_line_error,
    assert_same_levels,
    make_input,
    read_levels,
    tree_digest,
    zse_cmd,
    zse_env,
)

from zse.pipeline.lock import OutputLock, lock_path

RUN = ("--model", "test-conv", "--block", "32", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")


def _with(option: str, value: str) -> list[str]:
    """RUN with `option` set to `value`."""
    args = list(RUN)
    args[args.index(option) + 1] = value
    return args


def _wait_for(cond, what: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Poll `cond()` until true (an event the test or the run under test produces)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def reference(tmp_path: Path, small_input: Path, zse_inproc) -> Path:
    out = tmp_path / "ref.zarr"
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert proc.returncode == 0, proc.stderr
    return out


# ------------------------------------------------------------------------------------------ 3: one owner per OUT


def test_second_run_into_the_same_output_is_refused(tmp_path: Path, small_input: Path, reference: Path, zse_inproc) -> None:
    """The issue's reproduction: a run in progress, then `--overwrite --model identity` into the same OUT.
    The second is refused with a line naming the first; the first finishes and its output is its own."""
    before = tree_digest(small_input)
    out, gate = tmp_path / "o.zarr", tmp_path / "gate"
    first = subprocess.Popen(zse_cmd("enhance", small_input, out, *_with("--model", "test-gated")),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=zse_env(ZSE_TEST_GATE=str(gate)))
    try:
        _wait_for(lambda: (out / ".zse" / "run.json").is_file(), "the first run created its output", first)
        proc = zse_inproc("enhance", small_input, out, "--model", "identity", "--block", "32", "--tile", "32",
                          "--overlap", "8", "--workers", "0", "--quiet", "--overwrite")
        line = assert_one_line_error(proc, str(out), "another zse run", f"pid {first.pid}", socket.gethostname())
        assert "test-gated" in line, line  # the first run's command
        info = zse_inproc("info", out)
        assert f"being written now by pid {first.pid}" in info.stdout, info.stdout
        gate.touch()
        _, err = first.communicate(timeout=120)
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert_same_levels(out, reference)
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)["zse"]
    assert attrs["status"] == "complete" and attrs["provenance"]["model"]["name"] == "test-conv-0"
    assert json.loads((out / ".zse" / "run.json").read_text())["model"]["name"] == "test-conv-0"
    assert not lock_path(out).exists(), "the lock outlived its run"
    assert tree_digest(small_input) == before


def test_resume_while_running_is_refused(tmp_path: Path, small_input: Path) -> None:
    out = tmp_path / "o.zarr"
    with OutputLock(out, command="zse enhance (first)"):
        from zse.workflows.cli import main

        with pytest.raises(SystemExit) as exc:
            main(["enhance", str(small_input), str(out), "--model", "identity", "--workers", "0", "--quiet", "--resume"])
        assert exc.value.code == 2
    assert not out.exists()


def _foreign_lock(out: Path, *, host: str, pid: int, age_s: float = 0.0, boot_id: str | None = "other-boot") -> Path:
    p = lock_path(out)
    p.write_text(json.dumps({"host": host, "pid": pid, "boot_id": boot_id, "slurm_job": "4242",
                             "command": "zse enhance elsewhere", "started": "2026-12-04T10:00:00+0000", "token": "abc"}))
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))
    return p


def test_lock_of_a_live_run_on_another_node_is_respected(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "o.zarr"
    _foreign_lock(out, host="node17", pid=123)
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert_one_line_error(proc, "node17", "Slurm job 4242", "pid 123")
    assert not out.exists()
    assert lock_path(out).is_file(), "another run's lock was removed"


def test_lock_of_a_dead_node_is_taken_over(tmp_path: Path, small_input: Path, reference: Path, zse_inproc) -> None:
    """No heartbeat for longer than STALE_AFTER_S: the owner is gone (a killed job, a lost node)."""
    from zse.pipeline.lock import STALE_AFTER_S

    out = tmp_path / "o.zarr"
    _foreign_lock(out, host="node17", pid=123, age_s=STALE_AFTER_S + 60)
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert proc.returncode == 0, proc.stderr
    assert "took over the lock" in proc.stderr and "node17" in proc.stderr
    assert_same_levels(out, reference)
    assert not lock_path(out).exists()


def test_lock_of_a_killed_process_on_this_host_is_taken_over(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    from zse.pipeline.lock import _boot_id

    out = tmp_path / "o.zarr"
    _foreign_lock(out, host=socket.gethostname(), pid=dead.pid, boot_id=_boot_id())
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert proc.returncode == 0, proc.stderr
    assert "has exited" in proc.stderr


def test_lock_released_after_a_failed_run(tmp_path: Path, small_input: Path, zse_inproc, monkeypatch) -> None:
    out = tmp_path / "o.zarr"
    import zse.pipeline.run as run

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "0"))

    monkeypatch.setattr(run, "_gather", boom)
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert_one_line_error(proc, "No space left on device", "--resume")
    assert not lock_path(out).exists()


# ------------------------------------------------------------------------------------------ 4: never delete the input


@pytest.mark.parametrize("route", ["dataset-path", "symlinked-level"])
def test_overwrite_cannot_delete_what_the_input_reads(route: str, tmp_path: Path, zse_inproc) -> None:
    """The issue's reproduction: IN's level 0 is (through `..` or a symlink) victim's; OUT = victim --overwrite."""
    victim = make_input(tmp_path / "victim.ome.zarr", (3, 32, 32), seed=3)
    src = make_input(tmp_path / "in.ome.zarr", (3, 32, 32), seed=4)
    g = zarr.open_group(str(src), mode="r+")
    if route == "dataset-path":
        ome = dict(g.attrs)["ome"]
        ome["multiscales"][0]["datasets"][0]["path"] = "../victim.ome.zarr/0"
        g.attrs["ome"] = ome
    else:
        shutil.rmtree(src / "0")
        (src / "0").symlink_to(victim / "0", target_is_directory=True)
    before_v, before_in = tree_digest(victim), tree_digest(src)
    proc = zse_inproc("enhance", src, victim, *RUN, "--overwrite")
    assert_one_line_error(proc, str(src))
    assert tree_digest(victim) == before_v
    assert tree_digest(src) == before_in


# ------------------------------------------------------------------------------------------ 5: --overwrite keeps what is not zse's


def test_overwrite_refuses_a_foreign_zarr(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "theirs.zarr"
    g = zarr.open_group(str(out), mode="w")
    g.create_array("data", shape=(4, 4), dtype="uint8")[...] = 7
    (out / "labels.csv").write_text("a,b\n")
    before = tree_digest(out)
    proc = zse_inproc("enhance", small_input, out, *RUN, "--overwrite")
    assert_one_line_error(proc, str(out), "not an output zse wrote")
    assert tree_digest(out) == before


def test_overwrite_refuses_a_zse_output_holding_other_files(tmp_path: Path, small_input: Path, reference: Path,
                                                            zse_inproc) -> None:
    (reference / "thesis.txt").write_text("four years")
    before = tree_digest(reference)
    proc = zse_inproc("enhance", small_input, reference, *RUN, "--overwrite")
    assert_one_line_error(proc, "thesis.txt", "--overwrite")
    assert tree_digest(reference) == before


def test_overwrite_with_a_wrong_checkpoint_keeps_the_result(tmp_path: Path, small_input: Path, reference: Path,
                                                            zse_inproc) -> None:
    """A checkpoint that loads but whose weights do not fit its architecture (found when the model is built)."""
    import torch

    from zse.models.registry import WEIGHTS_DIR

    ck = torch.load(WEIGHTS_DIR / "unet3d-gan.pt", weights_only=True)
    ck["state"]["g_s"].pop(sorted(ck["state"]["g_s"])[0])
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    before = tree_digest(reference)
    proc = zse_inproc("enhance", small_input, reference, *_with("--model", str(bad)), "--overwrite")
    assert_one_line_error(proc, str(bad))
    assert tree_digest(reference) == before


def test_overwrite_interrupted_keeps_the_old_result(tmp_path: Path, small_input: Path, reference: Path, zse_inproc,
                                                    testmodels, monkeypatch) -> None:
    """A replacement that fails half-way leaves the finished result as it was; the next --overwrite succeeds."""
    from zse.errors import ModelError
    from zse.models import registry

    class FailLater(testmodels.ConvFactory):
        def build(self, device: str):
            inner = super().build(device)
            calls = [0]

            def predict(batch):
                calls[0] += 1
                if calls[0] > 3:  # the check on one tile and two batches pass
                    raise ModelError("model failed half-way (test)")
                return inner(batch)

            return predict

    monkeypatch.setitem(registry.REGISTRY, "test-fail-later", (lambda: FailLater(seed=7), "test"))
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    before = tree_digest(out)
    proc = zse_inproc("enhance", small_input, out, *_with("--model", "test-fail-later"), "--overwrite")
    assert_one_line_error(proc, "half-way")
    assert tree_digest(out) == before, "a failed --overwrite changed the finished result"
    proc = zse_inproc("enhance", small_input, out, *_with("--model", "test-conv-b"), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not np.array_equal(read_levels(out)[0], read_levels(reference)[0])
    assert not any(p.name.startswith(".o.zarr.zse") for p in tmp_path.iterdir()), sorted(os.listdir(tmp_path))


@pytest.mark.parametrize("kind", ["symlink", "dangling"])
def test_symlinked_output_is_refused(kind: str, tmp_path: Path, small_input: Path, reference: Path, zse_inproc) -> None:
    link = tmp_path / "link.zarr"
    link.symlink_to(reference if kind == "symlink" else tmp_path / "nowhere.zarr", target_is_directory=True)
    before = tree_digest(reference)
    proc = zse_inproc("enhance", small_input, link, *RUN, "--overwrite")
    assert_one_line_error(proc, str(link), "symbolic link")
    assert tree_digest(reference) == before and link.is_symlink()


# ------------------------------------------------------------------------------------------ 7: blocks that match the chunks


@pytest.mark.parametrize("block", ["17", "100", "300"])
def test_block_not_fitting_the_chunks_is_refused(block: str, tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "o.zarr"
    proc = zse_inproc("enhance", small_input, out, *_with("--block", block))
    assert_one_line_error(proc, f"--block {block}", "256")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ 8: done-markers are checked


def _level0_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "0").rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_resume_repairs_a_damaged_marked_shard(damage: str, tmp_path: Path, small_input: Path, reference: Path,
                                               zse_inproc) -> None:
    """The issue's reproduction: a shard deleted under its done-marker used to stay missing ('nothing to do')."""
    out = tmp_path / "o.zarr"
    shutil.copytree(reference, out)
    victim = _level0_files(out)[1]
    if damage == "deleted":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:-7])
    proc = zse_inproc("enhance", small_input, out, *RUN, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "redone" in proc.stderr
    assert_same_levels(out, reference)


def test_resume_repairs_a_damaged_pyramid_level(tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 1088, 64))
    ref, out = tmp_path / "ref.zarr", tmp_path / "o.zarr"
    args = ["--model", "identity", "--block", "64", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet"]
    assert zse_inproc("enhance", src, ref, *args).returncode == 0
    shutil.copytree(ref, out)
    next(p for p in sorted((out / "1").rglob("*")) if p.is_file() and p.name != "zarr.json").unlink()
    proc = zse_inproc("enhance", src, out, *args, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert_same_levels(out, ref)


def test_block_data_is_synced_before_its_marker(tmp_path: Path, small_input: Path, monkeypatch) -> None:
    import zse.pipeline.block as block_mod
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance

    events: list[str] = []
    real_sync, real_mark = block_mod.sync_region, block_mod.mark_done
    monkeypatch.setattr(block_mod, "sync_region", lambda *a: (events.append("sync"), real_sync(*a))[1])
    monkeypatch.setattr(block_mod, "mark_done", lambda *a: (events.append("mark"), real_mark(*a))[1])
    from zse.models.baselines.identity import IdentityFactory

    run_enhance(open_image(small_input), tmp_path / "o.zarr", IdentityFactory(),
                make_options(tile=32, overlap=8, block=32), progress=False)
    assert events and events == ["sync", "mark"] * (len(events) // 2)


# ------------------------------------------------------------------------------------------ 9, 12: one line, nothing half-made


def test_tile_larger_than_allowed(tmp_path: Path, small_input: Path, zse_inproc) -> None:
    out = tmp_path / "o.zarr"
    proc = zse_inproc("enhance", small_input, out, *_with("--tile", "100000"))
    assert_one_line_error(proc, "--tile 100000")
    assert not out.exists()


def test_read_only_output_folder(tmp_path: Path, small_input: Path, zse_inproc, monkeypatch) -> None:
    """(As root, permissions are not enforced here, so the OS's answer is simulated.)"""
    import zse.pipeline.io.write as write

    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(write.os, "access", lambda p, mode: Path(p) != ro)
    proc = zse_inproc("enhance", small_input, ro / "o.zarr", *RUN)
    assert_one_line_error(proc, "not writable", str(ro))
    assert list(ro.iterdir()) == []


def test_disk_full_is_one_line_and_resumable(tmp_path: Path, small_input: Path, reference: Path, zse_inproc,
                                             monkeypatch) -> None:
    from zarr.storage import _local

    real_put = _local._put
    writes = [0]

    def put(path, value, exclusive=False):
        if "/c/" in str(path) or "/0/" in str(path):
            writes[0] += 1
            if writes[0] > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_put(path, value, exclusive)

    monkeypatch.setattr(_local, "_put", put)
    out = tmp_path / "o.zarr"
    proc = zse_inproc("enhance", small_input, out, *RUN)
    assert_one_line_error(proc, "No space left on device")
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "incomplete"
    monkeypatch.setattr(_local, "_put", real_put)
    proc = zse_inproc("enhance", small_input, out, *RUN, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert_same_levels(out, reference)


def test_model_returning_nan_writes_nothing(tmp_path: Path, small_input: Path, zse_inproc, monkeypatch) -> None:
    from zse.models import registry

    class NaNFactory:
        name, checksum, margin_px = "nan-model", "0" * 64, 0
        input_zyx, translation_equivariant, core_px = None, True, None

        def build(self, device: str):
            return lambda x: x * float("nan")

    monkeypatch.setitem(registry.REGISTRY, "test-nan", (lambda: NaNFactory(), "test"))
    out = tmp_path / "o.zarr"
    proc = zse_inproc("enhance", small_input, out, *_with("--model", "test-nan"))
    assert_one_line_error(proc, "NaN")
    assert not out.exists()
