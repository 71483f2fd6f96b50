"""`zse bench`: how fast zse enhance is, against the model alone, a naive tile loop and MONAI.

One process, one synthetic slide (or `--input` OME-Zarr), one tile lattice (tile, stride = tile − overlap)
for every stage:

    (a) model-only      batches already on the device, after warm-up (device synchronised on cuda)
    (b) pipeline        the enhance job (`zse.workflows.enhance.enhance`) on a Dask client opened as
                        zse enhance opens it (`open_client`, `--cluster local|local-cuda`, passed as
                        `client=`) and in process (`workers=0`); "tiles run" (model inputs, unique
                        lattice tiles with tissue) and "lattice tiles" (incl. skipped background) per second
    (c) naive           a Python loop over lattice tiles: read each tile from the input Zarr, run the
                        model on it, write its centre crop into an output Zarr (no blending)
    (d) monai           `monai.inferers.sliding_window_inference` (Gaussian blending) over zse's blocks
    (e) host            host work per tile: the enhance job in process with the identity model, one thread,
                        timed by stage (tissue, read, write, pyramid, …; zse.workflows.bench.host) on its
                        own slide (`--host-shape`, default 29 × 2048 × 2048; or `--input`)

Ratios (b)/(a) use tiles run per second (does the pipeline keep the model busy?); (b)/(c) and (b)/(d)
use lattice tiles per second, i.e. the inverse of the wall time to cover the same slide.

`--sweep` runs only the model-only stage over batch sizes, precisions (fp32, bf16, fp16), channels-last
and torch.compile, with the relative L2 error of each precision against fp32.

The stand-in model `convnet[:WIDTH]` (zse.models.testing.ConvNetFactory: 4 random 3×3×3 convolutions,
receptive radius 4) is picklable, so Dask workers build it like any registry model; other names go
through `zse.models.registry.resolve`.

Tile and overlap default to zse enhance's for the model, and so does the Dask stage's GPU tasks per
worker. With `--out FILE`, FILE is rewritten after every stage (`complete`: false until the end).

Modules: config (BenchConfig, the model, the lattice), stages (the measurements), host (host work per
tile), memory (host and device memory, CPU seconds, the block-task memory formula), report (versions,
projection, Markdown), keys (the JSON's keys, rendered into BENCHMARKS.md), command (the click command,
run_bench, run_sweep).
"""

from zse.workflows.bench.command import bench, run_bench
from zse.workflows.bench.config import JSON_KEYS, STAGES, BenchConfig

__all__ = ["JSON_KEYS", "STAGES", "BenchConfig", "bench", "run_bench"]
