#!/usr/bin/env bash
# Start a private single-node Slurm cluster (munged + slurmctld + slurmd) for
# tests.  Idempotent: re-running it while the daemons are up only re-checks
# them and re-prints the environment.  Must run as root (slurmd launches jobs
# as the submitting user, which requires root).
#
# Environment (all optional):
#   ES_MPI_SLURM_DIR          private dir for config/state/logs/pids   [/tmp/es-mpi-slurm]
#   ES_MPI_SLURMCTLD_PORT     slurmctld port (default Slurm port 6817) [16817]
#   ES_MPI_SLURMD_PORT        slurmd port    (default Slurm port 6818) [16818]
#   ES_MPI_SLURM_CPUS         CPUs the node declares (may exceed nproc)[8]
#   ES_MPI_SLURM_MEM_MB       RealMemory the node declares (MB)        [2000]
#   ES_MPI_SLURM_MIN_JOB_AGE  seconds a finished job stays visible in
#                             `scontrol show job` (no sacct here)      [60]
#   ES_MPI_SLURM_TIMEOUT      max seconds to wait for the node to be idle [60]
#
# On success prints `export ...` lines and writes them to $ES_MPI_SLURM_DIR/env.sh.
set -euo pipefail

DIR="${ES_MPI_SLURM_DIR:-/tmp/es-mpi-slurm}"
CTLD_PORT="${ES_MPI_SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${ES_MPI_SLURMD_PORT:-16818}"
NODE_CPUS="${ES_MPI_SLURM_CPUS:-8}"
NODE_MEM="${ES_MPI_SLURM_MEM_MB:-2000}"
MIN_JOB_AGE="${ES_MPI_SLURM_MIN_JOB_AGE:-60}"
TIMEOUT="${ES_MPI_SLURM_TIMEOUT:-60}"

ETC="$DIR/etc"
CONF="$ETC/slurm.conf"
MUNGE_DIR="$DIR/munge"
MUNGE_SOCK="$MUNGE_DIR/munge.socket"
MUNGE_KEY="$MUNGE_DIR/munge.key"
RUN="$DIR/run"
LOG="$DIR/log"

log() { echo "[start_slurm] $*" >&2; }
die() { echo "[start_slurm] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
case "$DIR" in /*) ;; *) die "ES_MPI_SLURM_DIR must be an absolute path" ;; esac

# ---------------------------------------------------------------- install --
PKGS="slurmctld slurmd slurm-client munge"
missing=""
for p in $PKGS; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    t0=$(date +%s)
    # The packages' maintainer scripts would try to start the *system*
    # munge/slurm services (with /etc config).  We run our own private
    # daemons instead, so forbid service starts during the install with a
    # temporary policy-rc.d (only if none exists; Docker images ship one).
    tmp_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        tmp_policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$tmp_policy"
        chmod 755 "$tmp_policy"
        trap 'rm -f "$tmp_policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    if [ -n "$tmp_policy" ]; then rm -f "$tmp_policy"; trap - EXIT; fi
    log "install took $(( $(date +%s) - t0 )) s"
fi

# --------------------------------------------------------------- hostname --
NODE="$(hostname -s)"
# MPICH's mpiexec (and slurmd's own node lookup) hang/fail when the short
# hostname does not resolve, so make sure it does.
if ! getent hosts "$NODE" >/dev/null 2>&1; then
    log "adding '127.0.0.1 $NODE' to /etc/hosts"
    # /etc/hosts may lack a final newline (seen in sandboxes): add one first,
    # or our entry would be glued onto the last line.
    if [ -s /etc/hosts ] && [ -n "$(tail -c 1 /etc/hosts)" ]; then echo >> /etc/hosts; fi
    echo "127.0.0.1 $NODE" >> /etc/hosts
fi

# ----------------------------------------------------------------- helpers --
# is_ours PIDFILE NAME: true if PIDFILE names a live process called NAME whose
# command line mentions our private dir (guards against PID reuse and against
# touching a system-wide daemon of the same name).
is_ours() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' < "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$DIR/"
}

# ------------------------------------------------------------ directories --
mkdir -p "$DIR" "$ETC" "$DIR/state" "$DIR/spool" "$RUN" "$LOG" "$MUNGE_DIR"
chmod 755 "$DIR" "$ETC" "$RUN" "$LOG"
chmod 700 "$DIR/state"
chmod 755 "$DIR/spool"
# munged refuses group/world-writable dirs; 0755 (not 0700) so that a
# non-root client could still reach the socket.
chown munge:munge "$MUNGE_DIR"
chmod 755 "$MUNGE_DIR"

# --------------------------------------------------------------- munge key --
if [ ! -s "$MUNGE_KEY" ]; then
    if command -v mungekey >/dev/null 2>&1; then
        mungekey -c -k "$MUNGE_KEY"
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
fi
# munged insists that the key is owned by its user and not readable by others.
chown munge:munge "$MUNGE_KEY"
chmod 600 "$MUNGE_KEY"

# ------------------------------------------------------------ slurm config --
# Write stdin to $1 only if it differs (so a re-run does not touch files the
# running daemons use); sets changed=1 if it did.  Called as a plain command,
# not in `a && b`, so that `set -e` stays in force inside.
changed=0
write_if_changed() {
    local f=$1 tmp
    tmp=$(mktemp "$f.XXXXXX")
    cat > "$tmp"
    chmod 644 "$tmp"
    if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; return 0; fi
    mv -f "$tmp" "$f"
    changed=1
}

write_if_changed "$CONF" <<CONF_EOF
# Generated by tests/cluster/start_slurm.sh -- private single-node test cluster.
ClusterName=esmpi
SlurmctldHost=$NODE(127.0.0.1)
# Non-default ports so that we never clash with a system Slurm.
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# socket=: our private munged.  cred_expire=10: a requeued job may start again
# after cred_expire+1 s instead of the default ~121 s.
AuthInfo=socket=$MUNGE_SOCK,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: linuxproc tracking and no task binding work in containers.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
# CR_CPU: memory is not a consumable resource, so jobs without --mem do not
# each grab the whole node's memory (which would serialize array tasks).
SelectTypeParameters=CR_CPU
MpiDefault=pmi2
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Let the node declare more CPUs than it physically has (oversubscription).
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=$MIN_JOB_AGE
InactiveLimit=0
Waittime=0
SchedulerType=sched/backfill
# Nothing wakes the scheduler when a requeued job's BeginTime (now+cred_expire+1)
# passes, so it would wait for the periodic passes (sched_interval=60 s,
# bf_interval=30 s): measured ~37 s requeue delay.  Run them every second.
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF_EOF

# slurmd 22.05 autodetects the cgroup version at start and refuses to run if
# /sys/fs/cgroup is not a cgroup mount (common in containers), even though
# proctrack/linuxproc + task/none never use cgroups.  Pinning the plugin
# skips the autodetection.
write_if_changed "$ETC/cgroup.conf" <<'CG_EOF'
CgroupPlugin=cgroup/v1
CG_EOF

export SLURM_CONF="$CONF"

# ------------------------------------------------------------------ munged --
if is_ours "$MUNGE_DIR/munged.pid" munged; then
    log "munged already running (pid $(cat "$MUNGE_DIR/munged.pid"))"
else
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$MUNGE_DIR/munged.pid"
    # Runs as user munge (munged drops no privileges itself and warns as root).
    runuser -u munge -- munged \
        --socket="$MUNGE_SOCK" \
        --key-file="$MUNGE_KEY" \
        --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || { tail -n 20 "$MUNGE_DIR/munged.log" >&2 || true; die "munged failed to start"; }
    log "munged started"
fi
# Check that credentials round-trip through our socket.
for _ in $(seq 1 50); do
    if munge -n -S "$MUNGE_SOCK" 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK" >/dev/null || die "munge round-trip failed"

# ----------------------------------------------------------- slurm daemons --
if [ "$changed" = 1 ] && { is_ours "$RUN/slurmctld.pid" slurmctld || is_ours "$RUN/slurmd.pid" slurmd; }; then
    log "WARNING: config changed while daemons run; run stop_slurm.sh then start_slurm.sh to apply it"
fi

if is_ours "$RUN/slurmctld.pid" slurmctld; then
    log "slurmctld already running (pid $(cat "$RUN/slurmctld.pid"))"
else
    rm -f "$RUN/slurmctld.pid"
    # Daemonizes; -f puts our dir on its command line (used by is_ours).
    slurmctld -f "$CONF" \
        || { tail -n 20 "$LOG/slurmctld.log" >&2 || true; die "slurmctld failed to start"; }
    log "slurmctld started"
fi

if is_ours "$RUN/slurmd.pid" slurmd; then
    log "slurmd already running (pid $(cat "$RUN/slurmd.pid"))"
else
    rm -f "$RUN/slurmd.pid"
    slurmd -f "$CONF" -N "$NODE" \
        || { tail -n 20 "$LOG/slurmd.log" >&2 || true; die "slurmd failed to start"; }
    log "slurmd started"
fi

# ---------------------------------------------------------- wait for idle --
t0=$(date +%s)
state=""
resumed=0
while :; do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        # A node left down/drained by a previous run (state is kept in
        # $DIR/state) is put back into service once.
        down*|drain*)
            if [ "$resumed" = 0 ] && [ $(( $(date +%s) - t0 )) -ge 3 ]; then
                log "node is '$state', resuming it"
                scontrol update NodeName="$NODE" State=RESUME || true
                resumed=1
            fi ;;
    esac
    if [ $(( $(date +%s) - t0 )) -ge "$TIMEOUT" ]; then
        tail -n 20 "$LOG/slurmctld.log" "$LOG/slurmd.log" >&2 || true
        die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-no answer}')"
    fi
    sleep 0.5
done
log "node $NODE is $state (waited $(( $(date +%s) - t0 )) s)"

# ------------------------------------------------------------- environment --
# libmunge has no socket env var; Slurm finds the private munge socket via
# AuthInfo in slurm.conf, so SLURM_CONF is all sbatch/srun/squeue need.
# ES_MPI_MUNGE_SOCKET is only for `munge -S`/`unmunge -S` by hand.
cat > "$DIR/env.sh.tmp" <<ENV_EOF
export SLURM_CONF=$CONF
export ES_MPI_SLURM_DIR=$DIR
export ES_MPI_MUNGE_SOCKET=$MUNGE_SOCK
ENV_EOF
mv -f "$DIR/env.sh.tmp" "$DIR/env.sh"
cat "$DIR/env.sh"
