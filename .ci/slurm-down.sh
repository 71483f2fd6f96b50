#!/usr/bin/env bash
# Stop the one-node Slurm started by .ci/slurm-up.sh (slurmd, slurmctld; munged is left running unless
# ZSE_SLURM_STOP_MUNGE=1). Always exits 0.
set -u
DIR="${ZSE_SLURM_DIR:-/tmp/zse-slurm}"
if command -v scancel >/dev/null 2>&1; then timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true; fi
pids=()
for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
  if [ -s "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null && pids+=("$pid"); fi
  fi
done
if [ "${ZSE_SLURM_STOP_MUNGE:-0}" = 1 ] && [ -s /run/munge/munged.pid ]; then
  pid="$(cat /run/munge/munged.pid)"
  kill "$pid" 2>/dev/null && pids+=("$pid")
fi
for pid in "${pids[@]}"; do
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
done
rm -f "$DIR/slurmd.pid" "$DIR/slurmctld.pid"
[ -d "$DIR" ] && echo "unavailable: stopped by .ci/slurm-down.sh" >"$DIR/status"
echo "slurm-down: stopped"
exit 0
