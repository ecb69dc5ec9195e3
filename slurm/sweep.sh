#!/usr/bin/env bash
# A job array over tasks x seeds: array index i runs task TASKS[i / #SEEDS] with seed SEEDS[i % #SEEDS],
# in its own run directory $ES_MPI_RESULTS/<job name>-<task>-seed<seed>.
#
#   cd es-mpi && sbatch slurm/sweep.sh                    # 8 tasks x 6 seeds = indices 0-47
#   ES_MPI_SWEEP_TASKS="hopper walker2d" ES_MPI_SWEEP_SEEDS="0 1 2" sbatch --array=0-5 slurm/sweep.sh
#
# ES_MPI_SWEEP_TASKS  job names (jobs/<name>.yaml) or job file paths, space-separated
# ES_MPI_SWEEP_SEEDS  run seeds, space-separated
# --array must be 0..(#tasks x #seeds - 1); an index outside the list fails with status 2.
# Do not pass --set run.seed or --run-dir after the script name, nor ES_MPI_RUN_DIR: every index would
# share one run. Submit from the repository root (or set ES_MPI_ROOT); other settings: slurm/lib.sh.
#
#SBATCH --job-name=sweep
#SBATCH --array=0-47
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=18
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
# Each array task checkpoints and requeues itself 5 minutes before the limit (see humanoid_1440.sh).
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
# %A array job id, %a index: one output file per index, kept across requeues.
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail

# sbatch runs a copy of this file from its spool directory, so $0 cannot locate the repository.
# shellcheck source=SCRIPTDIR/lib.sh
. "${ES_MPI_ROOT:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/slurm/lib.sh" ||
    { echo "es-mpi-slurm: error: no slurm/lib.sh; submit from the repository root or set ES_MPI_ROOT" >&2; exit 2; }

read -r -a tasks <<< "${ES_MPI_SWEEP_TASKS:-humanoid halfcheetah hopper walker2d ant swimmer inverted_pendulum inverted_double_pendulum}"
read -r -a seeds <<< "${ES_MPI_SWEEP_SEEDS:-0 1 2 3 4 5}"
[ -z "${ES_MPI_RUN_DIR:-}" ] || es_mpi_die "sweep.sh: unset ES_MPI_RUN_DIR (every index would share it); use ES_MPI_RESULTS"
if [ "${#tasks[@]}" -eq 0 ] || [ "${#seeds[@]}" -eq 0 ]; then
    es_mpi_die "sweep.sh: ES_MPI_SWEEP_TASKS and ES_MPI_SWEEP_SEEDS must not be empty"
fi
index=${SLURM_ARRAY_TASK_ID:-}
[ -n "$index" ] || es_mpi_die "sweep.sh: not an array task; submit with sbatch (the script sets --array)"
count=$(( ${#tasks[@]} * ${#seeds[@]} ))
[ "$index" -lt "$count" ] || es_mpi_die "sweep.sh: array index $index, but ${#tasks[@]} tasks x ${#seeds[@]} seeds" \
    "give indices 0-$((count - 1)) (sbatch --array=0-$((count - 1)))"
task=${tasks[index / ${#seeds[@]}]}
seed=${seeds[index % ${#seeds[@]}]}
case $task in
    */*|*.yaml) job=$task ;;
    *) job=jobs/$task.yaml ;;
esac
# ES_MPI_JOB would put one job file on every index.
unset ES_MPI_JOB
# The seed goes into the run directory name through lib.sh (it reads run.seed after the overrides).
es_mpi_run "$job" "${SLURM_JOB_NAME:-sweep}-$(basename "$task" .yaml)" --set "run.seed=$seed" "$@"
