"""Plain helpers of the pipeline tests (imported by conftest.py and the test modules; fixtures stay in conftest).

tests/pipeline has no __init__.py: pytest puts this folder on sys.path, so `import zse_pipeline_helpers`
works from every module here (the name is unique across the test folders).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

LAUNCHER = "import sys, zse_testmodels; zse_testmodels.register(); from zse.workflows.cli import main; main(sys.argv[1:])"


def zse_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def zse_cmd(*args: str | os.PathLike[str]) -> list[str]:
    """argv running the real zse CLI with the test models registered."""
    return [sys.executable, "-c", LAUNCHER, *[str(a) for a in args]]


def tissue_volume(shape: tuple[int, ...], seed: int = 0, dtype: str = "uint8") -> np.ndarray:
    """Seeded brightfield-like volume: light background, a dark textured blob (tissue) in the middle."""
    rng = np.random.default_rng(seed)
    z, y, x = shape[-3:]
    top = float(np.iinfo(np.dtype(dtype)).max)
    yy, xx = np.mgrid[0:y, 0:x]
    blob = ((yy - y / 2) / (0.45 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 < 1.0
    base = np.where(blob, 0.35 * top, 0.94 * top)
    noise = rng.normal(0, 0.08 * top, size=shape)
    vol = np.clip(base + noise, 0, top)
    return vol.astype(dtype)


def make_input(path: Path, shape: tuple[int, ...] = (3, 96, 96), *, seed: int = 0, dtype: str = "uint8",
               ngff: str = "0.5", axes: str = "zyx", block: int = 1024, overwrite: bool = False) -> Path:
    """Write a tiny OME-Zarr z-stack with zse's own writer; returns its path."""
    from zse.pipeline.io.write import write_volume

    write_volume(path, tissue_volume(shape, seed, dtype), axes=axes, voxel_size_um=(1.0, 0.5, 0.5), ngff=ngff,
                 progress=False, block=block, overwrite=overwrite)
    return path


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mtime_ns)} of every file under `root` (directories: ('dir', mtime_ns))."""
    out: dict[str, tuple[str, int]] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        st = p.lstat()
        if p.is_dir():
            out[rel] = ("dir", st.st_mtime_ns)
        else:
            out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


def read_levels(path: Path) -> list[np.ndarray]:
    """Every pyramid level array of an OME-Zarr written by zse, as numpy, level 0 first."""
    import zarr

    g = zarr.open_group(str(path), mode="r")
    keys = sorted((k for k in g.array_keys() if k.isdigit()), key=int)
    return [np.asarray(g[k][...]) for k in keys]


def assert_same_levels(a: Path, b: Path) -> None:
    la, lb = read_levels(a), read_levels(b)
    assert len(la) == len(lb) and len(la) >= 1
    for level, (x, y) in enumerate(zip(la, lb, strict=True)):
        assert x.dtype == y.dtype and x.shape == y.shape, f"level {level}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert np.array_equal(x, y), f"level {level}: {int((x != y).sum())} voxels differ"


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 2, no traceback, stderr's last line starts with `zse: error:` and contains `needles`."""
    err = proc.stderr
    assert proc.returncode != 0, f"expected failure, got rc 0\nstdout: {proc.stdout}\nstderr: {err}"
    assert "Traceback" not in err, f"traceback on stderr:\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    errors = [ln for ln in lines if ln.startswith("zse: error:")]
    assert len(errors) == 1, f"expected one 'zse: error:' line, stderr was:\n{err}"
    assert proc.returncode == 2, f"rc {proc.returncode}, stderr:\n{err}"
    line = errors[0]
    for n in needles:
        assert n in line, f"{n!r} not in error line {line!r}"
    return line


def run_cli(capsys: Any, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """`zse ARGS…` in this process through `zse.workflows.cli.main`; output captured with pytest's `capsys`.

    Returns a CompletedProcess: returncode from SystemExit; an exception escaping main() (a bug: the CLI
    would print a traceback) becomes returncode 1 with its traceback on stderr.
    """
    import traceback

    from zse.workflows.cli import main

    argv = [str(a) for a in args]
    capsys.readouterr()
    tb = ""
    try:
        main(argv)
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as the traceback the CLI would show
        rc, tb = 1, traceback.format_exc()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["zse", *argv], rc, out, err + tb)
