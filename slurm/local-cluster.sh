#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, to test `snakemake --profile slurm` without a
# cluster (tests/test_slurm.py; .ci/run starts it before the tests).
#
#   bash slurm/local-cluster.sh start|stop|status
#
# Needs root and Debian's packages (`apt-get install slurm-wlm munge`; Slurm 22.05 on
# Debian 12). It runs its own munged, slurmctld and slurmd, with their configuration, key,
# state, logs and pid files under one directory, $READRACE_SLURM_DIR (default
# /tmp/readrace-slurm), and links /etc/slurm/slurm.conf to its slurm.conf: that is where
# sbatch, squeue, scontrol and sinfo look by default, so every process (pytest, snakemake,
# the jobs) finds the cluster without an exported SLURM_CONF. It refuses to replace an
# /etc/slurm/slurm.conf it did not write, and `stop` removes the link again.
#
# The cluster is what the workflow needs and no more:
# - no accounting database (accounting_storage/none): sacct cannot answer, and the job
#   states come from squeue (the profile's slurm-status-command);
# - MinJobAge=3600: finished jobs stay visible to squeue and `scontrol show job` for an
#   hour, so squeue polling never misses a finished job, and the test can read them back;
# - one node with the machine's real CPU topology (`slurmd -C`) and a RealMemory 1 GiB
#   below the machine's, in one partition `debug` (the default);
# - a GPU declared as GRES with File=/dev/null, so that jobs asking for --gpus=1 schedule on
#   a GPU-less machine (they then run on the CPU);
# - proctrack/linuxproc and task/none: no cgroups, which containers rarely delegate.
set -euo pipefail

DIR=${READRACE_SLURM_DIR:-/tmp/readrace-slurm}
SYSTEM_CONF=/etc/slurm/slurm.conf
CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket.2
# The line that marks a slurm.conf as written by this script.
MARKER="# Written by readrace slurm/local-cluster.sh"
START_TIMEOUT=${READRACE_SLURM_START_TIMEOUT:-60}

die() {
  echo "local-cluster: $*" >&2
  exit 1
}

# pid of a daemon started here, if it is still running as that daemon (a stale pid file
# whose pid was reused by another program does not count).
running_pid() {
  local name=$1 pidfile=$DIR/run/$1.pid pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  echo "$pid"
}

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it writes $SYSTEM_CONF and runs the daemons as root)"
  local tool
  for tool in munged slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$tool" >/dev/null || die "$tool not found: install Debian's packages (apt-get install slurm-wlm munge)"
  done
  if [ -e "$SYSTEM_CONF" ] && ! grep -qxF "$MARKER" "$SYSTEM_CONF" 2>/dev/null; then
    die "$SYSTEM_CONF exists and was not written by this script: refusing to replace a real cluster's configuration"
  fi
}

write_config() {
  mkdir -p "$DIR"/{etc,munge,run,log,state/slurmctld,state/slurmd}
  # munged wants its socket's directory open to all (clients of every user connect to it);
  # the key file itself is private (umask below).
  chmod 755 "$DIR/munge"
  local node memory topology
  node=$(hostname -s)
  # The node as slurmd itself sees it (CPUs, boards, sockets, cores, threads): a declared
  # topology that differs from the real one drains the node.
  topology=$(slurmd -C | head -1 | grep -o 'CPUs=.*ThreadsPerCore=[0-9]*')
  memory=$(( $(slurmd -C | head -1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 1024 ))
  [ "$memory" -gt 1024 ] || die "too little memory for a node ($memory MB after 1 GiB for the system)"
  cat >"$CONF" <<EOF
$MARKER
# Single-node test cluster for readrace; regenerated on every start (edit the script).
ClusterName=readrace-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state/slurmctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 $topology RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmd reads gres.conf beside slurm.conf.
  cat >"$DIR/etc/gres.conf" <<EOF
$MARKER
NodeName=$node Name=gpu File=/dev/null
EOF
  if [ ! -s "$DIR/munge/munge.key" ]; then
    # munged wants a key of at least 32 bytes, private to the user that runs it.
    (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
  fi
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -sfn "$CONF" "$SYSTEM_CONF"
}

failed() {
  echo "local-cluster: $1 did not start: $(tail -n 3 "$DIR/log/$1.log" 2>/dev/null | tr '\n' ' ')" >&2
}

start_daemons() {
  if ! running_pid munged >/dev/null; then
    munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
      --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
      --seed-file="$DIR/munge/munged.seed" \
      || { failed munged; return 1; }
  fi
  if ! running_pid slurmctld >/dev/null; then
    slurmctld -f "$CONF" || { failed slurmctld; return 1; }
  fi
  if ! running_pid slurmd >/dev/null; then
    slurmd -f "$CONF" || { failed slurmd; return 1; }
  fi
}

node_state() {
  timeout 10 sinfo --noheader --Node --format=%T 2>/dev/null | head -1
}

wait_until_idle() {
  local waited=0 state=""
  local name dead=""
  while [ "$waited" -lt "$START_TIMEOUT" ]; do
    state=$(node_state || true)
    case "$state" in
      idle | mixed | allocated) return 0 ;;
    esac
    # A daemon that exited will not come back (the first seconds are left to the daemons
    # to fork and write their pid files).
    if [ "$waited" -ge 5 ]; then
      for name in munged slurmctld slurmd; do
        running_pid "$name" >/dev/null || dead="$dead $name"
      done
      [ -z "$dead" ] || break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  {
    if [ -n "$dead" ]; then
      echo "local-cluster: daemon(s) exited during start:$dead"
    else
      echo "local-cluster: the node is not idle after ${START_TIMEOUT}s (state: '${state:-no answer}')"
    fi
    local log
    for log in munged slurmctld slurmd; do
      echo "--- tail of $DIR/log/$log.log"
      tail -n 15 "$DIR/log/$log.log" 2>/dev/null || true
    done
  } >&2
  return 1
}

start() {
  check_prerequisites
  if running_pid munged >/dev/null && running_pid slurmctld >/dev/null && running_pid slurmd >/dev/null; then
    wait_until_idle || exit 1
    echo "local-cluster: already running ($CONF)"
    return 0
  fi
  write_config
  if ! { start_daemons && wait_until_idle; }; then
    # Leave nothing half-started behind; the logs stay for a look.
    stop >/dev/null 2>&1 || true
    die "could not start; stopped what it had started (logs in $DIR/log)"
  fi
  echo "local-cluster: running: $(timeout 10 sinfo --noheader --format='partition %P, node %N %T, %c CPUs, %m MB, gres %G')"
  echo "local-cluster: slurm.conf $CONF (linked from $SYSTEM_CONF), logs in $DIR/log"
}

stop_daemon() {
  local name=$1 pid
  pid=$(running_pid "$name") || { rm -f "$DIR/run/$name.pid"; return 0; }
  kill "$pid"
  local waited=0
  while [ -d "/proc/$pid" ] && [ "$waited" -lt 20 ]; do
    sleep 0.5
    waited=$((waited + 1))
  done
  if [ -d "/proc/$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/run/$name.pid"
  echo "local-cluster: stopped $name ($pid)"
}

stop() {
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  # Jobs of this private cluster are ours too: cancel them so that no job step outlives slurmd.
  if running_pid slurmctld >/dev/null; then
    timeout 10 squeue --noheader --format=%i --states=PENDING,RUNNING 2>/dev/null \
      | xargs -r timeout 10 scancel 2>/dev/null || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
    rm -f "$SYSTEM_CONF"
  fi
}

status() {
  local name pid missing=0
  for name in munged slurmctld slurmd; do
    if pid=$(running_pid "$name"); then
      echo "$name: running ($pid)"
    else
      echo "$name: not running"
      missing=1
    fi
  done
  [ "$missing" -eq 0 ] || return 1
  timeout 10 sinfo --Node --format='%N %P %T %c %m %G' || return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: bash slurm/local-cluster.sh start|stop|status" ;;
esac
