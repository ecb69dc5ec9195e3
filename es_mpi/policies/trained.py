"""A run's trained policy in users' own code: `load_policy(run_dir).act(observation)` takes the action
`es-mpi eval` takes (noiseless parameters, the checkpoint's observation statistics and clipping, argmax or
bins for discrete actions, flattening of Dict/Tuple observations)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_mpi.core.obs_stats import normalise
from es_mpi.envs.make import make_env
from es_mpi.policies.make import Policy, make_policy
from es_mpi.runs.checkpoint import CHECKPOINT, checkpoint_job, read_checkpoint
from es_mpi.runs.job import ConfigError, Job
from es_mpi.runs.state import REF_BATCH, TrainState, load_state
from es_mpi.strategies import STRATEGIES


@dataclass(frozen=True)
class TrainedPolicy:
    job: Job  # the run's job, as its checkpoint holds it
    state: TrainState  # the checkpoint's state
    policy: Policy
    theta: np.ndarray  # float32 parameters evaluation runs (the strategy's vector 0)
    mean: np.ndarray | None  # observation statistics (None: the run does not normalise)
    std: np.ndarray | None
    raw_space: object  # the observation space of gym.make's env when es-mpi flattens it, else None

    def act(self, observation) -> np.ndarray | int:
        """The action for one observation of the env `gym.make(job.env.id, **job.env.kwargs)` returns (for
        ALE runs: of `make_env()`, which holds es-mpi's Atari preprocessing)."""
        import gymnasium as gym

        x = observation if self.raw_space is None else gym.spaces.flatten(self.raw_space, observation)
        if self.mean is not None:
            x = normalise(x, self.mean, self.std)
        return self.policy.act(self._layers, x)

    def make_env(self):
        """The env as es-mpi steps it, and its episode limit (es_mpi.envs.make.make_env)."""
        return make_env(self.job.env, str(self.job.env.id))

    @property
    def _layers(self):
        return self.policy.bind(self.theta)


def load_policy(run_dir: str | Path, checkpoint: str = CHECKPOINT) -> TrainedPolicy:
    """The policy of `run_dir`'s checkpoint. Raises ConfigError for a missing or unreadable checkpoint."""
    from gymnasium.wrappers import FlattenObservation

    path = Path(run_dir) / checkpoint
    if not path.is_file():
        raise ConfigError(f"{path}: no checkpoint; give a run directory made by es-mpi train")
    saved, attrs = read_checkpoint(path)
    job = checkpoint_job(attrs, path)
    env, limit = make_env(job.env, str(path))
    policy = make_policy(job.policy, env, saved.arrays.get(REF_BATCH), str(path))
    strategy = STRATEGIES[job.strategy.kind](job, policy, limit)
    state = load_state(saved, strategy, str(path))
    mean, std = strategy.normaliser(state.strategy)
    raw = env.env.observation_space if isinstance(env, FlattenObservation) else None
    return TrainedPolicy(job, state, policy, strategy.bases(state.strategy)[0], mean, std, raw)
