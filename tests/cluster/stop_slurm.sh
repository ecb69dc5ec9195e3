#!/usr/bin/env bash
# Stop the private Slurm cluster started by start_slurm.sh: only the processes
# named in its pid files (slurmd, slurmctld, munged) and only if they still
# are the processes we started (name + our dir on their command line), so a
# system-wide Slurm/munge or a recycled PID is never touched.
#
# Environment: ES_MPI_SLURM_DIR   [/tmp/es-mpi-slurm]
#              ES_MPI_SLURM_KEEP_JOBS=1  do not scancel the cluster's jobs first
set -euo pipefail

DIR="${ES_MPI_SLURM_DIR:-/tmp/es-mpi-slurm}"
CONF="$DIR/etc/slurm.conf"

log() { echo "[stop_slurm] $*" >&2; }

# Same check as in start_slurm.sh; prints the pid when it is ours.
our_pid() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' < "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$DIR/" || return 1
    echo "$pid"
}

# 1. Cancel the jobs of *this* cluster while slurmctld/munged still answer.
#    Stopping slurmd does not end running job steps (slurmstepd lives on), so
#    without this, test jobs would keep running as orphans.
if [ "${ES_MPI_SLURM_KEEP_JOBS:-0}" != 1 ] && [ -f "$CONF" ] \
   && our_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
    export SLURM_CONF="$CONF"
    jobs=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        # Wait (bounded: KillWait=5) until the jobs have left the node.
        for _ in $(seq 1 40); do
            [ -z "$(squeue -h -t all -o '%A %T' 2>/dev/null | grep -vE 'CANCELLED|COMPLETED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE' || true)" ] && break
            sleep 0.5
        done
    fi
fi

# Alive = exists and is not a zombie (our daemons are reparented to PID 1,
# which in containers may not reap them promptly).
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# 2. Stop the daemons: slurmd first (it talks to slurmctld on shutdown),
#    munged last (both Slurm daemons need it until they exit).
stop_one() {
    local pidfile=$1 name=$2 pid
    if ! pid=$(our_pid "$pidfile" "$name"); then
        log "$name: not running (no live pid from $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # slurmctld saves its state on SIGTERM, which can take a few seconds.
    for _ in $(seq 1 60); do
        alive "$pid" || break
        sleep 0.25
    done
    if alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.25; done
    fi
    if alive "$pid"; then
        log "ERROR: $name (pid $pid) is still alive"
        return 1
    fi
    rm -f "$pidfile"
}

rc=0
stop_one "$DIR/run/slurmd.pid"      slurmd    || rc=1
stop_one "$DIR/run/slurmctld.pid"   slurmctld || rc=1
stop_one "$DIR/munge/munged.pid"    munged    || rc=1
exit $rc
