"""zse: whole-slide z-stack enhancement for atlas-scale brain histology.

The code lives in three packages, kept at the top of the repository and installed under ``zse``:

- ``zse.pipeline`` (``pipeline/``): OME-Zarr in, block-wise tiled inference with seam-free blending,
  multiscale OME-Zarr out. Knows nothing of model architectures.
- ``zse.models`` (``models/``): generators, discriminators, losses, training, checkpoints, baselines,
  metrics. Turns a model name or file into a predictor the pipeline can run.
- ``zse.workflows`` (``workflows/``): the ``zse`` command line and the jobs it runs; owns clusters.
"""

__version__ = "0.1.0"
