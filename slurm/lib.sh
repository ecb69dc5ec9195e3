# shellcheck shell=bash
# Shared logic of the es-mpi Slurm job scripts (slurm/*.sh). Sourced, never run.
#
# A job script sets its #SBATCH header, sources this file and calls
#   es_mpi_run JOB_FILE RUN_NAME [es-mpi train arguments...]
# which sets up the site environment, works out the run directory, launches
# `srun python -m es_mpi train JOB_FILE --run-dir DIR --resume auto ARGS...`,
# requeues the job when es-mpi stopped for a signal (exit status 3), never after
# a storage fault (4), and exits with es-mpi's status.
#
# Everything site-specific comes from environment variables, set at submit time
# (sbatch passes the submitting shell's environment to the job by default):
#
#   ES_MPI_ROOT         repository checkout; default $SLURM_SUBMIT_DIR, i.e. submit from the repo root
#   ES_MPI_MODULES      space-separated modules to `module load` first, e.g. "gcc/12 openmpi/4.1"  [none]
#   ES_MPI_SETUP        a bash file to source after the modules (conda activation, site quirks)    [none]
#   ES_MPI_PYTHON       the Python interpreter that has es_mpi and mpi4py installed
#   ES_MPI_VENV         ... or a virtualenv holding them (uses $ES_MPI_VENV/bin/python)
#                       default: $ES_MPI_ROOT/.venv (made by `make setup`), else python3 on PATH
#   ES_MPI_SRUN_MPI     srun's --mpi plugin; empty = leave srun's/the site's default             [pmi2]
#   ES_MPI_SRUN_ARGS    extra srun arguments, split on spaces, e.g. "--cpu-bind=cores"          [none]
#   ES_MPI_JOB          job file, overriding the script's own default
#   ES_MPI_RUN_DIR      run directory, used as is
#   ES_MPI_RESULTS      parent of the default run directory $ES_MPI_RESULTS/<job name>-seed<seed>
#                                                                                    [results/runs]
#   ES_MPI_REQUEUE      1: requeue the job when es-mpi exits 3 after a signal; 0: never          [1]
#   ES_MPI_MAX_RESTARTS do not requeue a job that was already restarted this often               [100]
#   ES_MPI_DRY_RUN      1: print what would run and exit 0 (works outside Slurm too)             [0]
#
# Relative paths (job file, ES_MPI_RUN_DIR, ES_MPI_RESULTS) are relative to ES_MPI_ROOT.

# The checkout this file belongs to (the scripts found it through ES_MPI_ROOT or the submit directory).
ES_MPI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Messages go to stderr, which the #SBATCH --output pattern sends to the same file as stdout.
es_mpi_log() { echo "es-mpi-slurm: $*" >&2; }
# Exit status 2 is es-mpi's "bad input": nothing ran, fix the setting and resubmit.
es_mpi_die() { echo "es-mpi-slurm: error: $*" >&2; exit 2; }

# Module systems are optional and their init scripts are often not `set -u` clean.
es_mpi_load_modules() {
    [ -n "${ES_MPI_MODULES:-}" ] || return 0
    set +u
    if ! type module >/dev/null 2>&1; then
        # Batch shells are not login shells: the `module` function may be missing.
        local init
        for init in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh /usr/share/lmod/lmod/init/bash \
                    /usr/share/Modules/init/bash; do
            # shellcheck disable=SC1090
            if [ -f "$init" ]; then . "$init"; break; fi
        done
    fi
    type module >/dev/null 2>&1 || { set -u; es_mpi_die "ES_MPI_MODULES is set but there is no 'module' command"; }
    # Word splitting is wanted: ES_MPI_MODULES is a list.
    # shellcheck disable=SC2086
    module load $ES_MPI_MODULES || { set -u; es_mpi_die "module load $ES_MPI_MODULES failed"; }
    set -u
}

es_mpi_find_python() {
    if [ -n "${ES_MPI_PYTHON:-}" ]; then
        ES_MPI_PY=$ES_MPI_PYTHON
    elif [ -n "${ES_MPI_VENV:-}" ]; then
        ES_MPI_PY=$ES_MPI_VENV/bin/python
    elif [ -x "$ES_MPI_ROOT/.venv/bin/python" ]; then
        ES_MPI_PY=$ES_MPI_ROOT/.venv/bin/python
    else
        ES_MPI_PY=$(command -v python3 || true)
    fi
    if [ -z "$ES_MPI_PY" ] || [ ! -x "$ES_MPI_PY" ]; then
        es_mpi_die "no Python interpreter '${ES_MPI_PY:-python3}'; set ES_MPI_PYTHON or ES_MPI_VENV"
    fi
    # Absolute, so that every task on every node runs the same interpreter whatever its cwd.
    case "$ES_MPI_PY" in /*) ;; *) ES_MPI_PY="$(cd "$(dirname "$ES_MPI_PY")" && pwd)/$(basename "$ES_MPI_PY")" ;; esac
    # The venv's bin first on PATH, as activation would do (its scripts, its mpiexec if any).
    PATH="$(dirname "$ES_MPI_PY"):$PATH"
    export PATH
    # find_spec does not import mpi4py.MPI: no MPI initialisation in the batch shell.
    "$ES_MPI_PY" -c 'import importlib.util as u, es_mpi, sys; sys.exit(u.find_spec("mpi4py") is None)' 2>/dev/null \
        || es_mpi_die "$ES_MPI_PY cannot import es_mpi and mpi4py; set ES_MPI_PYTHON or ES_MPI_VENV" \
                      "(docs/cluster.md)"
}

# Prints "<seed><TAB><--run-dir given in ARGS, or nothing>" for `es-mpi train ARGS`, validating the job
# exactly as es-mpi will (same loader, same --set overrides), so a bad job fails here, before srun.
es_mpi_job_seed() {
    "$ES_MPI_PY" - "$@" <<'PY'
import argparse
import sys

from es_mpi.runs.job import ConfigError, load_job

p = argparse.ArgumentParser(add_help=False)
p.add_argument("job")
p.add_argument("--set", dest="overrides", action="append", default=[])
p.add_argument("--run-dir", default="")
p.add_argument("--resume")
args, _ = p.parse_known_args(sys.argv[1:])
try:
    job = load_job(args.job, args.overrides)
except ConfigError as exc:
    print(f"es-mpi: error: {exc}", file=sys.stderr)
    sys.exit(2)
print(f"{job.run.seed}\t{args.run_dir}")
PY
}

# The batch shell must survive signals meant for the ranks, and must know whether Slurm itself is ending
# the job. Slurm sends SIGTERM to the batch shell (and the tasks) on scancel, at the time limit and on
# preemption: in all three Slurm decides what happens next (cancel, timeout, or its own requeue), so the
# script must not requeue. Traps run only after the foreground srun returns, which is what we want: the
# shell keeps waiting for the ranks to write their checkpoint.
es_mpi_trap_signals() {
    ES_MPI_GOT_TERM=0
    trap 'ES_MPI_GOT_TERM=1' TERM
    # `--signal=B:USR1@N` or `scancel --full -s USR1` would otherwise kill the shell (default action).
    # The ranks do not see a signal sent only to the batch shell: use --signal=USR1@N (no B:).
    trap 'es_mpi_log "the batch shell got SIGUSR1; only the ranks act on it (use --signal=USR1@N, not B:)"' USR1
    # A handler, not '' (ignore), which srun would inherit.
    trap ':' INT
}

es_mpi_run() {
    local job=${ES_MPI_JOB:-$1} name=$2
    shift 2
    cd "$ES_MPI_ROOT" || es_mpi_die "cannot cd to ES_MPI_ROOT=$ES_MPI_ROOT"
    ES_MPI_ROOT=$PWD
    export ES_MPI_ROOT
    [ -f "$job" ] || es_mpi_die "job file $job not found in $ES_MPI_ROOT; set ES_MPI_JOB or add the file"

    es_mpi_load_modules
    if [ -n "${ES_MPI_SETUP:-}" ]; then
        [ -f "$ES_MPI_SETUP" ] || es_mpi_die "ES_MPI_SETUP=$ES_MPI_SETUP is not a file"
        set +u
        # shellcheck disable=SC1090
        . "$ES_MPI_SETUP"
        set -u
    fi
    es_mpi_find_python

    local info seed given run_dir
    info=$(es_mpi_job_seed "$job" "$@") || exit 2
    seed=${info%%$'\t'*}
    given=${info#*$'\t'}
    # Slurm job names may hold anything; keep the directory name to one path component.
    name=${name//[^A-Za-z0-9._+-]/_}
    if [ -n "$given" ]; then
        run_dir=$given  # an explicit --run-dir after the script name wins, as it does for es-mpi
    elif [ -n "${ES_MPI_RUN_DIR:-}" ]; then
        run_dir=$ES_MPI_RUN_DIR
    else
        # Stable across requeues (no job id, no date): the restarted job finds its own checkpoint.
        run_dir=${ES_MPI_RESULTS:-results/runs}/$name-seed$seed
    fi

    local -a srun_cmd=(srun)
    local mpi=${ES_MPI_SRUN_MPI-pmi2}
    [ -z "$mpi" ] || srun_cmd+=("--mpi=$mpi")
    local -a extra=()
    # Word splitting is wanted: ES_MPI_SRUN_ARGS is a list of options.
    # shellcheck disable=SC2206
    [ -z "${ES_MPI_SRUN_ARGS:-}" ] || extra=($ES_MPI_SRUN_ARGS)
    # ${a[@]+"${a[@]}"}: empty arrays are "unbound" under set -u in bash < 4.4 (still on some clusters).
    srun_cmd+=(${extra[@]+"${extra[@]}"} "$ES_MPI_PY" -m es_mpi train "$job" --run-dir "$run_dir" --resume auto)

    es_mpi_log "job ${SLURM_JOB_ID:-(none)} '${SLURM_JOB_NAME:-}' restart ${SLURM_RESTART_COUNT:-0}," \
        "${SLURM_NTASKS:-?} tasks on ${SLURM_JOB_NUM_NODES:-?} node(s), $(date '+%Y-%m-%d %H:%M:%S')"
    es_mpi_log "run dir $run_dir (in $ES_MPI_ROOT)"
    es_mpi_log "${srun_cmd[*]} $*"
    if [ "${ES_MPI_DRY_RUN:-0}" = 1 ]; then
        exit 0
    fi
    [ -n "${SLURM_JOB_ID:-}" ] || es_mpi_die "not inside a Slurm job: submit with sbatch (or set ES_MPI_DRY_RUN=1)"

    es_mpi_trap_signals
    local status=0
    "${srun_cmd[@]}" "$@" || status=$?
    es_mpi_finish "$status"
}

# Exit with es-mpi's status; on 3 (stopped by a signal, checkpoint written) requeue first when that is
# what the signal meant.
es_mpi_finish() {
    local status=$1 restarts=${SLURM_RESTART_COUNT:-0} max=${ES_MPI_MAX_RESTARTS:-100}
    case $status in
        0) es_mpi_log "es-mpi finished (status 0)"; exit 0 ;;
        3) ;;
        2) es_mpi_log "es-mpi refused its input (status 2); fix it and resubmit"; exit 2 ;;
        # A full disk, a quota, a read-only or vanished run directory does not fix itself: a requeue would
        # fail the same way. The run is intact up to its last checkpoint (es-mpi's error line names it).
        4) es_mpi_log "es-mpi stopped on a storage fault (status 4): not requeueing; fix the run directory" \
               "as its error line says, then resubmit to continue from the last checkpoint"; exit 4 ;;
        *) es_mpi_log "es-mpi failed (status $status); not requeueing"; exit "$status" ;;
    esac
    if [ "$ES_MPI_GOT_TERM" = 1 ]; then
        es_mpi_log "es-mpi stopped with a checkpoint (status 3) while Slurm was ending the job" \
            "(scancel, time limit or preemption): requeue is left to Slurm; resubmit to continue"
    elif [ "${ES_MPI_REQUEUE:-1}" != 1 ]; then
        es_mpi_log "es-mpi stopped with a checkpoint (status 3); ES_MPI_REQUEUE=${ES_MPI_REQUEUE}: not requeueing"
    elif [ "$restarts" -ge "$max" ]; then
        es_mpi_log "es-mpi stopped with a checkpoint (status 3); already restarted $restarts times" \
            "(ES_MPI_MAX_RESTARTS=$max): not requeueing"
    elif scontrol requeue "$SLURM_JOB_ID"; then
        # Slurm now ends this run of the job (SIGTERM to this shell, trapped) and queues it again with
        # the same id and output file; the next run resumes from the checkpoint.
        es_mpi_log "es-mpi stopped with a checkpoint (status 3): requeued job $SLURM_JOB_ID" \
            "(restart $((restarts + 1))); it resumes from the checkpoint"
    else
        es_mpi_log "es-mpi stopped with a checkpoint (status 3); 'scontrol requeue' failed" \
            "(submit with --requeue?); resubmit to continue"
    fi
    exit 3
}
