"""Lazy TIFF sources: per-plane pyramidal whole-slide TIFFs and multi-page stacks as Dask arrays.

What is read
    Level 0 of series 0 of each file, through tifffile's Zarr 3 view
    (`tifffile.TiffFile.aszarr(series=0, level=0)` opened with `zarr.open_array`): nothing is decoded
    until a Dask block is computed, and a block decodes only the TIFF tiles (or strips) it covers.
    Thumbnail, label and macro images (Aperio/Huron style: extra pages or series after level 0) and the
    lower pyramid levels are never read. JPEG, JPEG 2000, LZW, Deflate, Zstd, ... tiles are decoded by
    imagecodecs.

Shapes and axes
    `TiffInfo` describes one file; `open_tiff_volume` validates a whole input (every file, before
    anything is written) and returns a `TiffVolume` whose `data` is a Dask array
    - ``zyx``  (Z, Y, X), the input dtype, for ``channel_mode="gray"``;
    - ``czyx`` (C, Z, Y, X), the input dtype, for ``channel_mode="keep"``.
    Dask blocks are one plane deep and a whole number of TIFF tiles in y and x (about `block_yx` px),
    so no TIFF tile is decoded by two blocks. Only uint8 and uint16 samples are accepted.

Grayscale
    RGB(A) samples become luminance with ITU-R BT.601 weights, rounded half up, in integer arithmetic,
    in the input dtype: ``Y = (299·R + 587·G + 114·B + 500) // 1000`` (alpha is dropped). See
    `rgb_to_gray`.

Voxel size (micrometres, (z, y, x))
    From the metadata where present, in this order: OME-XML ``PhysicalSizeX/Y/Z`` (with their units),
    ImageJ ``spacing``/``unit`` with the resolution tags, the Aperio ``MPP`` field, the TIFF
    ``XResolution``/``YResolution``/``ResolutionUnit`` tags. Resolution tags with no unit, or that give
    pixels larger than 20 µm (screen defaults such as 72 dpi = 352.8 µm), are not used. Values given by
    the caller (``--voxel-size``) take precedence over the metadata.

All errors about the input raise `zse.errors.InputError` (or `ConfigError` for a bad option) with a
one-line message naming the file and what is valid.

Modules: `planes` (INPUT arguments → files in z order), `layout` (what one file holds: `TiffInfo`,
damage checks), `voxel` (voxel size from one file's metadata), `read` (lazy level-0 reads:
`TiffLevel0`, `tiff_dask`), `volume` (the validated input: `open_tiff_volume`, grayscale, voxel size
decision).
"""

from zse.pipeline.io.tiff.layout import TiffInfo, inspect_tiff
from zse.pipeline.io.tiff.planes import TIFF_SUFFIXES, collect_inputs, order_planes
from zse.pipeline.io.tiff.read import TiffLevel0, tiff_dask
from zse.pipeline.io.tiff.volume import (
    GRAY_FORMULA,
    TiffVolume,
    open_tiff_volume,
    resolve_voxel_size,
    rgb_to_gray,
)

__all__ = [
    "GRAY_FORMULA",
    "TIFF_SUFFIXES",
    "TiffInfo",
    "TiffLevel0",
    "TiffVolume",
    "collect_inputs",
    "inspect_tiff",
    "open_tiff_volume",
    "order_planes",
    "resolve_voxel_size",
    "rgb_to_gray",
    "tiff_dask",
]
