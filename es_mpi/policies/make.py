"""The policy a job describes, sized for its env."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from es_mpi.policies.cnn import CnnPolicy, make_cnn_policy
from es_mpi.policies.mlp import DISCRETE, MULTI_BINARY, MULTI_DISCRETE, MlpPolicy
from es_mpi.runs.job import ConfigError

Policy = MlpPolicy | CnnPolicy


def make_policy(policy_cfg, env, ref_batch: np.ndarray | None = None, source: str = "job") -> Policy:
    """The policy the job describes, sized for `env`: an MlpPolicy for flat observations (es_mpi.envs.make
    flattens the others) and Box, Discrete, MultiDiscrete or MultiBinary actions (kind linear: one layer of
    weights, no biases); a CnnPolicy (kind cnn)
    for ALE image observations and discrete actions, which normalises with the run's reference batch
    `ref_batch` (None until it is collected)."""
    space = env.action_space
    if policy_cfg.kind == "cnn":
        if not isinstance(space, spaces.Discrete) or len(env.observation_space.shape) != 3:
            raise ConfigError(f"{source}: policy.kind cnn needs an ALE (Atari) env such as ALE/Pong-v5, whose "
                              "observations are stacked frames and whose actions are discrete")
        return make_cnn_policy(env, ref_batch)
    if len(env.observation_space.shape) != 1:
        raise ConfigError(f"{source}: policy.kind {policy_cfg.kind} needs flat observations; use policy.kind cnn "
                          "for ALE (Atari) envs")
    bins = None if policy_cfg.actions == "continuous" else int(policy_cfg.actions.split(":")[1])
    if bins and not isinstance(space, spaces.Box):
        raise ConfigError(f"{source}: policy.actions {policy_cfg.actions!r} discretises Box actions, but the "
                          f"env's actions are {type(space).__name__}; use policy.actions: continuous")
    if not isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)) or (
            len(space.shape or ()) > 1):
        raise ConfigError(f"{source}: env action space {space} is not supported; es-mpi's MLP takes a flat Box, "
                          "Discrete, MultiDiscrete or MultiBinary action space")
    linear = policy_cfg.kind == "linear"
    obs_dim = env.observation_space.shape[0]
    common = ((), policy_cfg.activation) if linear else (tuple(policy_cfg.hidden), policy_cfg.activation)
    bias = not linear
    if isinstance(space, spaces.Box):
        return MlpPolicy(obs_dim, space.shape[0], *common, np.asarray(space.low, dtype=np.float32),
                         np.asarray(space.high, dtype=np.float32), bins, bias=bias)
    if isinstance(space, spaces.Discrete):
        start = np.array([space.start], np.int64)
        return MlpPolicy(obs_dim, 1, *common, start, start + space.n - 1, kind=DISCRETE, nvec=(int(space.n),),
                         bias=bias)
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(space.start, np.int64)
        return MlpPolicy(obs_dim, len(space.nvec), *common, start, start + space.nvec - 1, kind=MULTI_DISCRETE,
                         nvec=tuple(int(n) for n in space.nvec), bias=bias)
    n = int(space.n if np.isscalar(space.n) else np.prod(space.n))
    return MlpPolicy(obs_dim, n, *common, np.zeros(n, np.int64), np.ones(n, np.int64), kind=MULTI_BINARY, bias=bias)
