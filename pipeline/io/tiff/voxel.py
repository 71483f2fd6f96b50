"""The voxel size one TIFF file's metadata gives, in micrometres (z, y, x), and which metadata gave it.

Sources, in this order: OME-XML ``PhysicalSizeX/Y/Z`` (with their units), ImageJ ``spacing``/``unit``
with the resolution tags, the Aperio ``MPP`` field, the TIFF ``XResolution``/``YResolution``/
``ResolutionUnit`` tags. Resolution tags with no unit, or that give pixels larger than 20 µm (screen
defaults such as 72 dpi = 352.8 µm), are not used. Deciding the volume's size from several files and
``--voxel-size`` is `zse.pipeline.io.tiff.volume.resolve_voxel_size`.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import tifffile

_UNIT_UM = {
    "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\u03bcm": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4,
    "centimeter": 1e4, "m": 1e6, "meter": 1e6, "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6,
}
_MAX_PIXEL_UM = 20.0  # resolution tags giving larger pixels are taken as a screen default, not a pixel size

VoxelSize = tuple[float | None, float | None, float | None]


def _unit_um(unit: str | None) -> float | None:
    if unit is None:
        return 1.0
    return _UNIT_UM.get(str(unit).strip().lower().replace("\\u00b5", "µ"))


def _ome_voxel_size(tif: tifffile.TiffFile) -> tuple[VoxelSize, list[str]]:
    notes: list[str] = []
    xml = tif.ome_metadata
    if not xml:
        return (None, None, None), notes
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return (None, None, None), ["OME-XML could not be parsed"]
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return (None, None, None), notes
    out: list[float | None] = []
    for ax in "ZYX":
        value = pixels.get(f"PhysicalSize{ax}")
        unit = pixels.get(f"PhysicalSize{ax}Unit")
        if value is None:
            out.append(None)
            continue
        scale = _unit_um(unit)
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if scale is None or not math.isfinite(v) or v <= 0:
            notes.append(f"OME PhysicalSize{ax}={value} {unit or ''} not usable")
            out.append(None)
        else:
            out.append(v * scale)
    return (out[0], out[1], out[2]), notes


def _resolution_yx(page: tifffile.TiffPage, unit_um: float | None) -> tuple[tuple[float | None, float | None], str]:
    """Pixel size (y, x) in µm from XResolution/YResolution (px per unit), or (None, None) and why."""
    xres, yres = page.resolution  # px per unit, floats (1.0, 1.0) when absent
    if unit_um is None:
        return (None, None), "its resolution tags have no unit"
    sizes = []
    for r in (yres, xres):
        sizes.append(unit_um / r if r and r > 0 else None)
    if any(s is None or not (1e-4 < s <= _MAX_PIXEL_UM) for s in sizes):
        shown = f"{xres:g} px per {'inch' if unit_um == 25400.0 else f'{unit_um:g} µm'}"
        return (None, None), f"its TIFF resolution {shown} was ignored (not a microscope pixel size)"
    return (sizes[0], sizes[1]), ""


def read_voxel_size(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> tuple[VoxelSize, str | None, list[str]]:
    notes: list[str] = []
    if tif.is_ome:
        vs, n = _ome_voxel_size(tif)
        notes += n
        if any(v is not None for v in vs):
            return vs, "OME-XML PhysicalSize", notes
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        scale = _unit_um(meta.get("unit", "pixel")) if meta.get("unit") not in (None, "pixel") else None
        if scale is not None:
            (y, x), why = _resolution_yx(page, scale)
            z = meta.get("spacing")
            zf = float(z) * scale if isinstance(z, int | float) and z > 0 else None
            if why:
                notes.append(why)
            if y is not None or zf is not None:
                return (zf, y, x), "ImageJ spacing/unit and resolution tags", notes
    if tif.is_svs:
        m = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", page.description or "")
        if m:
            try:
                mpp = float(m.group(1))
            except ValueError:
                mpp = 0.0
            if mpp > 0:
                return (None, mpp, mpp), "Aperio MPP", notes
    unit = page.resolutionunit
    unit_um = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(int(unit)) if unit is not None else None
    if "XResolution" in page.tags:
        (y, x), why = _resolution_yx(page, unit_um)
        if y is not None:
            return (None, y, x), "TIFF XResolution/YResolution", notes
        if why:
            notes.append(why)
    return (None, None, None), None, notes
