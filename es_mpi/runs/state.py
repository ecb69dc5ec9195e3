"""Everything a run carries from one generation to the next; a checkpoint stores exactly this."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_mpi.core.obs_stats import ObsStats
from es_mpi.core.optimizers import OptimizerState


@dataclass(frozen=True)
class TrainState:
    generation: int  # generations completed
    timesteps: int  # training env steps spent (evaluation steps not counted)
    episodes: int  # training episodes run
    episode_cap: int  # step limit of the next generation's training episodes
    wall_s: float  # training wall time so far, summed over restarts
    theta: np.ndarray  # float32 policy parameters
    opt: OptimizerState
    obs: ObsStats
    ref_batch: np.ndarray | None = None  # cnn: the VBN reference batch (uint8 observations), fixed per run
