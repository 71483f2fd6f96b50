#!/usr/bin/env bash
# Install (Debian packages) and start a one-node Slurm for zse's Slurm tests.
#
#   .ci/slurm-up.sh            # idempotent: safe to re-run; a running, healthy Slurm is left alone
#
# Always exits 0. The outcome is written to $ZSE_SLURM_DIR/status (default /tmp/zse-slurm/status):
#   "ok"                    Slurm is up; sbatch/squeue/scancel work with the default /etc/slurm config
#   "unavailable: REASON"   it could not start (no root, no apt, daemon failure, ...); the tests marked
#                           `slurm` skip and show REASON (tests/workflows/conftest.py reads this file)
# Also written: $ZSE_SLURM_DIR/gpus (number of fake GPUs configured as gres, 0 if mknod failed),
# daemon logs in $ZSE_SLURM_DIR/log/. Stop it with .ci/slurm-down.sh.
#
# Recipe (docs: /work/shared/notes/field-notes.md, "Slurm on one machine"): slurmctld + slurmd +
# munge from Debian, SlurmUser=root, proctrack/linuxproc, task/none, NodeAddr=127.0.0.1, fake GPUs as
# character devices (mknod c 195 N) listed in gres.conf with AutoDetect=off.
set -u

DIR="${ZSE_SLURM_DIR:-/tmp/zse-slurm}"
CONF_DIR=/etc/slurm
NGPU="${ZSE_SLURM_GPUS:-2}"
mkdir -p "$DIR/log" 2>/dev/null || { echo "slurm-up: cannot create $DIR" >&2; exit 0; }
STATUS="$DIR/status"

fail() {
  echo "unavailable: $*" >"$STATUS"
  echo "slurm-up: Slurm unavailable: $*" >&2
  exit 0
}

healthy() {
  # the controller answers and the node is usable (idle, mixed or allocated)
  local state
  state="$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n1)" || return 1
  case "$state" in idle* | mix* | alloc* | comp*) return 0 ;; *) return 1 ;; esac
}

if [ "$(id -u)" != 0 ]; then
  fail "needs root to install and run slurmctld/slurmd (running as $(id -un))"
fi

if command -v sinfo >/dev/null 2>&1 && [ -f "$CONF_DIR/slurm.conf" ] && grep -q "zse-ci" "$CONF_DIR/slurm.conf" && healthy; then
  echo ok >"$STATUS"
  echo "slurm-up: already running"
  exit 0
fi

# ---------------------------------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
  || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "slurm is not installed and apt-get is not available"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >"$DIR/log/apt.log" 2>&1; then
    apt-get update >>"$DIR/log/apt.log" 2>&1 || true
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >>"$DIR/log/apt.log" 2>&1 \
      || fail "apt-get install slurmctld slurmd slurm-client munge failed (see $DIR/log/apt.log)"
  fi
fi

# ------------------------------------------------------------------------------------------- munge
if ! (munge -n 2>/dev/null | unmunge >/dev/null 2>&1); then
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null 2>&1; then mungekey --create --force >/dev/null 2>&1; fi
    if [ ! -s /etc/munge/munge.key ]; then
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none || fail "cannot create /etc/munge/munge.key"
    fi
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
  chmod 0755 /run/munge
  if command -v runuser >/dev/null 2>&1 && id munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged >"$DIR/log/munged.out" 2>&1
  else
    /usr/sbin/munged --force >"$DIR/log/munged.out" 2>&1
  fi
  for _ in $(seq 1 20); do
    (munge -n 2>/dev/null | unmunge >/dev/null 2>&1) && break
    sleep 0.25
  done
  (munge -n 2>/dev/null | unmunge >/dev/null 2>&1) || fail "munged did not start (see $DIR/log/munged.out)"
fi

# -------------------------------------------------------------------------------------- stop stale
for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
  if [ -s "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null; fi
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$pidfile"
  fi
done

# -------------------------------------------------------------------------------------- fake GPUs
HOST="$(hostname -s)"
gpus=0
mkdir -p "$DIR/dev"
if [ "$NGPU" -gt 0 ]; then
  gpus="$NGPU"
  for i in $(seq 0 $((NGPU - 1))); do
    dev="$DIR/dev/fake_nvidia$i"
    [ -c "$dev" ] && continue
    rm -f "$dev"
    if ! mknod "$dev" c 195 "$i" 2>/dev/null; then gpus=0; break; fi
  done
fi
echo "$gpus" >"$DIR/gpus"

# ------------------------------------------------------------------------------------------ config
CPUS="$(nproc)"
MEM="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)"
[ -n "$MEM" ] || MEM=1024
MEM=$((MEM * 9 / 10))
mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool"
GRES_NODE=""
GRES_TYPES=""
if [ "$gpus" -gt 0 ]; then
  GRES_NODE="Gres=gpu:$gpus"
  GRES_TYPES="GresTypes=gpu"
  cat >"$CONF_DIR/gres.conf" <<EOF
# zse-ci: fake GPUs (character devices), no autodetection
AutoDetect=off
NodeName=$HOST Name=gpu File=$DIR/dev/fake_nvidia[0-$((gpus - 1))]
EOF
else
  rm -f "$CONF_DIR/gres.conf"
fi
cat >"$CONF_DIR/slurm.conf" <<EOF
# zse-ci: one-node Slurm written by .ci/slurm-up.sh
ClusterName=zse-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
MinJobAge=300
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MessageTimeout=20
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$GRES_TYPES
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# ------------------------------------------------------------------------------------------- start
slurmctld -f "$CONF_DIR/slurm.conf" >"$DIR/log/slurmctld.out" 2>&1 || fail "slurmctld failed to start (see $DIR/log/slurmctld.log)"
slurmd -f "$CONF_DIR/slurm.conf" -N "$HOST" >"$DIR/log/slurmd.out" 2>&1 || fail "slurmd failed to start (see $DIR/log/slurmd.log)"
for _ in $(seq 1 60); do
  healthy && break
  state="$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n1)"
  case "$state" in drain* | down*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 ;; esac
  sleep 0.5
done
healthy || fail "node $HOST not idle after 30 s (sinfo: $(sinfo -h -N -o '%t %E' 2>&1 | head -n1); see $DIR/log/)"
echo ok >"$STATUS"
echo "slurm-up: Slurm is up (node $HOST, $CPUS CPUs, ${MEM} MB, $gpus fake GPUs)"
exit 0
