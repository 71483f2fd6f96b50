"""zse: whole-slide z-stack enhancement for atlas-scale brain histology.

The code lives in three packages, kept at the top of the repository and installed under ``zse``:

- ``zse.pipeline`` (``pipeline/``): OME-Zarr in, block-wise tiled inference with seam-free blending,
  multiscale OME-Zarr out. Knows nothing of model architectures.
- ``zse.models`` (``models/``): generators, discriminators, losses, training, checkpoints, baselines,
  metrics. Turns a model name or file into a predictor the pipeline can run.
- ``zse.workflows`` (``workflows/``): the jobs (one public function each) and the ``zse`` command line
  on top of them; owns clusters.

In Python, the jobs are one call each::

    import zse
    result = zse.enhance("slide.ome.zarr", "enhanced.ome.zarr", model="unet3d-gan", workers=0)
    print(result.lines())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zse.workflows.enhance import enhance as enhance

__version__ = "0.1.0"

_JOBS = {"enhance": "zse.workflows.enhance"}


def __getattr__(name: str) -> Any:
    """`zse.enhance` (zse.workflows.enhance.enhance), imported on first use so `import zse` stays light."""
    if name in _JOBS:
        import importlib

        return getattr(importlib.import_module(_JOBS[name]), name)
    raise AttributeError(f"module 'zse' has no attribute {name!r}")
