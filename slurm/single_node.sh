#!/usr/bin/env bash
# One machine, one MPI rank per core. The job file is ES_MPI_JOB (default jobs/halfcheetah.yaml).
#
#   cd es-mpi && ES_MPI_JOB=jobs/hopper.yaml sbatch slurm/single_node.sh [es-mpi train arguments...]
#   sbatch --ntasks-per-node=32 slurm/single_node.sh       # match the node's core count
#
# Submit from the repository root (or set ES_MPI_ROOT); site settings: ES_MPI_* variables (slurm/lib.sh).
#
#SBATCH --job-name=es_single_node
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=18
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
# Checkpoint and requeue 5 minutes before the limit (see humanoid_1440.sh).
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

# sbatch runs a copy of this file from its spool directory, so $0 cannot locate the repository.
# shellcheck source=SCRIPTDIR/lib.sh
. "${ES_MPI_ROOT:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/slurm/lib.sh" ||
    { echo "es-mpi-slurm: error: no slurm/lib.sh; submit from the repository root or set ES_MPI_ROOT" >&2; exit 2; }

# The run directory name comes from the job file, not the generic job name, so two jobs differ.
job=${ES_MPI_JOB:-jobs/halfcheetah.yaml}
name=$(basename "$job" .yaml)
es_mpi_run "$job" "${SLURM_JOB_NAME:-es_single_node}-$name" "$@"
