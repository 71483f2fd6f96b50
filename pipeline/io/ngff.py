"""OME-NGFF 0.4 / 0.5 metadata, read (`open_image`, the pipeline's first step) and written. The only module
that knows the spec; what it writes is validated by ome-zarr-models (`check_with_spec_models`).

Reads: NGFF 0.4 (Zarr v2; with or without the bioformats2raw wrapper, whose image sits under `0/`) and
NGFF 0.5 (Zarr v3, metadata under `attributes.ome`). Axes `zyx` or `czyx`; uint8 or uint16.
Writes: the same two versions, levels named "0", "1", …, each with one `scale` and one `translation`
(physical units: micrometre), `omero` rendering metadata, `dimension_names` on 0.5 arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import zarr

from zse.errors import InputError
from zse.pipeline.intensity import SUPPORTED_DTYPES
from zse.pipeline.io.chunks import open_source_array

SUPPORTED_AXES = ("zyx", "czyx")
NGFF_VERSIONS = ("0.4", "0.5")
MIN_PLANES = 3
# The NGFF space units (spec 0.4 / 0.5, "unit" of a space axis), in micrometres, smallest first.
SPACE_UNITS_UM: dict[str, float] = {
    "yoctometer": 1e-18, "zeptometer": 1e-15, "attometer": 1e-12, "femtometer": 1e-9, "picometer": 1e-6,
    "angstrom": 1e-4, "nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "centimeter": 1e4,
    "inch": 25_400.0, "decimeter": 1e5, "foot": 304_800.0, "yard": 914_400.0, "meter": 1e6, "hectometer": 1e8,
    "kilometer": 1e9, "mile": 1_609_344_000.0, "megameter": 1e12, "gigameter": 1e15, "terameter": 1e18,
    "petameter": 1e21, "exameter": 1e24, "parsec": 3.0856775814913673e22, "zettameter": 1e27, "yottameter": 1e30,
}


@dataclass(frozen=True)
class ImageMeta:
    """What zse needs to know about an image.

    axes: "zyx" or "czyx"; shape: level-0 shape in that order; dtype: "uint8" or "uint16";
    voxel_size_um and translation_um: (z, y, x) in micrometres, of level 0.
    """

    axes: str
    shape: tuple[int, ...]
    dtype: str
    voxel_size_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    translation_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ngff_version: str = "0.5"
    name: str = "image"

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.shape[-3], self.shape[-2], self.shape[-1])

    @property
    def n_channels(self) -> int:
        return self.shape[0] if self.axes == "czyx" else 1


@dataclass
class SourceImage:
    """An opened OME-Zarr image: `levels[0]` is full resolution (zarr arrays, read-only).

    `levels[i]` is the array at `image_path / level_paths[i]`, opened with zse.pipeline.io.chunks.open_source_array
    (Blosc frames checked before decompression). Every level path stays inside `image_path` (checked
    after following symbolic links).
    """

    path: Path
    image_path: Path
    group: zarr.Group
    meta: ImageMeta
    levels: list[zarr.Array]
    level_paths: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def array_paths_resolved(self) -> list[Path]:
        """The real (symbolic links followed, absolute) folder of every level array this image reads, level 0 first."""
        return [(Path(self.image_path) / p).resolve() for p in self.level_paths]


def _fail(path: Path | str, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def _bad(path: Path | str, where: str, what: str) -> InputError:
    return InputError(f"{path}: invalid OME-NGFF metadata: {where} {what}")


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _multiscales(attrs: dict[str, Any]) -> tuple[str, Any] | None:
    """(version, the raw `multiscales` value) from group attributes, or None if there is none."""
    ome = attrs.get("ome")
    if isinstance(ome, dict) and ome.get("multiscales"):
        return str(ome.get("version", "0.5")), ome["multiscales"]
    raw = attrs.get("multiscales")
    if raw:
        first = raw[0] if isinstance(raw, list) else None
        version = first.get("version", "0.4") if isinstance(first, dict) else "0.4"
        return str(version), raw
    return None


def read_multiscales(attrs: dict[str, Any]) -> tuple[str, Any] | None:
    """(version, first multiscales entry) from group attributes, or None if not OME-NGFF.

    Where `multiscales` is present but not a list, the raw value is returned in place of the entry:
    `open_image` validates it (and names what is wrong).
    """
    found = _multiscales(attrs)
    if found is None:
        return None
    version, raw = found
    return version, raw[0] if isinstance(raw, list) else raw


def _vector(path: Path, where: str, value: Any, names: str) -> np.ndarray:
    """A transformation's list of one finite number per axis, as float64 (n_axes,)."""
    n = len(names)
    if not isinstance(value, list):
        raise _bad(path, where, f"is {_show(value)}, expected a list of {n} numbers (one per axis {names!r})")
    if len(value) != n:
        raise _bad(path, where, f"has {len(value)} values, expected {n} (one per axis {names!r})")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _bad(path, where, f"has a non-numeric value {_show(v)}")
        if not math.isfinite(v):
            raise _bad(path, where, f"has a non-finite value {v!r}")
    return np.asarray(value, dtype=np.float64)


def _transforms(path: Path, where: str, entries: Any, names: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, translation), each (n_axes,), of a coordinateTransformations list (None: identity)."""
    scale = np.ones(len(names))
    trans = np.zeros(len(names))
    if entries is None:
        return scale, trans
    if not isinstance(entries, list):
        raise _bad(path, where, f"is {_show(entries)}, expected a list of transformations")
    for k, t in enumerate(entries):
        here = f"{where}[{k}]"
        if not isinstance(t, dict):
            raise _bad(path, here, f"is {_show(t)}, expected an object with a 'type'")
        kind = t.get("type")
        if kind == "scale":
            if "scale" not in t:
                raise _bad(path, here, "is a scale without a 'scale' list (a scale stored in a file, 'path', is not supported)")
            scale = scale * _vector(path, f"{here}.scale", t["scale"], names)
        elif kind == "translation":
            if "translation" not in t:
                raise _bad(path, here, "is a translation without a 'translation' list (a translation stored in a file, "
                                       "'path', is not supported)")
            trans = trans + _vector(path, f"{here}.translation", t["translation"], names)
        elif kind != "identity":
            raise _bad(path, here, f"has type {_show(kind)}; valid: 'scale', 'translation', 'identity'")
    return scale, trans


def _axes(path: Path, where: str, axes_meta: Any) -> tuple[str, list[Any]]:
    """(axis names joined, e.g. "zyx"; the unit of each axis or None) from an `axes` list."""
    if axes_meta is None:
        raise _bad(path, where, "is missing; expected a list of axes such as z, y, x")
    if not isinstance(axes_meta, list):
        raise _bad(path, where, f"is {_show(axes_meta)}, expected a list of axis objects with a 'name'")
    names: list[str] = []
    units: list[Any] = []
    for i, a in enumerate(axes_meta):
        if isinstance(a, str):  # NGFF 0.3: axes were names
            names.append(a)
            units.append(None)
            continue
        if not isinstance(a, dict):
            raise _bad(path, f"{where}[{i}]", f"is {_show(a)}, expected an axis object with a 'name'")
        if "name" not in a:
            raise _bad(path, f"{where}[{i}]", f"has no 'name' ({_show(a)})")
        if not isinstance(a["name"], str):
            raise _bad(path, f"{where}[{i}].name", f"is {_show(a['name'])}, expected a string")
        names.append(a["name"])
        units.append(a.get("unit"))
    return "".join(names), units


def _unit_factor(path: Path, where: str, name: str, unit: Any) -> float:
    """Micrometres per unit of a space axis (a missing unit is taken as micrometre)."""
    if unit is None:
        return 1.0
    if not isinstance(unit, str) or unit not in SPACE_UNITS_UM:
        raise _bad(path, where, f"(axis {name!r}) has unit {_show(unit)}, not an NGFF space unit; "
                                f"valid: {', '.join(SPACE_UNITS_UM)}")
    return SPACE_UNITS_UM[unit]


def _dataset_path(path: Path, image_path: Path, where: str, entry: Any) -> str:
    """The `path` of a datasets entry, checked to stay inside the image folder (after following symlinks)."""
    if not isinstance(entry, dict):
        raise _bad(path, where, f"is {_show(entry)}, expected an object with a 'path'")
    if "path" not in entry:
        raise _bad(path, where, f"has no 'path' ({_show(entry)})")
    p = entry["path"]
    if not isinstance(p, str):
        raise _bad(path, f"{where}.path", f"is {_show(p)}, expected a string")
    if not p.strip():
        raise _bad(path, f"{where}.path", "is empty")
    pure = PurePosixPath(p)
    if pure.is_absolute():
        raise _fail(path, f"dataset path {p!r} is absolute; zse reads only arrays inside the image (relative paths)")
    if ".." in pure.parts:
        raise _fail(path, f"dataset path {p!r} contains '..'; zse reads only arrays inside the image")
    inside = image_path.resolve()
    real = (image_path / p).resolve()
    if not real.is_relative_to(inside):
        raise _fail(path, f"dataset path {p!r} resolves to {real}, outside the image folder {inside} (a symbolic "
                          "link?); zse reads only arrays inside the image")
    return p


def open_image(path: str | Path) -> SourceImage:
    """Open and validate an OME-Zarr z-scan for reading. Raises InputError with a one-line reason.

    Refused: metadata of the wrong shape or type (named by its field, e.g. `multiscales[0].axes[1]`),
    non-finite or non-positive voxel sizes, units that are not NGFF space units, dataset paths that leave
    the image folder (absolute, `..`, or a symbolic link out), axes that do not match the arrays.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such file or directory")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a group"
        raise _fail(path, f"not a Zarr group ({type(exc).__name__}); expected an OME-Zarr image (NGFF 0.4 or 0.5)") from None
    attrs = dict(group.attrs)
    image_path = path
    if "bioformats2raw.layout" in attrs and "multiscales" not in attrs:
        image_path = path / "0"
        if image_path.exists() and not image_path.resolve().is_relative_to(path.resolve()):
            raise _fail(path, f"the bioformats2raw image group '0' resolves to {image_path.resolve()}, outside the "
                              "image folder (a symbolic link?); zse reads only arrays inside the image")
        try:
            group = zarr.open_group(str(image_path), mode="r")
        except Exception:
            raise _fail(path, "bioformats2raw layout without image group '0'") from None
        attrs = dict(group.attrs)
    found = _multiscales(attrs)
    if found is None:
        raise _fail(path, "a Zarr group without OME-NGFF 'multiscales' metadata; expected an OME-Zarr image (NGFF 0.4 or 0.5)")
    version, raw = found
    if version not in NGFF_VERSIONS:
        raise _fail(path, f"NGFF version {version!r} is not supported; valid: {', '.join(NGFF_VERSIONS)}")
    if not isinstance(raw, list):
        raise _bad(path, "multiscales", f"is {_show(raw)}, expected a list of multiscale objects")
    ms = raw[0]
    if not isinstance(ms, dict):
        raise _bad(path, "multiscales[0]", f"is {_show(ms)}, expected an object with 'axes' and 'datasets'")
    names, units = _axes(path, "multiscales[0].axes", ms.get("axes"))
    datasets = ms.get("datasets")
    if datasets is not None and not isinstance(datasets, list):
        raise _bad(path, "multiscales[0].datasets", f"is {_show(datasets)}, expected a list of objects with a 'path'")
    if not datasets:
        raise _fail(path, "multiscales has no datasets")
    level_paths = [_dataset_path(path, image_path, f"multiscales[0].datasets[{i}]", d) for i, d in enumerate(datasets)]
    levels = []
    for p in level_paths:
        try:
            levels.append(open_source_array(image_path / p))
        except Exception as exc:
            raise _fail(path, f"cannot open dataset {p!r} as a Zarr array: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    arr0 = levels[0]
    if arr0.ndim < 3 or len(names) < 3:
        raise _fail(path, f"a {arr0.ndim}-D image (axes {names or '?'}); zse needs a z-stack with axes zyx or czyx")
    if names not in SUPPORTED_AXES:
        raise _fail(path, f"axes {names!r} are not supported; valid: {', '.join(SUPPORTED_AXES)}")
    for i, (p, arr) in enumerate(zip(level_paths, levels, strict=True)):
        if arr.ndim != len(names):
            raise _fail(path, f"array {p!r} (level {i}) has {arr.ndim} dimensions but axes are {names!r}")
    dtype = np.dtype(arr0.dtype)
    if dtype.name not in SUPPORTED_DTYPES:
        raise _fail(path, f"dtype {dtype.name} is not supported; valid: {', '.join(SUPPORTED_DTYPES)}")
    nz = arr0.shape[names.index("z")]
    if nz < MIN_PLANES:
        raise _fail(path, f"{nz} z plane(s); zse needs at least {MIN_PLANES} planes (a z-scan)")
    scale, trans = _transforms(path, "multiscales[0].datasets[0].coordinateTransformations",
                               datasets[0].get("coordinateTransformations"), names)
    ms_scale, ms_trans = _transforms(path, "multiscales[0].coordinateTransformations", ms.get("coordinateTransformations"), names)
    scale = scale * ms_scale
    trans = trans * ms_scale + ms_trans
    voxel, origin = [], []
    for a in "zyx":
        i = names.index(a)
        factor = _unit_factor(path, f"multiscales[0].axes[{i}].unit", a, units[i])
        size, offset = float(scale[i] * factor), float(trans[i] * factor)
        if not (math.isfinite(size) and size > 0):
            raise _bad(path, "multiscales[0]", f"scale of axis {a!r} gives a voxel size of {size!r} µm; voxel sizes "
                                               "must be positive and finite")
        if not math.isfinite(offset):
            raise _bad(path, "multiscales[0]", f"translation of axis {a!r} gives {offset!r} µm; it must be finite")
        voxel.append(size)
        origin.append(offset)
    meta = ImageMeta(
        axes=names,
        shape=tuple(int(s) for s in arr0.shape),
        dtype=dtype.name,
        voxel_size_um=(voxel[0], voxel[1], voxel[2]),
        translation_um=(origin[0], origin[1], origin[2]),
        ngff_version=version,
        name=str(ms.get("name", path.name)),
    )
    return SourceImage(path=path, image_path=image_path, group=group, meta=meta, levels=levels,
                       level_paths=level_paths, attrs=attrs)


def level_shapes(shape: tuple[int, ...], min_size: int = 1024) -> list[tuple[int, ...]]:
    """Shapes of the pyramid: level 0, then y and x halved (rounded up, z and c kept) until both are ≤ min_size."""
    shapes = [tuple(shape)]
    while max(shapes[-1][-2:]) > min_size:
        s = shapes[-1]
        shapes.append((*s[:-2], -(-s[-2] // 2), -(-s[-1] // 2)))
    return shapes


def multiscales_attrs(
    meta: ImageMeta,
    n_levels: int,
    ngff: str,
    *,
    name: str = "image",
    window: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Group attributes for a pyramid of `n_levels` levels named "0".."n−1" (halved in y, x per level).

    Level l has scale (sz, sy·2^l, sx·2^l) and translation t + (2^l − 1)/2 · s in y and x, so pixel
    centres stay in place (mean downsampling). `window` is the omero display window (default: dtype range).
    """
    if ngff not in NGFF_VERSIONS:
        raise InputError(f"NGFF version {ngff!r} is not supported for writing; valid: {', '.join(NGFF_VERSIONS)}")
    axes = []
    for a in meta.axes:
        if a == "c":
            axes.append({"name": "c", "type": "channel"})
        else:
            axes.append({"name": a, "type": "space", "unit": "micrometer"})
    sz, sy, sx = meta.voxel_size_um
    tz, ty, tx = meta.translation_um
    datasets = []
    for level in range(n_levels):
        f = 2**level
        scale = [sz, sy * f, sx * f]
        trans = [tz, ty + (f - 1) / 2 * sy, tx + (f - 1) / 2 * sx]
        if meta.axes == "czyx":
            scale = [1.0, *scale]
            trans = [0.0, *trans]
        datasets.append({
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [float(v) for v in scale]},
                {"type": "translation", "translation": [float(v) for v in trans]},
            ],
        })
    top = float(np.iinfo(np.dtype(meta.dtype)).max)
    lo, hi = window if window is not None else (0.0, top)
    channels = [
        {
            "label": f"brightfield {c}" if meta.n_channels > 1 else "brightfield",
            "color": "FFFFFF",
            "active": True,
            "coefficient": 1,
            "family": "linear",
            "inverted": False,
            "window": {"start": float(lo), "end": float(hi), "min": 0.0, "max": top},
        }
        for c in range(meta.n_channels)
    ]
    omero = {"name": name, "channels": channels, "rdefs": {"model": "greyscale", "defaultZ": meta.shape_zyx[0] // 2, "defaultT": 0}}
    multiscale: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets}
    if ngff == "0.4":
        multiscale = {"version": "0.4", **multiscale}
        omero = {"version": "0.4", **omero}
    check_with_spec_models(multiscale, ngff)
    if ngff == "0.4":
        return {"multiscales": [multiscale], "omero": omero}
    return {"ome": {"version": "0.5", "multiscales": [multiscale], "omero": omero}}


def check_with_spec_models(multiscale: dict[str, Any], ngff: str) -> None:
    """Validate a `multiscales` entry zse writes against ome-zarr-models' `Multiscale` of that version, so
    that a writer bug fails here, loudly, instead of producing an image other tools refuse.

    Inputs are not read through these models: `open_image` accepts what they refuse (NGFF 0.3-style axis
    names, missing units) and names the exact field of a malformed entry, which their errors do not."""
    if ngff == "0.4":
        from ome_zarr_models.v04.multiscales import Multiscale as Multiscale04

        Multiscale04.model_validate(multiscale)
    else:
        from ome_zarr_models.v05.multiscales import Multiscale as Multiscale05

        Multiscale05.model_validate(multiscale)
