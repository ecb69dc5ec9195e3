"""The policy a job describes, sized for its env."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from es_mpi.policies.cnn import CnnPolicy, make_cnn_policy
from es_mpi.policies.mlp import MlpPolicy
from es_mpi.runs.job import ConfigError

Policy = MlpPolicy | CnnPolicy


def make_policy(policy_cfg, env, ref_batch: np.ndarray | None = None, source: str = "job") -> Policy:
    """The policy the job describes, sized for `env`: an MlpPolicy for Box observations and actions, a
    CnnPolicy (kind cnn) for ALE image observations and discrete actions, which normalises with the
    run's reference batch `ref_batch` (None until it is collected)."""
    discrete = isinstance(env.action_space, spaces.Discrete)
    if policy_cfg.kind == "cnn":
        if not discrete or len(env.observation_space.shape) != 3:
            raise ConfigError(f"{source}: policy.kind cnn needs an ALE (Atari) env such as ALE/Pong-v5, whose "
                              "observations are stacked frames and whose actions are discrete")
        return make_cnn_policy(env, ref_batch)
    if discrete or len(env.observation_space.shape) != 1:
        raise ConfigError(f"{source}: policy.kind mlp needs flat observations and continuous actions; "
                          "use policy.kind cnn for ALE (Atari) envs")
    bins = None if policy_cfg.actions == "continuous" else int(policy_cfg.actions.split(":")[1])
    space = env.action_space
    return MlpPolicy(
        env.observation_space.shape[0], space.shape[0], tuple(policy_cfg.hidden), policy_cfg.activation,
        np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32), bins,
    )
