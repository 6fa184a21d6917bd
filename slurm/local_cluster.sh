#!/usr/bin/env bash
# A one-machine Slurm cluster (munged + slurmctld + slurmd, this host as its only node, no GPUs),
# so that slurm/*.sbatch run under a real scheduler on a laptop or in CI (tests/slurm).
#
#   slurm/local_cluster.sh start     # idempotent; waits (bounded) until the node is idle
#   slurm/local_cluster.sh status
#   slurm/local_cluster.sh stop      # stops only the daemons this script started (by pid)
#   export SLURM_CONF=$(slurm/local_cluster.sh conf)   # what sbatch/srun/squeue need
#
# Everything lives in THINKRM_SLURM_DIR (default /tmp/thinkrm-slurm): slurm.conf, its own munge
# key and socket, state, spool, logs and pid files; nothing under /etc is touched. Runs as the
# current user (root on CI machines). Needs Debian's slurm-wlm and munge
# (apt-get update && apt-get install -y slurm-wlm munge).
set -euo pipefail

DIR=${THINKRM_SLURM_DIR:-/tmp/thinkrm-slurm}
CPUS=${THINKRM_SLURM_CPUS:-$(nproc)}
CTLD_PORT=${THINKRM_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${THINKRM_SLURM_SLURMD_PORT:-6818}
WAIT_S=${THINKRM_SLURM_WAIT_S:-60}
FAKE_GPUS=${THINKRM_SLURM_FAKE_GPUS:-0}   # >0: the node declares that many GPUs (GRES) backed by dummy files
NODE=$(hostname -s)
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

die() { echo "local_cluster: $*" >&2; exit 1; }

need_packages() {
  local missing=()
  for exe in munged mungekey slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$exe" > /dev/null 2>&1 || [ -x "/usr/sbin/$exe" ] || missing+=("$exe")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: apt-get update && apt-get install -y slurm-wlm munge"
}

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2> /dev/null; }

write_conf() {
  local mem_mb gres="" gres_types="" i
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$DIR"/{state,spool,munge,log}
  chmod 700 "$DIR/munge"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    # GPU GRES without GPUs: Slurm schedules and binds them (CUDA_VISIBLE_DEVICES per step) by these files
    mkdir -p "$DIR/dev"; echo "AutoDetect=off" > "$DIR/gres.conf"
    for ((i = 0; i < FAKE_GPUS; i++)); do
      [ -e "$DIR/dev/nvidia$i" ] || mknod "$DIR/dev/nvidia$i" c 1 3 2> /dev/null || : > "$DIR/dev/nvidia$i"
      echo "NodeName=$NODE Name=gpu File=$DIR/dev/nvidia$i" >> "$DIR/gres.conf"
    done
    gres=" Gres=gpu:$FAKE_GPUS"; gres_types="GresTypes=gpu"
  fi
  cat > "$CONF" << EOF
# written by slurm/local_cluster.sh: one node, no GPUs, no cgroups, no accounting
ClusterName=thinkrm-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
SlurmdParameters=config_overrides
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN$gres
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  alive munged && return
  [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" 2> /dev/null \
    || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$DIR/munge/munge.key"
  # --force: the socket lives under /tmp (world-writable), which munged calls insecure
  /usr/sbin/munged --force --socket="$DIR/munge/munge.socket.2" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || die "munged did not start; see $DIR/log/munged.log"
}

node_state() { sinfo -h -n "$NODE" -o %T 2> /dev/null | head -n 1 || true; }

start() {
  need_packages
  if alive slurmctld && alive slurmd && [ "$(node_state)" = idle ]; then
    echo "local_cluster: already running ($CONF)"; return
  fi
  local port
  for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if ! alive slurmctld && (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
      die "port $port is taken (another Slurm? set THINKRM_SLURM_CTLD_PORT / THINKRM_SLURM_SLURMD_PORT)"
    fi
  done
  write_conf
  start_munge
  alive slurmctld || /usr/sbin/slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
  alive slurmd || /usr/sbin/slurmd -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
  local t0=$SECONDS state=""
  while [ $((SECONDS - t0)) -lt "$WAIT_S" ]; do
    state=$(node_state)
    case "$state" in
      idle|mixed|allocated) echo "local_cluster: node $NODE $state, $CPUS CPUs (SLURM_CONF=$CONF)"; return ;;
      down*|drain*) scontrol update nodename="$NODE" state=resume > /dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node $NODE not idle after ${WAIT_S}s (state: ${state:-none}); see $DIR/log/"
}

stop() {
  local name pid
  for name in slurmd slurmctld munged; do
    if alive "$name"; then
      pid=$(cat "$DIR/$name.pid")
      kill "$pid" 2> /dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2> /dev/null && kill -9 "$pid" 2> /dev/null || true
    fi
    rm -f "$DIR/$name.pid"
  done
  echo "local_cluster: stopped"
}

status() {
  local name
  for name in munged slurmctld slurmd; do
    if alive "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
  done
  alive slurmctld && sinfo -N 2> /dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  conf) echo "$CONF" ;;
  *) die "usage: $0 start|stop|status|conf" ;;
esac
