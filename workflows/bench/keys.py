"""The keys of a `zse bench` JSON result: the one list that BENCHMARKS.md ("The JSON") renders from.

`JSON_DOC` maps each key (dotted for keys inside `ratios` and `host`) to (when it is there, what it holds);
`json_key_table()` is the Markdown table BENCHMARKS.md carries verbatim, and tests/workflows/test_bench.py
checks both that the file's table is this one and that a real run's JSON has every key that applies to it
and no top-level key missing here. "when" is one of: always; cpu; cuda; --amp (bf16/fp16); --sweep;
stage S (the key is there when stage S ran); stages S|T (either ran).
"""

from __future__ import annotations

JSON_DOC: dict[str, tuple[str, str]] = {
    "device": ("always", "--device (cpu, cuda, cuda:N)"),
    "model": ("always", "--model as given"),
    "model_name": ("always", "the model's own name (registry name or file's)"),
    "amp": ("always", "fp32, bf16 or fp16"),
    "channels_last": ("always", "--channels-last"),
    "compile": ("always", "--compile"),
    "tile": ("always", "tile side (px) of every stage: --tile, else zse enhance's for the model"),
    "overlap": ("always", "overlap (px): --overlap, else zse enhance's for the model"),
    "slide_shape": ("always", "(Z, Y, X) of the slide of stages model…monai"),
    "batch_size": ("always", "tiles per model call"),
    "block": ("always", "--block (null: zse enhance's default)"),
    "cluster": ("always", "--cluster of the Dask stage (local, local-cuda)"),
    "gpu_tasks_per_worker": ("always", "block tasks per GPU at once in the Dask stage"),
    "stages": ("always", "per stage: wall_s, cpu_s, tiles/s, memory (see the stage table above)"),
    "complete": ("always", "false in the file rewritten after each stage, true once every stage ran"),
    "load_before": ("always", "load average (1, 5, 15 min) before the first stage"),
    "load_after": ("always", "load average after the last stage"),
    "versions": ("always", "zse, python, torch, zarr, numcodecs, dask, distributed, numpy, monai, cpu, cpu_cores, gpu, cuda, cudnn"),
    "flops_per_tile": ("always", "FLOP of one tile through the model (null where not countable)"),
    "matmul_peak_tflops": ("cuda", "measured bf16 8192³ matmul TFLOP/s (--peak)"),
    "amp_rel_l2": ("--amp", "relative L2 error of the --amp output against fp32"),
    "sweep": ("--sweep", "rows of the model-only sweep: batch, amp, channels_last, compile, tiles_per_s, rel_l2"),
    "model_tflops": ("stage model", "model-only tiles/s × FLOP per tile / 1e12"),
    "lattice_tiles": ("stages pipeline|pipeline-inproc", "tiles of the lattice over the slide, background included"),
    "tiles_run_unique": ("stages pipeline|pipeline-inproc", "lattice tiles with tissue: what the model must see"),
    "tissue_fraction": ("stages pipeline|pipeline-inproc", "tiles_run_unique / lattice_tiles"),
    "io": ("always", "decode, encode, stored-file read MB/s and compression ratio (null with --no-io or no slide)"),
    "model_only_tiles_per_s": ("always", "(a) tiles/s, null without the stage"),
    "pipeline_tiles_per_s": ("always", "(b), else (b'): lattice tiles/s"),
    "pipeline_tiles_run_per_s": ("always", "(b), else (b'): tiles run per second"),
    "pipeline_voxels_per_s": ("always", "(b), else (b'): level-0 voxels per second"),
    "pipeline_voxels_per_s_processed": ("always", "(b), else (b'): voxels per second of the tissue tiles"),
    "naive_tiles_per_s": ("always", "(c) lattice tiles/s"),
    "monai_tiles_per_s": ("always", "(d) lattice tiles/s"),
    "host_ms_per_tile": ("always", "host work per tile run, ms (identity model, one thread; null without the host stage)"),
    "host": ("stage host", "the host-work run: its slide, lattice, stages and totals (host.* below)"),
    "host.slide_shape": ("stage host", "(Z, Y, X) of the host run's slide (--host-shape or --input)"),
    "host.block": ("stage host", "block side of the host run (--block, else 2048: the GPU default)"),
    "host.tiles_run": ("stage host", "tiles with tissue in the host run"),
    "host.lattice_tiles": ("stage host", "lattice tiles of the host run"),
    "host.wall_s": ("stage host", "wall time of the run (s)"),
    "host.cpu_s": ("stage host", "CPU seconds of this process during the run"),
    "host.host_ms_per_tile": ("stage host", "tissue + read + write + pyramid + markers + output, ms per tile run"),
    "host.host_ms_per_lattice_tile": ("stage host", "the same per lattice tile"),
    "host.device_side_ms_per_tile": ("stage host", "unit + blend + quantise (on the device on a GPU), ms per tile run"),
    "host.stages_ms_per_tile": ("stage host", "ms per tile run of tissue, read, write, pyramid, markers, output, unit, blend, quantise, other"),
    "host.stages_s": ("stage host", "the same in seconds"),
    "host.stages_sys_s": ("stage host", "system CPU seconds of each stage (page faults of fresh memory, file writes, fsync)"),
    "host.sys_s": ("stage host", "system CPU seconds of the run"),
    "host.missing_timers": ("stage host", "pipeline functions the timers did not find (empty when every stage is timed)"),
    "ratios": ("always", "the ratios below (null where a side is missing)"),
    "ratios.pipeline_over_model": ("always", "(b) tiles run/s ÷ (a) tiles/s; target ≥ 0.9"),
    "ratios.inproc_over_model": ("always", "(b') tiles run/s ÷ (a) tiles/s"),
    "ratios.pipeline_over_naive": ("always", "(b) ÷ (c), lattice tiles/s; target ≥ 3"),
    "ratios.pipeline_over_monai": ("always", "(b) ÷ (d), lattice tiles/s; target ≥ 1"),
    "ratios.inproc_over_naive": ("always", "(b') ÷ (c)"),
    "ratios.inproc_over_monai": ("always", "(b') ÷ (d)"),
    "ratios.cpu_s_pipeline_over_model": ("cpu", "(a) CPU-s per tile ÷ (b) CPU-s per tile run"),
    "ratios.cpu_s_inproc_over_model": ("cpu", "the same for (b')"),
    "ratios.cpu_s_pipeline_over_naive": ("cpu", "(c) CPU-s ÷ (b) CPU-s"),
    "ratios.cpu_s_pipeline_over_monai": ("cpu", "(d) CPU-s ÷ (b) CPU-s"),
    "peak_host_mem_bytes": ("always", "largest RSS of this process and its Dask workers over the stages"),
    "peak_device_mem_bytes": ("always", "largest torch.cuda.max_memory_allocated (null on cpu)"),
    "projection": ("always", "hours for a 100,000 × 150,000 section per device and per 4-device node, and the limit"),
    "commands": ("always", "the bench command and the zse enhance commands of (b), (b')"),
}

JSON_KEYS = tuple(k for k, (when, _) in JSON_DOC.items() if when == "always" and "." not in k)
"""Top-level keys every `zse bench` JSON result has."""


def applies(when: str, *, device: str, stages: tuple[str, ...], amp: str | None, sweep: bool) -> bool:
    """Whether a key documented as `when` is in the JSON of a run with these settings."""
    if when == "always":
        return True
    if when in ("cpu", "cuda"):
        return device.startswith(when)
    if when == "--amp":
        return amp not in (None, "fp32")
    if when == "--sweep":
        return sweep
    kind, _, names = when.partition(" ")
    return kind in ("stage", "stages") and any(s in stages for s in names.split("|"))


def json_key_table() -> str:
    """The Markdown table of `JSON_DOC` (BENCHMARKS.md holds it verbatim)."""
    rows = ["| key | when | what |", "|---|---|---|"]
    rows += [f"| `{k}` | {when} | {what} |" for k, (when, what) in JSON_DOC.items()]
    return "\n".join(rows) + "\n"
