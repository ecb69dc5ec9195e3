#!/usr/bin/env bash
# The runs of bench/paper_table.py (the paper's MuJoCo table) as a job array over slurm/sweep.sh: 6 tasks x
# 3 seeds, each run to its job's timestep budget with an evaluation of 3 episodes every generation, in
# $ES_MPI_RESULTS/table1-<task>-seed<seed> (default results/runs). When they are done, on any machine that
# sees those directories:  python bench/paper_table.py --collect --out "$ES_MPI_RESULTS"
#
#   cd es-mpi && sbatch slurm/paper_table.sh                  # indices 0-17
#   ES_MPI_SWEEP_SEEDS="0 1 2 3 4 5" sbatch --array=0-35 slurm/paper_table.sh
#
# Keep the job name: it is the first part of the run directories' names, which the collector reads.
# ES_MPI_SWEEP_TASKS, ES_MPI_SWEEP_SEEDS and every other setting: see slurm/sweep.sh and slurm/lib.sh.
#
#SBATCH --job-name=table1
#SBATCH --array=0-17
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=18
#SBATCH --cpus-per-task=1
#SBATCH --time=12:00:00
# Each array task checkpoints and requeues itself 5 minutes before the limit (see humanoid_1440.sh).
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail

# sbatch runs a copy of this file from its spool directory, so $0 cannot locate the repository.
root=${ES_MPI_ROOT:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}
[ -f "$root/slurm/sweep.sh" ] ||
    { echo "es-mpi-slurm: error: no slurm/sweep.sh; submit from the repository root or set ES_MPI_ROOT" >&2; exit 2; }
export ES_MPI_SWEEP_TASKS=${ES_MPI_SWEEP_TASKS:-inverted_pendulum swimmer halfcheetah inverted_double_pendulum hopper walker2d}
export ES_MPI_SWEEP_SEEDS=${ES_MPI_SWEEP_SEEDS:-0 1 2}
# bench/paper_table.py's protocol (its OVERRIDES): an evaluation of 3 episodes every generation.
exec bash "$root/slurm/sweep.sh" --set run.eval_every=1 --set run.eval_episodes=3 "$@"
