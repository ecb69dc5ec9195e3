"""es-mpi: MPI-native Evolution Strategies. The package's public API for users' own code is
`load_policy(run_dir)` (es_mpi.policies.trained); everything else is reached through `es-mpi` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from es_mpi.policies.trained import TrainedPolicy


def load_policy(run_dir, checkpoint: str = "checkpoint.h5") -> TrainedPolicy:
    """A run's trained policy: `.act(observation)` takes the action `es-mpi eval` takes. Imported on first
    use, so that `import es_mpi` stays light."""
    from es_mpi.policies.trained import load_policy as load

    return load(run_dir, checkpoint)
