"""z super-resolution: where the planes of a model's output lie, and what copied-through pixels become.

A model may make more z planes than it is given (`scale_zyx` = (sz, 1, 1), zse.pipeline.infer.output_scale):
a tile (Z, Y, X) comes back as (Z·sz, Y, X). The pipeline then writes an output of Z·sz planes; y and x,
the lattice, the blending weights and the pyramid (y-x only) are those of sz = 1.

Placement (the voxel-shuffle convention of 3D up-samplers, as in the dualgan-3d generator): input voxel k, centred
at z0 + dz·k, is split into sz equal slabs; output plane j belongs to input voxel k = j // sz and its centre
lies at

    z0 + dz·((j + 0.5)/sz − 0.5),

so the output has voxel size dz/sz and translation z0 + dz·(1/(2·sz) − 1/2), and the sz output planes of an
input voxel are centred, on average, where that voxel was. `output_z_axis` is the one place this is written.

Copy-through (background tiles and blocks, which the model does not run on): each input plane is repeated
sz times (`repeat_planes`), i.e. every output plane takes the value of the input voxel it lies in — the
nearest-neighbour up-sampling under the convention above, exact for integer data, so a background block
holds the input's values and nothing the input does not.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zse.pipeline.io.ngff import ImageMeta


def output_z_axis(planes: int, voxel_z_um: float, translation_z_um: float, scale_z: int) -> tuple[int, float, float]:
    """(planes, voxel size µm, translation µm) of the output z axis for an input z axis of `planes` planes
    of `voxel_z_um` whose first plane is centred at `translation_z_um`, up-sampled `scale_z` times
    (see the module docstring). scale_z = 1 gives the input axis back unchanged."""
    if scale_z < 1:
        raise ValueError(f"scale_z {scale_z} is invalid; valid: a whole number ≥ 1")
    if scale_z == 1:
        return planes, voxel_z_um, translation_z_um
    return planes * scale_z, voxel_z_um / scale_z, translation_z_um + voxel_z_um * (0.5 / scale_z - 0.5)


def output_meta(meta: ImageMeta, scale_z: int) -> ImageMeta:
    """`meta` of an input (level 0) turned into that of the output of a model with z scale `scale_z`:
    Z·sz planes, z voxel size dz/sz, z translation per `output_z_axis`; y, x, c, dtype unchanged."""
    if scale_z == 1:
        return meta
    z, dz, tz = output_z_axis(meta.shape[-3], meta.voxel_size_um[0], meta.translation_um[0], scale_z)
    shape = (*meta.shape[:-3], z, *meta.shape[-2:])
    return dataclasses.replace(meta, shape=shape, voxel_size_um=(dz, *meta.voxel_size_um[1:]),
                               translation_um=(tz, *meta.translation_um[1:]))


def repeat_planes(a: np.ndarray, scale_z: int) -> np.ndarray:
    """(…, Z, Y, X) → (…, Z·sz, Y, X), each plane repeated `scale_z` times (copy-through; module docstring)."""
    return a if scale_z == 1 else np.repeat(a, scale_z, axis=-3)
