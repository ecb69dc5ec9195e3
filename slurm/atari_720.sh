#!/usr/bin/env bash
# Atari (Pong) at the paper's 720 cores: 40 machines x 18 cores, one MPI rank per core.
# 720 cores for about an hour per game, as in the paper; jobs/pong.yaml unless ES_MPI_JOB names another.
#
#   cd es-mpi && sbatch slurm/atari_720.sh [es-mpi train arguments...]
#
# Submit from the repository root (or set ES_MPI_ROOT); site settings: ES_MPI_* variables (slurm/lib.sh).
#
#SBATCH --job-name=atari_720
#SBATCH --nodes=40
#SBATCH --ntasks-per-node=18
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
# Atari generations are longer than MuJoCo ones: 10 minutes of warning (see humanoid_1440.sh).
#SBATCH --signal=USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

# sbatch runs a copy of this file from its spool directory, so $0 cannot locate the repository.
# shellcheck source=SCRIPTDIR/lib.sh
. "${ES_MPI_ROOT:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/slurm/lib.sh" ||
    { echo "es-mpi-slurm: error: no slurm/lib.sh; submit from the repository root or set ES_MPI_ROOT" >&2; exit 2; }

# es_mpi_run refuses a missing job file with a clear message (status 2) before anything starts. The game's
# job name is in the default run directory (results/runs/atari_720-pong-seed0), so two games never share one.
job=${ES_MPI_JOB:-jobs/pong.yaml}
es_mpi_run "$job" "${SLURM_JOB_NAME:-atari_720}-$(basename "$job" .yaml)" "$@"
