"""Hostile inputs (issue 12): corrupt or missing chunks, dataset paths that leave the image, malformed metadata.

Every refusal is one line `zse: error: …` naming the input, exit status 2, the input tree untouched
(file hashes and mtimes) and no output left behind. Reading code lives in zse.pipeline.io.ngff (metadata,
dataset paths) and zse.pipeline.io.chunks (Blosc frame checks, missing-chunk listing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zse_pipeline_helpers import assert_one_line_error, make_input, tree_digest, zse_env

from zse.errors import InputError

RUN = ("--model", "test-conv", "--block", "32", "--tile", "32", "--overlap", "8", "--workers", "0", "--quiet")


def _truncate(f: Path, keep: float = 0.5) -> Path:
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])
    return f


def _first_chunk_file(array_dir: Path) -> Path:
    files = sorted(p for p in array_dir.rglob("*") if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs"))
    assert files, f"no chunk files under {array_dir}"
    return files[0]


def _image(path: Path, data: np.ndarray, *, zarr_format: int, **array_kwargs: Any) -> Path:
    """A `zyx` OME-Zarr image (level 0 only) whose array is created with `array_kwargs` (chunks, shards, codecs…)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    arr = g.create_array("0", shape=data.shape, dtype=data.dtype, fill_value=0, **array_kwargs)
    arr[...] = data
    ms = {"name": "t", "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
          "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]}]}
    if zarr_format == 3:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [{"version": "0.4", **ms}]
    return path


def _volume(shape: tuple[int, ...], dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    top = np.iinfo(np.dtype(dtype)).max
    return np.random.default_rng(seed).integers(top // 2, top, size=shape, dtype=np.dtype(dtype))


# ------------------------------------------------------------------------------------- truncated Blosc chunks

# One interpreter (torch imported: upstream Blosc's read past a corrupt buffer segfaulted only there) forks 10
# children; each opens the image and reads level 0 as zse does, and exits 2 after printing the InputError as
# the CLI would. A fork is cheap, and each child's heap state differs by its own allocations.
_FORKED_READS = textwrap.dedent("""
    import os, sys
    import torch  # noqa: F401
    from zse.errors import InputError
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.chunks import open_source_array
    path = sys.argv[1]
    codes = []
    for i in range(10):
        pid = os.fork()
        if pid == 0:
            try:
                if i % 2:
                    open_source_array(os.path.join(path, "0"))[...]  # as a block task in a Dask worker
                else:
                    open_image(path).levels[0][...]  # as the tissue map
                os._exit(0)
            except InputError as exc:
                print(f"zse: error: {exc}", file=sys.stderr, flush=True)
                os._exit(2)
            except BaseException as exc:
                print(f"unexpected: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                os._exit(1)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(" ".join(map(str, codes)))
""")


def _truncated_input(kind: str, path: Path, shape: tuple[int, ...] = (8, 256, 256)) -> Path:
    """A 1 MiB Blosc chunk (big enough that reading past it crashed), cut to half its bytes; or, in a shard
    (whose index is crc32c-checked, but not its chunks), a chunk whose header claims twice its bytes."""
    from zarr.codecs import BloscCodec

    data = _volume(shape, "uint16")
    if kind == "v2":
        import numcodecs

        src = _image(path, data, zarr_format=2, chunks=data.shape, compressors=numcodecs.Blosc(cname="zstd", clevel=1),
                     chunk_key_encoding={"name": "v2", "separator": "/"})
    elif kind == "v3-unsharded":  # no crc32c guards the chunk: Blosc sees the truncated bytes
        src = _image(path, data, zarr_format=3, chunks=data.shape, compressors=[BloscCodec(cname="zstd", clevel=1)])
    else:
        src = _image(path, data, zarr_format=3, chunks=data.shape, shards=data.shape,
                     compressors=[BloscCodec(cname="zstd", clevel=1)])
        f = _first_chunk_file(src / "0")
        raw = bytearray(f.read_bytes())
        cbytes = int.from_bytes(raw[12:16], "little")  # Blosc header: compressed size of the shard's first chunk
        raw[12:16] = (2 * cbytes).to_bytes(4, "little")
        f.write_bytes(bytes(raw))
        return src
    _truncate(_first_chunk_file(src / "0"))
    return src


@pytest.mark.parametrize("kind", ["v2", "v3-unsharded", "v3-shard-header"])
def test_truncated_blosc_chunk_never_crashes(kind: str, tmp_path: Path) -> None:
    """10 reads of a truncated chunk (v2, v3 unsharded; before: exit 139 in most, silent garbage in others) or a
    shard chunk whose header lies: each is one InputError naming the array, never a signal."""
    src = _truncated_input(kind, tmp_path / "in.zarr")
    before = tree_digest(src)
    proc = subprocess.run([sys.executable, "-c", _FORKED_READS, str(src)], capture_output=True, text=True,
                          timeout=60, env=zse_env(), cwd=tmp_path)
    codes = proc.stdout.split()
    assert proc.returncode == 0 and len(codes) == 10, f"rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert codes == ["2"] * 10, f"exit codes of 10 reads (negative: killed by that signal): {codes}\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 10 and all(ln.startswith("zse: error:") for ln in lines), proc.stderr
    assert all(str(src / "0") in ln and "Blosc" in ln for ln in lines), lines[0]
    assert tree_digest(src) == before


@pytest.mark.parametrize("extra", [(), ("--no-skip-background",)], ids=["default", "no-skip-background"])
def test_truncated_chunk_enhance_v2(extra: tuple[str, ...], tmp_path: Path, zse_inproc) -> None:
    """Through the CLI (tiny image: small chunks never crashed, so this runs in-process).

    With --no-skip-background the block task reads it: pipeline/block.py opens the source through
    zse.pipeline.io.chunks.open_source_array.
    """
    src = make_input(tmp_path / "in.zarr", (3, 64, 64), ngff="0.4")
    _truncate(_first_chunk_file(src / "0"))
    before = tree_digest(src)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", src, out, *RUN, *extra)
    line = assert_one_line_error(proc, "Blosc", "truncated")
    assert str(src) in line, f"the error does not name the input: {line!r}"
    assert tree_digest(src) == before


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_intact_inputs_still_read(ngff: str, tmp_path: Path) -> None:
    """The checks refuse nothing zse (or zarr's defaults) writes: every level reads back exactly."""
    from zse.pipeline.io.chunks import open_source_array
    from zse.pipeline.io.ngff import open_image

    data = _volume((3, 40, 70))
    src = _image(tmp_path / "in.zarr", data, zarr_format=2 if ngff == "0.4" else 3, chunks=(3, 16, 16))
    img = open_image(src)
    assert np.array_equal(img.levels[0][...], data)
    assert np.array_equal(open_source_array(src / "0")[...], data)
    zse_written = make_input(tmp_path / "zse.zarr", (3, 96, 96), ngff=ngff)
    img = open_image(zse_written)
    assert np.array_equal(img.levels[0][...], zarr.open_array(str(zse_written / "0"), mode="r")[...])


@pytest.mark.parametrize("kind", ["v2", "v3-unsharded", "v3-shard-header"])
def test_guarded_arrays_stay_guarded_when_pickled(kind: str, tmp_path: Path) -> None:
    import pickle

    from zse.pipeline.io.chunks import CorruptChunkError, open_source_array

    src = _truncated_input(kind, tmp_path / "in.zarr", shape=(3, 32, 32))
    arr = pickle.loads(pickle.dumps(open_source_array(src / "0")))
    with pytest.raises(CorruptChunkError, match="Blosc"):
        arr[...]


def test_truncated_chunk_dask_worker_real_process(tmp_path: Path, run_zse) -> None:
    """A real `zse` run with a local Dask worker reading a truncated v2 chunk (1 MiB: before, the worker read
    past the buffer and the run exited 0 with garbage, or crashed).

    pipeline/block.py opens `BlockTask.source_array` with zse.pipeline.io.chunks.open_source_array.
    """
    src = _truncated_input("v2", tmp_path / "in.zarr")
    before = tree_digest(src)
    proc = run_zse("enhance", src, tmp_path / "out.zarr", "--model", "test-conv", "--block", "128", "--tile", "64",
                   "--overlap", "8", "--quiet", "--no-skip-background")
    line = assert_one_line_error(proc, "Blosc")
    assert str(src) in line
    assert tree_digest(src) == before


# ------------------------------------------------------------------------------------------ missing chunks

LAYOUTS: dict[str, dict[str, Any]] = {
    "v2-slash": dict(zarr_format=2, chunk_key_encoding={"name": "v2", "separator": "/"}),
    "v2-dot": dict(zarr_format=2),
    "v3-default": dict(zarr_format=3),
    "v3-default-dot": dict(zarr_format=3, chunk_key_encoding={"name": "default", "separator": "."}),
    "v3-v2-encoding": dict(zarr_format=3, chunk_key_encoding={"name": "v2", "separator": "."}),
    "v3-sharded": dict(zarr_format=3, shards=(3, 32, 32)),
}


def _stored_keys(array_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(array_dir)) for p in array_dir.rglob("*")
                  if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs"))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_check_chunks_finds_a_missing_chunk(layout: str, tmp_path: Path) -> None:
    from zse.pipeline.io.chunks import check_chunks
    from zse.pipeline.io.ngff import open_image

    kw = dict(LAYOUTS[layout])
    sharded = "shards" in kw
    src = _image(tmp_path / "in.zarr", _volume((3, 64, 64)), chunks=(3, 16, 16), **kw)
    keys = _stored_keys(src / "0")
    n = 4 if sharded else 16
    assert len(keys) == n, keys
    assert check_chunks(open_image(src), allow_missing=False) == []
    victim = keys[-1]  # the last (lexicographically) stored object
    (src / "0" / victim).unlink()
    before = tree_digest(src)
    with pytest.raises(InputError) as err:
        check_chunks(open_image(src), allow_missing=False)
    msg = str(err.value)
    assert "\n" not in msg
    what = "shards" if sharded else "chunks"
    assert f"1 of {n} {what} of level 0 are missing" in msg, msg
    assert f"0/{victim}" in msg and "--allow-missing-chunks" in msg and str(src) in msg, msg
    notes = check_chunks(open_image(src), allow_missing=True)
    assert len(notes) == 1 and f"1 of {n} {what}" in notes[0] and "\n" not in notes[0]
    assert tree_digest(src) == before


def test_check_chunks_names_lower_levels_and_first_missing(tmp_path: Path) -> None:
    from zse.pipeline.io.chunks import check_chunks
    from zse.pipeline.io.ngff import open_image

    src = make_input(tmp_path / "in.zarr", (3, 96, 96), ngff="0.4", block=32)
    g = zarr.open_group(str(src), mode="r")
    g0 = g["0"]
    assert g0.chunks[-1] == 32, g0.chunks
    for key in ("0/1/2", "0/2/0"):
        (src / "0" / key).unlink()
    with pytest.raises(InputError, match=r"2 of 9 chunks of level 0 are missing \(first: 0/0/1/2\)"):
        check_chunks(open_image(src), allow_missing=False)


def test_missing_chunk_enhance_refused(tmp_path: Path, zse_inproc) -> None:
    """run_enhance calls zse.pipeline.io.chunks.check_chunks before anything is written."""
    src = make_input(tmp_path / "in.zarr", (3, 64, 64), ngff="0.4", block=32)
    (src / "0" / "0" / "1" / "1").unlink()
    before = tree_digest(src)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", src, out, *RUN)
    line = assert_one_line_error(proc, "1 of 4 chunks of level 0 are missing", "--allow-missing-chunks")
    assert str(src) in line
    assert not out.exists()
    assert tree_digest(src) == before


def test_missing_chunk_enhance_allowed_with_flag(tmp_path: Path, zse_inproc) -> None:
    """The `--allow-missing-chunks` flag of `zse enhance`: check_chunks' lines are printed as notes."""
    src = make_input(tmp_path / "in.zarr", (3, 64, 64), ngff="0.5", block=32)
    shard = _stored_keys(src / "0")[-1]
    (src / "0" / shard).unlink()
    before = tree_digest(src)
    proc = zse_inproc("enhance", src, tmp_path / "out.zarr", *RUN, "--allow-missing-chunks")
    assert proc.returncode == 0, proc.stderr
    assert "1 of 4 shards of level 0 are missing" in proc.stderr
    assert tree_digest(src) == before


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_zse_outputs_hold_every_chunk_so_they_are_valid_inputs(ngff: str, tmp_path: Path) -> None:
    """zarr skips chunks equal to the fill value unless told otherwise on every open; zse's writers must
    not, or an all-background region of zse's own output would read as "missing chunks" (found when the
    check was wired in: an all-zero image written by write_volume was refused, and so was its enhanced output)."""
    from zse.models.baselines.identity import IdentityFactory
    from zse.pipeline.io.chunks import check_chunks
    from zse.pipeline.io.ngff import open_image
    from zse.pipeline.io.write import write_volume
    from zse.pipeline.options import make_options
    from zse.pipeline.run import run_enhance

    src = write_volume(tmp_path / "in.ome.zarr", np.zeros((3, 300, 300), np.uint8), ngff=ngff, block=256, progress=False)
    assert check_chunks(open_image(src)) == []
    out = tmp_path / "out.ome.zarr"
    run_enhance(open_image(src), out, IdentityFactory(), make_options(block=256, ngff=ngff, skip_background=False),
                progress=False)
    assert check_chunks(open_image(out)) == []


def test_check_chunks_listing_is_fast(tmp_path: Path) -> None:
    """Only stored names are listed (no chunk is read): 20 000 chunk files are checked in well under a second."""
    import time

    from zse.pipeline.io.chunks import missing_chunks

    shape, chunks = (3, 100 * 16, 200 * 16), (3, 16, 16)
    arr = zarr.create_array(str(tmp_path / "a"), shape=shape, chunks=chunks, dtype="uint8", zarr_format=3)
    root = tmp_path / "a" / "c" / "0"
    for i in range(100):
        d = root / str(i)
        d.mkdir(parents=True)
        for j in range(200):
            if (i, j) != (57, 3):
                (d / str(j)).touch()
    t0 = time.perf_counter()
    found = missing_chunks(arr, tmp_path / "a")
    elapsed = time.perf_counter() - t0
    assert (found.missing, found.total, found.first) == (1, 20000, "c/0/57/3")
    assert elapsed < 1.0, f"listing 20 000 chunks took {elapsed:.2f} s"


# ------------------------------------------------------------------------------------------ dataset paths


def _edit_ome(src: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply `edit` to the group attributes holding "multiscales" (the `ome` dict on 0.5), written back as JSON
    (NaN and Infinity allowed, as a careless writer would)."""
    v3 = (src / "zarr.json").is_file()
    f = src / ("zarr.json" if v3 else ".zattrs")
    doc = json.loads(f.read_text())
    edit(doc["attributes"]["ome"] if v3 else doc)
    f.write_text(json.dumps(doc, allow_nan=True))


def _ms(root: dict[str, Any]) -> dict[str, Any]:
    ms: dict[str, Any] = root["multiscales"][0]
    return ms


def _set_path(root: dict[str, Any], value: Any) -> None:
    _ms(root)["datasets"][0]["path"] = value


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-out"])
def test_dataset_path_leaving_the_image_is_refused(kind: str, ngff: str, tmp_path: Path, zse_inproc) -> None:
    """The probe's route to deleting another image: IN's dataset points into VICTIM, then `zse enhance IN VICTIM
    --overwrite`. zse refuses to read arrays outside IN, and VICTIM stays as it was."""
    victim = make_input(tmp_path / "victim.zarr", (3, 64, 64), ngff=ngff, seed=3)
    (tmp_path / "data").mkdir()
    src = make_input(tmp_path / "data" / "in.zarr", (3, 64, 64), ngff=ngff)
    if kind == "dotdot":
        bad = "../../victim.zarr/0"
        _edit_ome(src, lambda r: _set_path(r, bad))
    elif kind == "absolute":
        bad = str(victim / "0")
        _edit_ome(src, lambda r: _set_path(r, bad))
    else:
        bad = "0"
        shutil.rmtree(src / "0")
        os.symlink(victim / "0", src / "0")
    before_src, before_victim = tree_digest(src), tree_digest(victim)
    for args in (("enhance", src, victim, *RUN, "--overwrite"), ("info", src)):
        proc = zse_inproc(*args)
        line = assert_one_line_error(proc, str(src), repr(bad))
        assert "outside" in line or "absolute" in line or ".." in line, line
    assert tree_digest(victim) == before_victim
    assert tree_digest(src) == before_src


def test_bioformats2raw_image_group_symlinked_out_is_refused(tmp_path: Path, zse_inproc) -> None:
    victim = make_input(tmp_path / "victim.zarr", (3, 32, 32), ngff="0.4")
    root = tmp_path / "wrapper.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    os.symlink(victim, root / "0")
    proc = zse_inproc("info", root)
    assert_one_line_error(proc, str(root), "outside")


def test_array_paths_resolved(tmp_path: Path) -> None:
    from zse.pipeline.io.ngff import open_image

    real = make_input(tmp_path / "real.zarr", (3, 32, 32), ngff="0.4")
    link = tmp_path / "link.zarr"
    os.symlink(real, link)
    img = open_image(link)
    assert img.array_paths_resolved() == [(real / "0").resolve()]


# ------------------------------------------------------------------------------------------ malformed metadata

NAN, INF = math.nan, math.inf


def _scale(root: dict[str, Any], value: Any) -> None:
    _ms(root)["datasets"][0]["coordinateTransformations"][0]["scale"] = value


def _translation(root: dict[str, Any], value: Any) -> None:
    ts = _ms(root)["datasets"][0]["coordinateTransformations"]
    if len(ts) < 2:
        ts.append({"type": "translation", "translation": [0.0, 0.0, 0.0]})
    ts[1]["translation"] = value


def _unit(root: dict[str, Any], value: Any) -> None:
    _ms(root)["axes"][2]["unit"] = value


def _del_name(root: dict[str, Any]) -> None:
    del _ms(root)["axes"][1]["name"]


def _del_path(root: dict[str, Any]) -> None:
    del _ms(root)["datasets"][0]["path"]


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "multiscales-not-list": (lambda r: r.update(multiscales={"datasets": []}), ("multiscales",)),
    "multiscales-entry-not-dict": (lambda r: r.update(multiscales=["image"]), ("multiscales",)),
    "axes-not-list": (lambda r: _ms(r).update(axes="zyx"), ("axes",)),
    "axis-not-dict": (lambda r: _ms(r)["axes"].__setitem__(0, 7), ("axes",)),
    "axis-nameless": (_del_name, ("axes", "name")),
    "axis-name-not-str": (lambda r: _ms(r)["axes"][0].update(name=1), ("axes", "name")),
    "datasets-not-list": (lambda r: _ms(r).update(datasets={"path": "0"}), ("datasets",)),
    "dataset-not-dict": (lambda r: _ms(r).update(datasets=["0"]), ("datasets",)),
    "dataset-pathless": (_del_path, ("datasets", "path")),
    "dataset-path-not-str": (lambda r: _set_path(r, 0), ("path",)),
    "transforms-not-list": (lambda r: _ms(r)["datasets"][0].update(coordinateTransformations={"type": "scale"}),
                            ("coordinateTransformations",)),
    "transform-not-dict": (lambda r: _ms(r)["datasets"][0].update(coordinateTransformations=["scale"]),
                           ("coordinateTransformations",)),
    "scale-not-list": (lambda r: _scale(r, 1.0), ("scale",)),
    "scale-short": (lambda r: _scale(r, [1.0, 1.0]), ("scale", "3")),
    "scale-non-numeric": (lambda r: _scale(r, ["a", 1.0, 1.0]), ("scale", "'a'")),
    "scale-bool": (lambda r: _scale(r, [True, 1.0, 1.0]), ("scale",)),
    "scale-nan": (lambda r: _scale(r, [NAN, 0.5, 0.5]), ("scale", "nan")),
    "scale-inf": (lambda r: _scale(r, [1.0, INF, 0.5]), ("scale", "inf")),
    "scale-zero": (lambda r: _scale(r, [0.0, 0.5, 0.5]), ("scale", "positive")),
    "scale-negative": (lambda r: _scale(r, [1.0, -0.5, 0.5]), ("scale", "positive")),
    "scale-missing": (lambda r: _ms(r)["datasets"][0]["coordinateTransformations"][0].pop("scale"), ("scale",)),
    "translation-nan": (lambda r: _translation(r, [0.0, NAN, 0.0]), ("translation", "nan")),
    "translation-short": (lambda r: _translation(r, [0.0]), ("translation",)),
    "multiscale-scale-inf": (lambda r: _ms(r).update(coordinateTransformations=[{"type": "scale", "scale": [INF, 1, 1]}]),
                             ("scale", "inf")),
    "unit-unknown": (lambda r: _unit(r, "furlong"), ("'furlong'", "micrometer", "nanometer", "millimeter")),
    "unit-typo": (lambda r: _unit(r, "µm"), ("'µm'", "micrometer")),
    "unit-not-str": (lambda r: _unit(r, 5), ("unit",)),
}


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_metadata_info(kind: str, ngff: str, tmp_path: Path, zse_inproc) -> None:
    edit, needles = MALFORMED[kind]
    src = make_input(tmp_path / "in.zarr", (3, 32, 32), ngff=ngff)
    _edit_ome(src, edit)
    before = tree_digest(src)
    proc = zse_inproc("info", src)
    line = assert_one_line_error(proc, str(src), *needles)
    assert "Traceback" not in line
    assert tree_digest(src) == before


@pytest.mark.parametrize("kind", ["axis-nameless", "dataset-pathless", "scale-short", "scale-nan", "scale-zero",
                                  "unit-unknown", "datasets-not-list"])
def test_malformed_metadata_enhance(kind: str, tmp_path: Path, zse_inproc) -> None:
    edit, needles = MALFORMED[kind]
    src = make_input(tmp_path / "in.zarr", (3, 32, 32), ngff="0.5")
    _edit_ome(src, edit)
    before = tree_digest(src)
    out = tmp_path / "out.zarr"
    proc = zse_inproc("enhance", src, out, *RUN)
    assert_one_line_error(proc, str(src), *needles)
    assert not out.exists()
    assert tree_digest(src) == before


@pytest.mark.parametrize(
    ("unit", "scale", "um"),
    [("nanometer", [2000.0, 500.0, 500.0], (2.0, 0.5, 0.5)), ("millimeter", [0.002, 0.0005, 0.0005], (2.0, 0.5, 0.5)),
     ("angstrom", [20000.0, 5000.0, 5000.0], (2.0, 0.5, 0.5)), ("centimeter", [0.0002, 0.00005, 0.00005], (2.0, 0.5, 0.5)),
     ("inch", [1.0, 1.0, 1.0], (25400.0, 25400.0, 25400.0)), (None, [2.0, 0.5, 0.5], (2.0, 0.5, 0.5))],
)
def test_units_are_converted_to_micrometres(unit: str | None, scale: list[float], um: tuple[float, ...],
                                            tmp_path: Path) -> None:
    from zse.pipeline.io.ngff import open_image

    src = make_input(tmp_path / "in.zarr", (3, 32, 32), ngff="0.5")

    def edit(root: dict[str, Any]) -> None:
        for ax in _ms(root)["axes"]:
            ax.pop("unit", None)
            if unit is not None:
                ax["unit"] = unit
        _scale(root, scale)
        _ms(root)["datasets"][0]["coordinateTransformations"] = _ms(root)["datasets"][0]["coordinateTransformations"][:1]
        del _ms(root)["datasets"][1:]

    _edit_ome(src, edit)
    assert open_image(src).meta.voxel_size_um == pytest.approx(um, rel=1e-12)


def test_axes_not_matching_array_dimensions(tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 32, 32), ngff="0.5")
    _edit_ome(src, lambda r: _ms(r).update(axes=[{"name": "c", "type": "channel"},
                                                  *({"name": a, "type": "space", "unit": "micrometer"} for a in "zyx")]))
    before = tree_digest(src)
    for args in (("info", src), ("enhance", src, tmp_path / "out.zarr", *RUN)):
        proc = zse_inproc(*args)
        assert_one_line_error(proc, str(src), "3 dimensions", "czyx")
    assert not (tmp_path / "out.zarr").exists()
    assert tree_digest(src) == before


def test_lower_level_with_other_dimensions(tmp_path: Path, zse_inproc) -> None:
    src = make_input(tmp_path / "in.zarr", (3, 32, 32), ngff="0.5")
    g = zarr.open_group(str(src), mode="r+")
    g.create_array("odd", shape=(16, 16), dtype="uint8")
    _edit_ome(src, lambda r: _ms(r)["datasets"].append(
        {"path": "odd", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}))
    before = tree_digest(src)
    proc = zse_inproc("info", src)
    assert_one_line_error(proc, str(src), "'odd'", "2 dimensions")
    assert tree_digest(src) == before
