"""Crash-safety of `zse enhance`: SIGKILL and resume, a worker killed mid-run, --overwrite, --resume on a
finished output, and the input never written to.

All runs are tiny (a few MB) and seeded; the test model is a random conv net (conftest.py). No test races a
run against a clock: a run to be interrupted is held (`ConvFactory`'s hold): once its first level-0 block is
marked done, its model calls wait for a gate file that only the test creates. The test waits for that done
marker, then kills or interrupts the run (or kills a worker and opens the gate), so the run is always caught
with at least one block and far from all blocks done, however fast or slow the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
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

# 40 level-0 blocks of 64 × 64 and 10 level-1 regions: (3, 1280, 128) has a second level (1280 > 1024).
KILL_SHAPE = (3, 1280, 128)
KILL_OPTS = ("--block", "64", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")
# The run that gets killed uses the default local Dask cluster (one worker process, a child of zse): the
# whole process group dies, and the resume (in-process, --workers 0) must still give identical bytes.
KILL_RUN_OPTS = ("--block", "64", "--tile", "32", "--overlap", "8", "--quiet", "--dashboard-address", "none")


def _markers(out: Path, level: int = 0) -> list[Path]:
    d = out / ".zse" / "done" / f"L{level}"
    return [p for p in d.iterdir() if not p.name.startswith(".")] if d.is_dir() else []


def _mark_interrupted(g: zarr.Group) -> None:
    """Make a finished output look like an interrupted one: no OME metadata, zse status "incomplete"
    (what `create_output` writes before any block and a killed run leaves behind)."""
    attrs = dict(g.attrs)
    for k in ("ome", "multiscales", "omero"):
        attrs.pop(k, None)
    attrs["zse"] = {**attrs["zse"], "status": "incomplete"}
    g.attrs.clear()
    g.attrs.update(attrs)


def _n_blocks(shape_yx: tuple[int, int], block: int) -> int:
    return -(-shape_yx[0] // block) * -(-shape_yx[1] // block)


def _held_env(out: Path, gate: Path) -> dict[str, str]:
    """Environment of a `zse enhance … OUT` run held after its first done block until `gate` exists (conftest.py)."""
    assert not gate.exists()
    return zse_env(ZSE_TEST_HOLD_AFTER=str(out / ".zse" / "done" / "L0"), ZSE_TEST_GATE=str(gate))


def _wait_until_held(out: Path, gate: Path, proc: subprocess.Popen | None = None, timeout: float = 60) -> int:
    """Wait until the run writing `out` is held (its model created `gate`.waiting, which it does only once a
    level-0 block of `out` is marked done); returns the number of level-0 markers then (≥ 1).

    Fails if `proc` exits first or the run is not held within `timeout` seconds (a held run cannot finish, so
    only a broken run or a broken hold ends up here).
    """
    waiting = gate.with_name(gate.name + ".waiting")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            err = err.decode() if isinstance(err, bytes) else err
            pytest.fail(f"zse exited (rc {proc.returncode}) before the test could interrupt it; stderr:\n{err}")
        if waiting.exists():
            n = len(_markers(out))
            assert n >= 1, "the model was held before any block was marked done"
            return n
        time.sleep(0.005)
    pytest.fail(f"the run writing {out} was not held within {timeout} s")


def _kill_after_first_marker(cmd: list[str], out: Path, gate: Path) -> int:
    """Start `cmd` (held: the gate is never opened) in its own session, SIGKILL its process group once it is held
    (≥ 1 level-0 block marked done); returns the number of level-0 markers at the kill."""
    proc = subprocess.Popen(cmd, env=_held_env(out, gate), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    pgid = os.getpgid(proc.pid)
    try:
        _wait_until_held(out, gate, proc)
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=30)
        _assert_group_gone(pgid)
        return len(_markers(out))
    finally:
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=30)


def _assert_group_gone(pgid: int, timeout: float = 10) -> None:
    """No live (non-zombie) process of process group `pgid` is left: Dask workers died with zse."""
    import psutil

    deadline = time.monotonic() + timeout
    alive: list[str] = []
    while time.monotonic() < deadline:
        alive = []
        for p in psutil.process_iter(["pid", "status", "cmdline"]):
            try:
                if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.info['pid']}: {' '.join(p.info['cmdline'] or [])[:120]}")
            except (ProcessLookupError, psutil.Error):
                continue
        if not alive:
            return
        time.sleep(0.1)
    pytest.fail(f"processes of the killed run survive: {alive}")


@pytest.fixture(scope="module")
def kill_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_input(tmp_path_factory.mktemp("kill") / "in.zarr", KILL_SHAPE, seed=1)


@pytest.fixture(scope="module")
def kill_input_digest(kill_input: Path) -> dict[str, tuple[str, int]]:
    """File hashes and mtimes of the kill input before any run read it."""
    return tree_digest(kill_input)


@pytest.fixture(scope="module")
def reference_output(kill_input: Path, kill_input_digest, tmp_path_factory: pytest.TempPathFactory,
                     testmodels_dir: Path) -> Path:
    """An uninterrupted run of the test model with KILL_OPTS (subprocess, like the interrupted one)."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    proc = subprocess.run(zse_cmd("enhance", kill_input, out, "--model", "test-conv", *KILL_OPTS),
                          capture_output=True, text=True, timeout=120, env=zse_env())
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def interrupted_output(kill_input: Path, kill_input_digest, tmp_path_factory: pytest.TempPathFactory,
                       testmodels_dir: Path) -> Path:
    """A run (default local Dask worker) SIGKILLed, whole process group, once its first block was marked done
    (held there: its gate is never opened)."""
    d = tmp_path_factory.mktemp("killed")
    out = d / "out.zarr"
    n = _kill_after_first_marker(zse_cmd("enhance", kill_input, out, "--model", "test-conv", *KILL_RUN_OPTS), out,
                                 d / "gate")
    total = _n_blocks(KILL_SHAPE[-2:], 64)
    assert 1 <= n < total, f"killed with {n} of {total} blocks done: the test did not interrupt the run"
    return out


def test_killed_run_is_not_an_image(interrupted_output: Path, zse_inproc) -> None:
    out = interrupted_output
    group = zarr.open_group(str(out), mode="r")
    attrs = dict(group.attrs)
    assert "ome" not in attrs and "multiscales" not in attrs, "an interrupted output carries OME metadata"
    assert attrs["zse"]["status"] == "incomplete"
    import ome_zarr_models

    with pytest.raises(Exception):  # noqa: B017 - any refusal will do: it must not validate as an image
        ome_zarr_models.open_ome_zarr(group)
    info = zse_inproc("info", out)
    assert info.returncode == 0, info.stderr
    assert "INCOMPLETE" in info.stdout
    assert "Traceback" not in info.stderr


@pytest.fixture(scope="module")
def resumed_output(interrupted_output: Path, kill_input: Path, tmp_path_factory: pytest.TempPathFactory,
                   testmodels_dir: Path) -> tuple[Path, int, subprocess.CompletedProcess[str]]:
    """(output, blocks done before, process) of `zse enhance --resume` on a copy of the interrupted output."""
    out = tmp_path_factory.mktemp("resumed") / "resumed.zarr"
    shutil.copytree(interrupted_output, out)  # a copy: other tests need the interrupted output as it is
    done_before = len(_markers(out))
    proc = subprocess.run(zse_cmd("enhance", kill_input, out, "--model", "test-conv", *KILL_OPTS, "--resume"),
                          capture_output=True, text=True, timeout=120, env=zse_env())
    return out, done_before, proc


def test_resume_after_sigkill_is_bit_identical(resumed_output, reference_output: Path, zse_inproc) -> None:
    out, done_before, proc = resumed_output
    assert proc.returncode == 0, proc.stderr
    assert f"{done_before} already done" in proc.stderr, proc.stderr
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "complete"
    assert len(read_levels(out)) == 2, "the test input should give two pyramid levels"
    assert_same_levels(out, reference_output)
    import ome_zarr_models

    ome_zarr_models.open_ome_zarr(zarr.open_group(str(out), mode="r"))  # a valid image now
    info = zse_inproc("info", out)
    assert "zse run: complete" in info.stdout, info.stdout


def test_input_never_written(kill_input: Path, kill_input_digest, reference_output: Path, resumed_output,
                             zse_inproc) -> None:
    """After a finished run, a SIGKILLed run, its resume and `zse info`, the input's files, hashes and mtimes are
    unchanged."""
    assert resumed_output[2].returncode == 0
    assert zse_inproc("info", kill_input).returncode == 0
    assert tree_digest(kill_input) == kill_input_digest


def test_resume_after_crash_in_pyramid(reference_output: Path, kill_input: Path, tmp_path: Path, zse_inproc) -> None:
    """A crash while building level 1 (some level-1 regions unmarked and garbage, no OME metadata): --resume
    redoes only those regions and gives back the finished output."""
    out = tmp_path / "out.zarr"
    shutil.copytree(reference_output, out)
    g = zarr.open_group(str(out), mode="r+")
    arr = g["1"]
    for r in (0, 4, 9):
        (out / ".zse" / "done" / "L1" / f"{r}_0").unlink()
        arr[..., r * 64 : (r + 1) * 64, :] = 7
    _mark_interrupted(g)
    proc = zse_inproc("enhance", kill_input, out, "--model", "test-conv", *KILL_OPTS, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "0 enhanced" in proc.stderr and "pyramid tasks: 3" in proc.stderr, proc.stderr
    assert_same_levels(out, reference_output)


# ------------------------------------------------------------------------------------------ Ctrl-C


@pytest.fixture(scope="module")
def sigint_run(kill_input: Path, tmp_path_factory: pytest.TempPathFactory,
               testmodels_dir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Ctrl-C in a terminal: SIGINT to the whole foreground process group (zse and its Dask worker), sent once
    the first block is marked done (the run is held there: its gate is never opened)."""
    d = tmp_path_factory.mktemp("sigint")
    out = d / "out.zarr"
    cmd = zse_cmd("enhance", kill_input, out, "--model", "test-conv", *KILL_RUN_OPTS)
    # A shell that starts the test run in the background (CI runners, nohup) leaves SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child a terminal's default disposition.
    proc = subprocess.Popen(cmd, env=_held_env(out, d / "gate"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pgid = os.getpgid(proc.pid)
    try:
        _wait_until_held(out, d / "gate", proc)
        os.killpg(pgid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    _assert_group_gone(pgid)
    return out, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_ctrl_c_aborts_and_resumes(sigint_run, reference_output: Path, kill_input: Path, tmp_path: Path,
                                   zse_inproc) -> None:
    out, proc = sigint_run
    assert proc.returncode == 130, proc.stderr
    assert "zse: aborted" in proc.stderr.splitlines(), proc.stderr
    assert len(_markers(out)) < _n_blocks(KILL_SHAPE[-2:], 64), "the run finished before Ctrl-C"
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "incomplete"
    resumed = tmp_path / "resumed.zarr"
    shutil.copytree(out, resumed)
    r = zse_inproc("enhance", kill_input, resumed, "--model", "test-conv", *KILL_OPTS, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_levels(resumed, reference_output)


def test_ctrl_c_prints_no_traceback(sigint_run) -> None:
    _, proc = sigint_run
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == ["zse: aborted"], proc.stderr


def _resume_args(change: tuple[str, str]) -> list[str]:
    args = ["--model", "test-conv", *KILL_OPTS]
    k = args.index(change[0])
    args[k + 1] = change[1]
    return args


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("--overlap", "12"), "overlap"),
        (("--tile", "40"), "tile"),
        (("--block", "128"), "block"),
        (("--model", "test-conv-b"), "model"),
        (("--model", "identity"), "model"),
    ],
    ids=["overlap", "tile", "block", "model-other-seed", "model-identity"],
)
def test_resume_with_other_options_is_refused(interrupted_output: Path, kill_input: Path, zse_inproc, change, needle,
                                              tmp_path: Path) -> None:
    out = tmp_path / "out.zarr"
    shutil.copytree(interrupted_output, out)
    before = tree_digest(out)
    proc = zse_inproc("enhance", kill_input, out, *_resume_args(change), "--resume")
    line = assert_one_line_error(proc, "--resume", needle)
    assert str(out) in line
    assert tree_digest(out) == before, "a refused --resume changed the output"


def test_resume_with_other_options_is_refused_cli(interrupted_output: Path, kill_input: Path, run_zse,
                                                  tmp_path: Path) -> None:
    """The same through a real `zse` process: exit status 2, one line, no traceback."""
    out = tmp_path / "out.zarr"
    shutil.copytree(interrupted_output, out)
    proc = run_zse("enhance", kill_input, out, *_resume_args(("--overlap", "12")), "--resume")
    line = assert_one_line_error(proc, "--resume", "overlap")
    assert "was 8, now 12" in line


def test_worker_killed_mid_run(tmp_path: Path, testmodels) -> None:
    """LocalCluster with 2 worker processes; one is SIGKILLed once a block is done (the model is held there
    until the kill, then the gate is opened); the run still completes and equals an uninterrupted run on the
    same cluster."""
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance
    from zse.workflows.cluster import open_client

    src_path = make_input(tmp_path / "in.zarr", (3, 256, 96), seed=3)
    before = tree_digest(src_path)
    source = open_image(src_path)
    opts = make_options(tile=32, overlap=8, block=32)  # 24 blocks
    out, gate = tmp_path / "out.zarr", tmp_path / "gate"
    # Workers cache the predictor per model checksum: both runs use this factory (the gate is open for the second).
    factory = testmodels.ConvFactory(seed=0, hold_after=str(out / ".zse" / "done" / "L0"), gate=str(gate))
    killed: dict[str, int] = {}

    with open_client(device="cpu", workers=2, threads_per_worker=1, dashboard_address="none") as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2
        victim = sorted(pids.values())[0]

        def killer() -> None:
            try:
                killed["at"] = _wait_until_held(out, gate)
                os.kill(victim, signal.SIGKILL)
            finally:
                gate.touch()  # let the held run go on (also when it was never held: the assertions below fail)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        summary = run_enhance(source, out, factory, opts, client=client, progress=False)
        t.join(timeout=5)
        assert "at" in killed, "the worker was never killed"
        assert killed["at"] < summary.blocks_total, "the run finished before the worker was killed"
        assert summary.blocks_done + summary.blocks_skipped == summary.blocks_total
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)
        assert victim not in client.run(os.getpid).values()

        ref = tmp_path / "ref.zarr"
        run_enhance(source, ref, factory, opts, client=client, progress=False)
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "complete"
    assert len(_markers(out)) == summary.blocks_total
    assert_same_levels(out, ref)
    assert tree_digest(src_path) == before


@pytest.fixture(scope="module")
def finished_small(tmp_path_factory: pytest.TempPathFactory, testmodels) -> tuple[Path, Path, tuple[str, ...]]:
    """(input, finished output, options) of a small finished run (in this process, through cli.main)."""
    from zse.models import registry
    from zse.workflows.cli import main

    d = tmp_path_factory.mktemp("finished")
    src = make_input(d / "in.zarr", (3, 96, 96), seed=5)
    out = d / "out.zarr"
    args = ("--model", "test-conv", "--block", "32", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.REGISTRY, "test-conv", (lambda: testmodels.ConvFactory(seed=0), "test"))
        try:
            main(["enhance", str(src), str(out), *args])
        except SystemExit as exc:
            assert not exc.code, f"zse enhance exited {exc.code}"
    return src, out, args


def test_overwrite_replaces_existing_output(tmp_path: Path, finished_small, zse_inproc) -> None:
    src, ref, args = finished_small
    before = tree_digest(src)
    out = tmp_path / "out.zarr"
    make_input(out, (3, 40, 40), seed=9)  # an existing OUT holding another image zse wrote
    proc = zse_inproc("enhance", src, out, *args, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert read_levels(out)[0].shape == (3, 96, 96)
    assert_same_levels(out, ref)
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "complete"
    assert tree_digest(src) == before


def test_resume_on_finished_output_keeps_arrays(tmp_path: Path, finished_small, zse_inproc) -> None:
    src, finished, args = finished_small
    out = tmp_path / "out.zarr"
    shutil.copytree(finished, out)
    proc = zse_inproc("enhance", src, out, *args, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "0 enhanced" in proc.stderr and "9 already done" in proc.stderr, proc.stderr
    assert_same_levels(out, finished)
    assert zarr.open_group(str(out), mode="r").attrs["zse"]["status"] == "complete"
    assert sorted(p.name for p in _markers(out)) == sorted(p.name for p in _markers(finished))


def test_resume_on_finished_output_changes_nothing(tmp_path: Path, finished_small, zse_inproc) -> None:
    src, finished, args = finished_small
    out = tmp_path / "out.zarr"
    shutil.copytree(finished, out)
    before = tree_digest(out)
    before_attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    time.sleep(1.1)  # a rewrite would carry a later timestamp
    proc = zse_inproc("enhance", src, out, *args, "--resume")
    assert proc.returncode == 0, proc.stderr
    after_attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert after_attrs["zse"].get("summary") == before_attrs["zse"].get("summary")
    assert after_attrs == before_attrs
    assert {k: v[0] for k, v in tree_digest(out).items()} == {k: v[0] for k, v in before.items()}


def test_exported_program_model_and_resume(tmp_path: Path, finished_small, conv_pt2, zse_inproc) -> None:
    """`--model X.pt2` runs the exported net (same weights as test-conv: same output up to one grey level);
    --resume with another .pt2 (other weights) is refused, with the same one resumes."""
    src, conv_out, args = finished_small
    out = tmp_path / "out.zarr"
    pt2_args = list(args)
    pt2_args[1] = str(conv_pt2[0])
    proc = zse_inproc("enhance", src, out, *pt2_args)
    assert proc.returncode == 0, proc.stderr
    for a, b in zip(read_levels(out), read_levels(conv_out), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    before = tree_digest(out)
    other = list(args)
    other[1] = str(conv_pt2[1])
    proc = zse_inproc("enhance", src, out, *other, "--resume")
    assert_one_line_error(proc, "--resume", "model")
    assert tree_digest(out) == before
    proc = zse_inproc("enhance", src, out, *pt2_args, "--resume")
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ simulated crashes
# Cheaper than a SIGKILL and exact about what a crash leaves behind: take a finished output, drop some done
# markers, scribble over those blocks, leave stale marker temp files and remove the OME metadata; --resume must
# give back the finished output, byte for byte.

SIM_OPTS = ("--model", "test-conv", "--block", "32", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")


def _simulate_crash(out: Path, blocks: list[tuple[int, int]], block: int) -> None:
    g = zarr.open_group(str(out), mode="r+")
    arr = g["0"]
    rng = np.random.default_rng(7)
    for r, c in blocks:
        (out / ".zse" / "done" / "L0" / f"{r}_{c}").unlink()
        ys, xs = slice(r * block, min((r + 1) * block, arr.shape[-2])), slice(c * block, min((c + 1) * block, arr.shape[-1]))
        region = arr[..., ys, xs]
        arr[..., ys, xs] = rng.integers(0, 255, size=region.shape, dtype=region.dtype)
    # a marker temp file left by a kill inside _atomic_write
    (out / ".zse" / "done" / "L0" / f".{blocks[0][0]}_{blocks[0][1]}.99999.tmp").write_text("")
    _mark_interrupted(g)


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_resume_rewrites_unmarked_blocks(ngff: str, tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 96, 96), seed=6)
    before = tree_digest(src)
    ref = tmp_path / "ref.zarr"
    proc = zse_inproc("enhance", src, ref, *SIM_OPTS, "--ngff", ngff)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.zarr"
    shutil.copytree(ref, out)
    _simulate_crash(out, [(0, 0), (1, 2), (2, 1)], 32)
    info = zse_inproc("info", out)
    assert "INCOMPLETE" in info.stdout
    proc = zse_inproc("enhance", src, out, *SIM_OPTS, "--ngff", ngff, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "3 enhanced" in proc.stderr and "6 already done" in proc.stderr, proc.stderr
    assert_same_levels(out, ref)
    import ome_zarr_models

    ome_zarr_models.open_ome_zarr(zarr.open_group(str(out), mode="r"), version=ngff)
    assert tree_digest(src) == before


@pytest.mark.parametrize("damage", ["truncated", "garbled-index"])
def test_resume_rewrites_torn_shard(damage: str, tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 96, 96), seed=6)
    ref = tmp_path / "ref.zarr"
    proc = zse_inproc("enhance", src, ref, *SIM_OPTS)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.zarr"
    shutil.copytree(ref, out)
    _simulate_crash(out, [(1, 1)], 32)
    shard = out / "0" / "c" / "0" / "1" / "1"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3] if damage == "truncated" else data[:-16] + b"\xff" * 16)
    proc = zse_inproc("enhance", src, out, *SIM_OPTS, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert_same_levels(out, ref)


def test_resume_with_changed_input_is_refused(tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 96, 96), seed=6)
    ref = tmp_path / "ref.zarr"
    assert zse_inproc("enhance", src, ref, *SIM_OPTS).returncode == 0
    out = tmp_path / "out.zarr"
    shutil.copytree(ref, out)
    _simulate_crash(out, [(1, 1)], 32)
    before = tree_digest(out)
    make_input(src, (3, 96, 96), seed=12, overwrite=True)  # another slide, same shape, written to the same path
    proc = zse_inproc("enhance", src, out, *SIM_OPTS, "--resume")
    assert_one_line_error(proc, "--resume", "input")
    assert tree_digest(out) == before


@pytest.mark.parametrize("command", ["enhance", "info"])
def test_damaged_run_record(command: str, tmp_path: Path, finished_small, zse_inproc) -> None:
    src, finished, args = finished_small
    out = tmp_path / "out.zarr"
    shutil.copytree(finished, out)
    (out / ".zse" / "run.json").write_text('{"hash": "abc", "inp')
    proc = zse_inproc("enhance", src, out, *args, "--resume") if command == "enhance" else zse_inproc("info", out)
    assert_one_line_error(proc, "run.json")
