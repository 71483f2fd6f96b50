"""Stage 2 of the pipeline: OME-NGFF 0.4 / 0.5 metadata, read and written. The only module that knows the spec.

Reads: NGFF 0.4 (Zarr v2; with or without the bioformats2raw wrapper, whose image sits under `0/`) and
NGFF 0.5 (Zarr v3, metadata under `attributes.ome`). Axes `zyx` or `czyx`; uint8 or uint16.
Writes: the same two versions, levels named "0", "1", …, each with one `scale` and one `translation`
(physical units: micrometre), `omero` rendering metadata, `dimension_names` on 0.5 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from zse.errors import InputError
from zse.pipeline.intensity import SUPPORTED_DTYPES

SUPPORTED_AXES = ("zyx", "czyx")
NGFF_VERSIONS = ("0.4", "0.5")
MIN_PLANES = 3
_UNIT_TO_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "meter": 1e6, "angstrom": 1e-4, None: 1.0}


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
    """An opened OME-Zarr image: `levels[0]` is full resolution (zarr arrays, read-only)."""

    path: Path
    image_path: Path
    group: zarr.Group
    meta: ImageMeta
    levels: list[zarr.Array]
    level_paths: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path | str, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def read_multiscales(attrs: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(version, first multiscales entry) from group attributes, or None if not OME-NGFF."""
    if isinstance(attrs.get("ome"), dict) and attrs["ome"].get("multiscales"):
        ome = attrs["ome"]
        return str(ome.get("version", "0.5")), ome["multiscales"][0]
    if attrs.get("multiscales"):
        ms = attrs["multiscales"][0]
        return str(ms.get("version", "0.4")), ms
    return None


def _transforms(entries: list[dict[str, Any]] | None, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.ones(ndim)
    trans = np.zeros(ndim)
    for t in entries or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = scale * np.asarray(t["scale"], dtype=float)
        elif t.get("type") == "translation" and "translation" in t:
            trans = trans + np.asarray(t["translation"], dtype=float)
    return scale, trans


def open_image(path: str | Path) -> SourceImage:
    """Open and validate an OME-Zarr z-scan for reading. Raises InputError with a one-line reason."""
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
        try:
            group = zarr.open_group(str(path / "0"), mode="r")
        except Exception:
            raise _fail(path, "bioformats2raw layout without image group '0'") from None
        image_path = path / "0"
        attrs = dict(group.attrs)
    found = read_multiscales(attrs)
    if found is None:
        raise _fail(path, "a Zarr group without OME-NGFF 'multiscales' metadata; expected an OME-Zarr image (NGFF 0.4 or 0.5)")
    version, ms = found
    if version not in NGFF_VERSIONS:
        raise _fail(path, f"NGFF version {version!r} is not supported; valid: {', '.join(NGFF_VERSIONS)}")
    axes_meta = ms.get("axes") or []
    names = "".join(a["name"] if isinstance(a, dict) else str(a) for a in axes_meta)
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes_meta]
    datasets = ms.get("datasets") or []
    if not datasets:
        raise _fail(path, "multiscales has no datasets")
    level_paths = [d["path"] for d in datasets]
    try:
        levels = [zarr.open_array(str(image_path / p), mode="r") for p in level_paths]
    except Exception as exc:
        raise _fail(path, f"cannot open dataset arrays {level_paths}: {type(exc).__name__}: {exc}") from None
    arr0 = levels[0]
    if arr0.ndim < 3 or len(names) < 3:
        raise _fail(path, f"a {arr0.ndim}-D image (axes {names or '?'}); zse needs a z-stack with axes zyx or czyx")
    if names not in SUPPORTED_AXES:
        raise _fail(path, f"axes {names!r} are not supported; valid: {', '.join(SUPPORTED_AXES)}")
    if arr0.ndim != len(names):
        raise _fail(path, f"array {level_paths[0]} has {arr0.ndim} dimensions but axes are {names!r}")
    dtype = np.dtype(arr0.dtype)
    if dtype.name not in SUPPORTED_DTYPES:
        raise _fail(path, f"dtype {dtype.name} is not supported; valid: {', '.join(SUPPORTED_DTYPES)}")
    nz = arr0.shape[names.index("z")]
    if nz < MIN_PLANES:
        raise _fail(path, f"{nz} z plane(s); zse needs at least {MIN_PLANES} planes (a z-scan)")
    scale, trans = _transforms(datasets[0].get("coordinateTransformations"), arr0.ndim)
    ms_scale, ms_trans = _transforms(ms.get("coordinateTransformations"), arr0.ndim)
    scale = scale * ms_scale
    trans = trans * ms_scale + ms_trans
    factor = np.array([_UNIT_TO_UM.get(u, 1.0) for u in units] if len(units) == arr0.ndim else [1.0] * arr0.ndim)
    spatial = [names.index(a) for a in "zyx"]
    meta = ImageMeta(
        axes=names,
        shape=tuple(int(s) for s in arr0.shape),
        dtype=dtype.name,
        voxel_size_um=tuple(float(scale[i] * factor[i]) for i in spatial),  # type: ignore[arg-type]
        translation_um=tuple(float(trans[i] * factor[i]) for i in spatial),  # type: ignore[arg-type]
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
        return {"multiscales": [multiscale], "omero": omero}
    return {"ome": {"version": "0.5", "multiscales": [multiscale], "omero": omero}}
