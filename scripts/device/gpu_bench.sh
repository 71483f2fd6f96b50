#!/usr/bin/env bash
# Issue 15, item 4: the section-scale GPU benchmark as ONE prepared call on the lent GPU machine.
# Run from the repository root with $OUT set; carry [".whl-bench"] (scripts/device/README.md says how to
# make it). Every step has a time guard (`timeout`) taken from what is left of BUDGET_S (default 510 s), and
# the summary in $OUT is rewritten after every step, so $OUT always holds results, whatever stops the call.
#
#   device:  OUT=$OUT bash scripts/device/gpu_bench.sh
#   dry run on CPU (here; every step tiny, no nvidia-smi, no installs):
#            DRY_RUN=1 OUT=/tmp/gpu-dry PY=.venv/bin/python bash scripts/device/gpu_bench.sh
#
# Steps: install the carried wheels and zse (no network there) → zse enhance's defaults for MODEL → model-only
# sweep (fp32, bf16 × batches × channels-last) → size a slide so its tissue tiles take TARGET_S at the bf16
# model-only rate (shrunk to fit the budget) and write it → zse enhance --cluster local-cuda (timed, bf16) →
# zse bench model + in-process pipeline (bf16) → the GPU tests → zse bench MONAI → zse bench naive loop (on a
# 2048² slide) → summary. nvidia-smi samples utilisation and memory every 500 ms throughout.
# Outputs in $OUT: gpu_bench.json, gpu_bench.md, logs.tar.gz (every log, JSON, nvidia-smi samples), and
# copies of sweep.json and bench-bf16.json.
set -u
export LC_ALL=C
OUT=${OUT:?set OUT}
DRY=${DRY_RUN:-0}
[ "${ZSE_DEVICE:-}" = cpu ] && DRY=1
PY=${PY:-python3}
MODEL=${MODEL:-unet3d-gan}
TARGET_S=${TARGET_S:-30}
BUDGET_S=${BUDGET_S:-510}
WORK=${WORK:-/tmp/zse-gpu-bench}
WHL_DIR=${WHL_DIR:-.whl-bench}
T_START=$(date +%s)
DEADLINE=$((T_START + BUDGET_S))
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/gpu_bench.py"
if [ "$DRY" = 1 ]; then
  DEVICE=cpu; CLUSTER=local; SWEEP_BATCHES=${SWEEP_BATCHES:-1,2}; SIDE=${SIDE:-256}; NAIVE_SIDE=${NAIVE_SIDE:-256}
  SKIP_SETUP=1; AMP_ENHANCE=none
  PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"   # the venv's zse
else
  DEVICE=cuda; CLUSTER=${CLUSTER:-local-cuda}; SWEEP_BATCHES=${SWEEP_BATCHES:-4,8,16,32}; SIDE=${SIDE:-}; NAIVE_SIDE=${NAIVE_SIDE:-2048}
  AMP_ENHANCE=bf16
fi
rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"
LOGS="$WORK/logs"; mkdir -p "$LOGS"
: > "$LOGS/steps.tsv"; : > "$LOGS/commands.txt"

ts() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
left() { echo $((DEADLINE - $(date +%s))); }

publish() {  # the summary and the logs into $OUT (cheap; after every step)
  timeout 30 "$PY" "$HELPER" summary --logs "$LOGS" --out "$OUT" >>"$LOGS/summary.log" 2>&1
  for f in sweep.json bench-bf16.json; do [ -f "$LOGS/$f" ] && cp "$LOGS/$f" "$OUT/"; done
  tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs 2>/dev/null
}

step() {  # step NAME CAP_S RESERVE_S CMD...: run CMD with a guard of min(CAP, time left − RESERVE); log with timestamps
  local name=$1 cap=$2 reserve=$3; shift 3
  local avail=$(( $(left) - reserve )); local t=$(( cap < avail ? cap : avail ))
  local t0=$EPOCHREALTIME
  if (( t < 5 )); then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t0" "$t0" 125 0 "skipped: $(left) s left, $reserve s kept for later steps" >>"$LOGS/steps.tsv"
    echo "gpu_bench: $name skipped (no time left)" >&2; return 125
  fi
  echo "$*" >>"$LOGS/commands.txt"
  echo "gpu_bench: [$(( $(date +%s) - T_START )) s] $name (guard $t s): $*" >&2
  timeout -k 5 "$t" "$@" 2>&1 | ts >"$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t0" "$EPOCHREALTIME" "$rc" "$t" "${NOTE:-}" >>"$LOGS/steps.tsv"
  [ "$rc" = 0 ] || { echo "gpu_bench: $name rc $rc; its last lines:" >&2; tail -5 "$LOGS/$name.log" >&2; }
  publish
  return "$rc"
}

# ---- 1. install (the GPU image has CUDA torch, numpy, scipy, pandas, numba, pytest, ...; no network)
if [ -z "${SKIP_SETUP:-}" ]; then
  step setup-wheels 150 330 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHL_DIR"/*.whl
  export PYTHONPATH=/tmp/site
  step setup-zse 120 330 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index .
  PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi
export PATH PYTHONUNBUFFERED=1
if [ "$CLUSTER" = local-cuda ] && ! "$PY" -c "from dask_cuda import LocalCUDACluster" >"$LOGS/dask-cuda.log" 2>&1; then
  echo "gpu_bench: dask-cuda does not import (logs/dask-cuda.log); the Dask run uses --cluster local" >&2
  CLUSTER=local   # one local worker with the GPU resource: what zse enhance --device cuda does without dask-cuda
fi
DEFAULTS=$("$PY" "$HELPER" defaults --model "$MODEL" --device "$DEVICE" 2>>"$LOGS/defaults.log") || {
  echo "gpu_bench: zse does not import; see $LOGS/defaults.log" >&2; cat "$LOGS/defaults.log" >&2; publish; exit 1; }
echo "$DEFAULTS" >"$LOGS/defaults.json"
jget() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
OV=$(jget "$LOGS/defaults.json" overlap); BATCH=$(jget "$LOGS/defaults.json" batch)
"$PY" - "$LOGS/meta.json" "$MODEL" "$DEVICE" "$DRY" "$CLUSTER" "$DEFAULTS" <<'EOF' 2>>"$LOGS/defaults.log"
import json, os, platform, sys, time, torch
path, model, device, dry, cluster, defaults = sys.argv[1:7]
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
json.dump({"date": time.strftime("%Y-%m-%d %H:%M %Z"), "host": platform.node(), "cpu_cores": os.cpu_count(), "model": model,
           "device": device, "gpu": gpu, "torch": f"torch {torch.__version__}, CUDA {torch.version.cuda}", "dry_run": dry == "1",
           "cluster": cluster, "command": "OUT=$OUT bash scripts/device/gpu_bench.sh", **json.loads(defaults)}, open(path, "w"))
EOF

# ---- GPU sampler (nvidia-smi's own timestamps, local time)
NVPID=
if [ "$DRY" = 0 ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$LOGS/gpu.txt" 2>&1
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 >"$LOGS/nvsmi.csv" 2>/dev/null &
  NVPID=$!
else
  echo "no nvidia-smi (dry run or not found): no utilisation samples" >"$LOGS/gpu.txt"
fi

# ---- 2. model-only sweep: fp32 and bf16 × batches × channels-last (no slide)
BENCH=(zse bench --device "$DEVICE" --model "$MODEL" --overlap "$OV")
step sweep 100 330 "${BENCH[@]}" --sweep --sweep-batches "$SWEEP_BATCHES" --sweep-precisions fp32,bf16 --out "$LOGS/sweep.json"

# ---- 3. the slide: tissue tiles worth TARGET_S of model-only time, within what is left
if [ -z "$SIDE" ]; then
  SIZING=$("$PY" "$HELPER" size --sweep "$LOGS/sweep.json" --batch "$BATCH" --overlap "$OV" --left "$(left)" --target "$TARGET_S")
  echo "$SIZING" >"$LOGS/sizing.json"
  SIDE=$(jget "$LOGS/sizing.json" side)
else
  echo "{\"side\": $SIDE, \"reason\": \"SIDE given\"}" >"$LOGS/sizing.json"
fi
"$PY" - "$LOGS/meta.json" "$LOGS/sizing.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
m["sizing"] = f"side {s['side']} px ({s.get('reason')}; planned model-only T {s.get('planned_T_s', 0) or 0:.0f} s at {s.get('rate') or 0:.0f} tiles/s)"
json.dump(m, open(sys.argv[1], "w"))
EOF
step slide 150 260 "$PY" "$HELPER" slide --side "$SIDE" --out "$WORK/slide.zarr" --json "$LOGS/slide.json"
step slide-small 40 240 "$PY" "$HELPER" slide --side "$NAIVE_SIDE" --out "$WORK/small.zarr"
"$PY" "$HELPER" tiles --slide "$WORK/slide.zarr" --model "$MODEL" --device "$DEVICE" >"$LOGS/tiles.json" 2>>"$LOGS/defaults.log"

# ---- 4. the pipeline through dask-cuda, one run (zse bench has no --cluster option: zse enhance, timed), bf16
NOTE="zse enhance --cluster $CLUSTER" step enhance-cluster 150 200 "$PY" "$HELPER" timed --out "$LOGS/enhance-cluster.json" -- \
  zse enhance "$WORK/slide.zarr" "$WORK/out-cluster.zarr" --model "$MODEL" --device "$DEVICE" --amp "$AMP_ENHANCE" \
  --cluster "$CLUSTER" --dashboard-address none --overwrite --quiet
rm -rf "$WORK/out-cluster.zarr"

# ---- 5. model-only + in-process pipeline, bf16, on the slide (the bench runs the pipeline twice on cuda, keeps the best)
step bench-bf16 260 140 "${BENCH[@]}" --amp bf16 --input "$WORK/slide.zarr" --stages model,pipeline-inproc --no-peak --no-io \
  --out "$LOGS/bench-bf16.json"

# ---- 6. the GPU tests
step gpu-tests 90 75 "$PY" -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors -rs tests

# ---- 7. MONAI on the slide when it fits (else the 2048² slide), the naive loop on the 2048² slide
MONAI_IN="$WORK/slide.zarr"
EST=$("$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(int((s.get('expected_model_s') or 0) / 0.7 / 0.8 + 25))" "$LOGS/sizing.json")
if (( EST > $(left) - 60 )); then MONAI_IN="$WORK/small.zarr"; fi
NOTE="input $(basename "$MONAI_IN")" step bench-monai 200 55 "${BENCH[@]}" --amp bf16 --input "$MONAI_IN" --stages monai --no-peak --no-io \
  --out "$LOGS/bench-monai.json"
NOTE="input small.zarr" step bench-naive 120 12 "${BENCH[@]}" --amp bf16 --input "$WORK/small.zarr" --stages naive --no-peak --no-io \
  --out "$LOGS/bench-naive.json"

[ -n "$NVPID" ] && kill "$NVPID" 2>/dev/null
publish
echo "gpu_bench: done in $(( $(date +%s) - T_START )) s; $OUT:" >&2
ls -la "$OUT" >&2
cat "$OUT/gpu_bench.md" 2>/dev/null
