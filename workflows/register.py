"""`zse register MOVING FIXED [--out SHIFTS.json] [--aligned OUT.ome.zarr]`: the shift between two z-scans of
the same region, a blurred and a sharp one (WFCON's PSF-based registration, or plain cross-correlation).

MOVING and FIXED are OME-Zarr z-scans (axes zyx or czyx, NGFF 0.4/0.5, read with
`zse.pipeline.io.ngff.open_image`; nothing is ever written to them) of one (Z, Y, X) shape and voxel size.
One region of level 0 (the chosen channel) is read from both: `--region z0:z1,y0:y1,x0:x1` (voxels,
half-open; an empty range is the whole axis), or by default every plane of the central `--crop` × `--crop`
pixels. The estimation is `zse.models.registration` (its module doc has the method, the normalisation and
the sign convention and the sub-voxel fit, `--subvoxel`); `--sharp` says which input is the sharp scan
(default FIXED).

The result (`--out`, else printed on stdout) is one JSON object: ``shift_zyx_px`` — the shift that maps
MOVING onto FIXED, ``fixed(r) ≈ moving(r − shift)``, i.e. ``scipy.ndimage.shift(moving, shift_zyx_px) ≈ fixed``
(z, y, x voxels) —, ``shift_zyx_um`` (times the voxel size), the method, the region, the peak value, the
kernel's shape and sum, the iterations and everything else needed to redo it. `--aligned` writes MOVING
(every channel, the whole level 0) shifted onto FIXED's grid as OME-Zarr with FIXED's voxel size and
origin (`zse.pipeline.io.write.write_volume`: block by block, metadata last, an existing finished output
replaced only with `--overwrite` and only once the new one is complete): sub-voxel shift by linear
interpolation (`--interp linear`, the default) or the shift rounded to whole voxels (`--interp nearest`:
voxel values copied, not interpolated); beyond MOVING's faces the nearest face voxel is repeated.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np

from zse import __version__
from zse.errors import ConfigError, InputError, OutputError, ZseError
from zse.models.registration import LAMBDA, METHODS, MU, check_max_shift, register_arrays

DEFAULT_CROP = 256
DEFAULT_MAX_SHIFT = (3, 6, 6)
INTERP = ("linear", "nearest")
SUBVOXEL = ("auto", "parabola", "centroid")
CONVENTION = "fixed(r) ≈ moving(r − shift): scipy.ndimage.shift(moving, shift_zyx_px) ≈ fixed"


# ------------------------------------------------------------------------------------------ options


def parse_region(text: str, shape_zyx: tuple[int, int, int]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """`"z0:z1,y0:y1,x0:x1"` (half-open voxel ranges, an empty bound meaning the axis' start or end) → three
    (start, stop) pairs inside `shape_zyx`. ConfigError with one line otherwise."""
    hint = (f"valid: three ranges z0:z1,y0:y1,x0:x1 of voxels (half-open, empty = whole axis) inside the image's "
            f"Z, Y, X = {shape_zyx}, e.g. :,1000:1256,2000:2256")
    parts = text.split(",")
    if len(parts) != 3:
        raise ConfigError(f"--region {text!r} is invalid; {hint}")
    out = []
    for part, n in zip(parts, shape_zyx, strict=True):
        bounds = part.split(":")
        try:
            if len(bounds) != 2:
                raise ValueError
            lo = int(bounds[0]) if bounds[0].strip() else 0
            hi = int(bounds[1]) if bounds[1].strip() else n
        except ValueError:
            raise ConfigError(f"--region {text!r} is invalid; {hint}") from None
        if not 0 <= lo < hi <= n:
            raise ConfigError(f"--region {text!r} is invalid: {lo}:{hi} is empty or outside 0:{n}; {hint}")
        out.append((lo, hi))
    return out[0], out[1], out[2]


def default_region(shape_zyx: tuple[int, int, int], crop: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Every plane of the central `crop` × `crop` pixels (the whole of an axis shorter than `crop`)."""
    def centre(n: int) -> tuple[int, int]:
        c = min(crop, n)
        lo = (n - c) // 2
        return lo, lo + c

    return (0, shape_zyx[0]), centre(shape_zyx[1]), centre(shape_zyx[2])


def _check_paths(inputs: dict[str, Path], out: Path | None, aligned: Path | None, overwrite: bool) -> None:
    """Refuse --out / --aligned that are, hold or lie inside an input (resolved paths), or are the same path;
    an existing --out without --overwrite; an --aligned that `zse.workflows.convert.check_output` or
    `write.check_output_path` refuses."""
    targets = {"--out": out, "--aligned": aligned}
    for flag, target in targets.items():
        if target is None:
            continue
        t = target.resolve()
        for label, src in inputs.items():
            s = src.resolve()
            if t == s or s in t.parents or t in s.parents:
                raise ConfigError(f"{flag} {target} is, holds or lies inside {label} {src}; the inputs are never written: "
                                  "choose a path outside them")
    if out is not None and aligned is not None and out.resolve() == aligned.resolve():
        raise ConfigError(f"--out and --aligned are the same path {out}; give two different paths")
    if out is not None:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a folder; give a file path for the JSON (e.g. shifts.json)")
        if out.exists() and not overwrite:
            raise OutputError(f"--out {out} already exists; pass --overwrite to replace it")
    if aligned is not None:
        from zse.pipeline.io.write import check_output_path
        from zse.workflows.convert import check_output

        check_output(aligned, tuple(str(p) for p in inputs.values()), overwrite)
        check_output_path(aligned, overwrite=overwrite)


# ------------------------------------------------------------------------------------------ reading


def _open(path: Path, label: str) -> Any:
    from zse.pipeline.io.ngff import open_image

    try:
        return open_image(path)
    except InputError as exc:
        raise InputError(f"{label}: {exc.message}") from None


def _read_region(img: Any, region: tuple[tuple[int, int], ...], channel: int) -> np.ndarray:
    sl = tuple(slice(a, b) for a, b in region)
    arr = img.levels[0]
    if img.meta.axes == "czyx":
        return np.asarray(arr[(channel, *sl)])
    return np.asarray(arr[sl])


class ShiftedVolume:
    """MOVING's level 0 shifted by `shift_zyx` voxels, computed lazily per requested box:
    ``out(r) = moving(r − shift)`` on the last three axes (z, y, x), nearest face voxel beyond the faces;
    `order` 1 (linear) or 0 (the shift rounded: voxel values copied). Indexable as `write_volume` reads
    (``vol[..., y0:y1, x0:x1]`` or a full tuple of unit-step slices); shape and dtype are MOVING's."""

    def __init__(self, array: Any, shift_zyx: tuple[float, float, float], order: int) -> None:
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.order = order
        self.shift = tuple(float(round(s)) if order == 0 else float(s) for s in shift_zyx)

    def _slices(self, key: Any) -> list[slice]:
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) * (self.ndim - len(key) + 1) + key[1:]
        if len(key) != self.ndim or not all(isinstance(k, slice) for k in key):
            raise TypeError(f"ShiftedVolume takes unit-step slices of its {self.ndim} axes, got {key!r}")
        out = []
        for k, n in zip(key, self.shape, strict=True):
            start, stop, step = k.indices(n)
            if step != 1:
                raise TypeError("ShiftedVolume takes unit-step slices only")
            out.append(slice(start, stop))
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        from scipy import ndimage

        sl = self._slices(key)
        lead, zyx = sl[:-3], sl[-3:]
        window, offset = [], []
        for s, d, n in zip(zyx, self.shift, self.shape[-3:], strict=True):
            lo = max(0, min(n - 1, math.floor(s.start - d) - 1))
            hi = max(lo + 1, min(n, math.ceil(s.stop - 1 - d) + 2))
            window.append(slice(lo, hi))
            offset.append(s.start - d - lo)  # output index o reads window coordinate o + offset
        src = np.asarray(self.array[(*lead, *window)], dtype=np.float32)
        out_shape = tuple(s.stop - s.start for s in zyx)
        info = np.iinfo(self.dtype)
        flat = src.reshape((-1, *src.shape[-3:]))
        res = np.empty((flat.shape[0], *out_shape), dtype=self.dtype)
        for i, vol in enumerate(flat):
            moved = ndimage.affine_transform(vol, np.ones(3), offset=offset, output_shape=out_shape, order=self.order,
                                             mode="nearest", output=np.float32)
            res[i] = np.clip(np.rint(moved), info.min, info.max).astype(self.dtype)
        return res.reshape((*src.shape[:-3], *out_shape))


# ------------------------------------------------------------------------------------------ job


def register(moving: Path, fixed: Path, *, out: Path | None = None, aligned: Path | None = None, method: str = "psf",
             region: str | None = None, crop: int = DEFAULT_CROP, max_shift: tuple[int, int, int] = DEFAULT_MAX_SHIFT,
             sharp: Literal["fixed", "moving"] = "fixed", lam: float = LAMBDA, mu: float = MU, iterations: int = 500,
             channel: int = 0, interp: str = "linear", ngff: str | None = None, overwrite: bool = False,
             subvoxel: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Estimate the shift mapping MOVING onto FIXED on one region and write the JSON (`out`) and the aligned
    MOVING (`aligned`); see the module doc. Returns the JSON's object. Every check runs before anything is
    written: ConfigError / InputError / OutputError with one line."""
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is invalid; valid: {', '.join(METHODS)}")
    if sharp not in ("fixed", "moving"):
        raise ConfigError(f"--sharp {sharp!r} is invalid; valid: fixed, moving")
    if subvoxel not in SUBVOXEL:
        raise ConfigError(f"--subvoxel {subvoxel!r} is invalid; valid: {', '.join(SUBVOXEL)}")
    if interp not in INTERP:
        raise ConfigError(f"--interp {interp!r} is invalid; valid: {', '.join(INTERP)}")
    if crop < 3:
        raise ConfigError(f"--crop {crop} is invalid; valid: an integer >= 3 (pixels)")
    if iterations < 1:
        raise ConfigError(f"--iterations {iterations} is invalid; valid: an integer >= 1")
    if not (math.isfinite(lam) and lam >= 0 and math.isfinite(mu) and mu >= 0):
        raise ConfigError(f"--lambda {lam}, --mu {mu} are invalid; valid: finite numbers >= 0")
    if ngff is not None and ngff not in ("0.4", "0.5"):
        raise ConfigError(f"--ngff {ngff!r} is invalid; valid: 0.4, 0.5")
    r = check_max_shift(max_shift)
    for label, p in (("MOVING", moving), ("FIXED", fixed)):
        if not p.exists():
            raise InputError(f"{label} {p}: no such file or directory")
    _check_paths({"MOVING": moving, "FIXED": fixed}, out, aligned, overwrite)
    mov, fix = _open(moving, "MOVING"), _open(fixed, "FIXED")
    shape = mov.meta.shape_zyx
    if fix.meta.shape_zyx != shape:
        raise InputError(f"MOVING {moving} is (Z, Y, X) {shape}, FIXED {fixed} is {fix.meta.shape_zyx}; they must be equal "
                         "(two scans of one region on one grid)")
    vm, vf = mov.meta.voxel_size_um, fix.meta.voxel_size_um
    if any(abs(a - b) > 1e-6 * max(a, b) for a, b in zip(vm, vf, strict=True)):
        raise InputError(f"MOVING's voxel size {vm} µm differs from FIXED's {vf} µm; they must be equal (resample one first)")
    for label, img in (("MOVING", mov), ("FIXED", fix)):
        if img.meta.axes == "czyx" and not 0 <= channel < img.meta.n_channels:
            raise ConfigError(f"--channel {channel} is invalid for {label} with {img.meta.n_channels} channels; "
                              f"valid: 0..{img.meta.n_channels - 1}")
    if region is not None:
        reg = parse_region(region, shape)
        source = "--region"
    else:
        reg = default_region(shape, crop)
        source = f"default: every plane, central {crop} × {crop} px (--crop)"
    size = tuple(b - a for a, b in reg)
    check_max_shift(r, size)
    m_reg, f_reg = _read_region(mov, reg, channel), _read_region(fix, reg, channel)
    try:
        shift, est = register_arrays(m_reg, f_reg, r, method=method, sharp=sharp, lam=lam, mu=mu, max_iter=iterations,
                                     fit=subvoxel)
    except InputError as exc:
        raise InputError(f"region {_show_region(reg)} ({source}): {exc.message}") from None
    shift_um = tuple(s * v for s, v in zip(shift, vf, strict=True))
    warnings = [f"the peak lies on the face of the ±{r} box along {a}: the shift may exceed --max-shift there "
                "(enlarge it) or the region has no structure along it" for a in est.at_border]
    if est.method == "psf" and not est.converged:
        warnings.append(f"the primal–dual solver stopped after {est.iterations} iterations before its tolerance "
                        "(--iterations)")
    result: dict[str, Any] = {
        "moving": str(moving), "fixed": str(fixed), "method": method, "sharp": sharp,
        "shift_zyx_px": [round(s, 4) for s in shift], "shift_zyx_um": [round(s, 5) for s in shift_um],
        "convention": CONVENTION,
        "region_zyx": [list(b) for b in reg], "region_source": source, "channel": channel if mov.meta.axes == "czyx" else None,
        "voxel_size_um": list(vf), "max_shift_px": list(r), "kernel_shape_zyx": list(est.kernel.shape),
        "peak_value": round(est.peak_value, 6), "integer_peak_offset_zyx": list(est.integer_peak_zyx),
        "subvoxel": f"{subvoxel} (zse.models.registration.subvoxel_peak)", "subvoxel_axes": list(est.refined),
        "at_border": list(est.at_border), "iterations": est.iterations, "converged": est.converged,
        "kernel_sum": round(float(est.kernel.sum()), 6) if method == "psf" else None,
        "objective": est.objective, "lambda": lam if method == "psf" else None, "mu": mu if method == "psf" else None,
        "normalisation": "each region v / mean(v) − 1 (zse.models.registration)",
        "aligned": str(aligned) if aligned is not None else None,
        "aligned_interpolation": interp if aligned is not None else None,
        "aligned_shift_zyx_px": (None if aligned is None else
                                 [float(round(v)) if interp == "nearest" else round(v, 4) for v in shift]),
        "warnings": warnings, "zse_version": __version__, "command": " ".join(sys.argv),
    }
    if progress:
        click.echo(f"zse register: {method} on region {_show_region(reg)}: shift MOVING→FIXED z, y, x = "
                   f"{', '.join(f'{s:+.3f}' for s in shift)} px ({', '.join(f'{s:+.3f}' for s in shift_um)} µm)", err=True)
        for w in warnings:
            click.echo(f"zse register: warning: {w}", err=True)
    if aligned is not None:
        _write_aligned(mov, fix, aligned, shift, interp, ngff or mov.meta.ngff_version, result, overwrite, progress)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if out is not None:
        _write_json(out, result)
    return result


def _show_region(reg: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{a}:{b}" for a, b in reg)


def _write_aligned(mov: Any, fix: Any, aligned: Path, shift: tuple[float, float, float], interp: str, ngff: str,
                   result: dict[str, Any], overwrite: bool, progress: bool) -> None:
    from zse.pipeline.io.write import write_volume
    from zse.workflows.convert import remove_partial_output

    vol = ShiftedVolume(mov.levels[0], shift, order=1 if interp == "linear" else 0)
    attrs = {"register": {k: result[k] for k in ("moving", "fixed", "method", "shift_zyx_px", "shift_zyx_um", "convention",
                                                  "region_zyx", "aligned_interpolation")},
             "command": result["command"]}
    try:
        write_volume(aligned, vol, axes=mov.meta.axes, voxel_size_um=fix.meta.voxel_size_um,
                     translation_um=fix.meta.translation_um, ngff=ngff, attrs=attrs, overwrite=overwrite, progress=progress)
    except BaseException as exc:
        removed = remove_partial_output(aligned, attrs)
        note = f"; removed the unfinished {aligned}" if removed else ""
        if isinstance(exc, ZseError):
            raise type(exc)(f"{exc.message}{note}") from None
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write --aligned {aligned}: {exc.strerror or exc}{note}") from None
        raise


def _write_json(path: Path, result: dict[str, Any]) -> None:
    """Write beside, then rename: a reader never sees half a JSON."""
    tmp = path.parent / f".{path.name}.zse-new"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write --out {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------ CLI


@click.command("register")
@click.argument("moving", metavar="MOVING", type=click.Path(path_type=Path))
@click.argument("fixed", metavar="FIXED", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the JSON result here (default: print it on stdout).")
@click.option("--aligned", type=click.Path(path_type=Path), default=None,
              help="Also write MOVING shifted onto FIXED as OME-Zarr (a new .zarr path).")
@click.option("--method", type=click.Choice(list(METHODS)), default="psf", show_default=True,
              help="psf: WFCON's kernel estimate (primal–dual, TV-regularised); xcorr: normalised 3D cross-correlation.")
@click.option("--region", default=None, metavar="z0:z1,y0:y1,x0:x1",
              help="Region to register (level-0 voxels, half-open; empty range = whole axis). Default: central crop.")
@click.option("--crop", type=int, default=DEFAULT_CROP, show_default=True,
              help="Without --region: side in y, x of the central crop (every plane).")
@click.option("--max-shift", "max_shift", default=",".join(map(str, DEFAULT_MAX_SHIFT)), show_default=True,
              metavar="Z,Y,X", help="Largest shift searched per axis, voxels (the kernel box is ± this).")
@click.option("--sharp", type=click.Choice(["fixed", "moving"]), default="fixed", show_default=True,
              help="Which input is the sharp scan (the kernel blurs it into the other).")
@click.option("--lambda", "lam", type=float, default=LAMBDA, show_default=True, help="TV weight λ (psf).")
@click.option("--mu", type=float, default=MU, show_default=True, help="Kernel-sum weight μ (psf).")
@click.option("--iterations", type=int, default=500, show_default=True, help="Most primal–dual iterations (psf).")
@click.option("--subvoxel", type=click.Choice(list(SUBVOXEL)), default="auto", show_default=True,
              help="Sub-voxel fit of the peak per axis: 3-point centroid where the peak is narrower than a voxel, "
                   "parabola where broader (auto), or one of them everywhere.")
@click.option("--channel", type=int, default=0, show_default=True, help="Channel of czyx inputs used for the estimate.")
@click.option("--interp", type=click.Choice(list(INTERP)), default="linear", show_default=True,
              help="--aligned: linear (sub-voxel) or nearest (shift rounded to whole voxels).")
@click.option("--ngff", type=click.Choice(["0.4", "0.5"]), default=None, help="--aligned's NGFF version (default: MOVING's).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out / --aligned.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def register_command(moving: Path, fixed: Path, out: Path | None, aligned: Path | None, method: str, region: str | None,
                     crop: int, max_shift: str, sharp: str, lam: float, mu: float, iterations: int, subvoxel: str,
                     channel: int, interp: str, ngff: str | None, overwrite: bool, quiet: bool) -> None:
    """Shift mapping MOVING onto FIXED (a blurred and a sharp z-scan of one region), as JSON."""
    r = _parse_max_shift(max_shift)
    result = register(moving, fixed, out=out, aligned=aligned, method=method, region=region, crop=crop, max_shift=r,
                      sharp=sharp, lam=lam, mu=mu, iterations=iterations, channel=channel,  # type: ignore[arg-type]
                      interp=interp, ngff=ngff, overwrite=overwrite, subvoxel=subvoxel, progress=not quiet)
    if out is None:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))


def _parse_max_shift(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0:
        raise ConfigError(f"--max-shift {text!r} is invalid; valid: three integers Z,Y,X >= 0 (voxels), e.g. 3,6,6")
    return parts[0], parts[1], parts[2]
