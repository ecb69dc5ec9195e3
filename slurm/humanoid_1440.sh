#!/usr/bin/env bash
# The paper's headline run: Humanoid on 1,440 cores, 80 machines x 18 cores, one MPI rank per core.
#
#   cd es-mpi && sbatch slurm/humanoid_1440.sh [es-mpi train arguments...]
#   sbatch -N1 -n2 slurm/humanoid_1440.sh --set run.generations=3     # the same script, shrunk to a test
#
# Submit from the repository root (or set ES_MPI_ROOT). Site settings (modules, Python, srun --mpi) come
# from ES_MPI_* environment variables, documented in slurm/lib.sh and docs/cluster.md; never edit them in here.
# Options on the sbatch command line override the #SBATCH lines below.
#
#SBATCH --job-name=humanoid_1440
#SBATCH --nodes=80
#SBATCH --ntasks-per-node=18
#SBATCH --cpus-per-task=1
#SBATCH --time=12:00:00
# USR1 to every rank 5 minutes before the limit: the ranks finish the generation, write checkpoint.h5 and
# exit 3, and lib.sh requeues the job. Slurm may send it up to a minute early (it checks limits coarsely).
#SBATCH --signal=USR1@300
# Allow requeueing (some sites default to JobRequeue=0); the requeued job keeps its id and output file.
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

# sbatch runs a copy of this file from its spool directory, so $0 cannot locate the repository.
# shellcheck source=SCRIPTDIR/lib.sh
. "${ES_MPI_ROOT:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/slurm/lib.sh" ||
    { echo "es-mpi-slurm: error: no slurm/lib.sh; submit from the repository root or set ES_MPI_ROOT" >&2; exit 2; }

# Run directory: $ES_MPI_RUN_DIR, else results/runs/<job name>-seed<seed> (job name: sbatch -J, default above).
es_mpi_run jobs/humanoid.yaml "${SLURM_JOB_NAME:-humanoid_1440}" "$@"
