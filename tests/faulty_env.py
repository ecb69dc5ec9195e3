"""A tiny env that misbehaves on request, on one chosen MPI rank: the faults that reliability tests need.

Used as env id `faulty_env:Faulty-v0` with tests/ on PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
import numpy as np


def launcher_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


class FaultyEnv(gym.Env):
    """A point on a line rewarded for moving right; `fault` strikes at `at_step` (counted per process)."""

    def __init__(self, fault: str = "none", on_rank: int = 0, at_step: int = 50) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.fault, self.at_step = fault, at_step
        self.armed = fault != "none" and launcher_rank() == on_rank
        self.steps = 0
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.1, 0.1))
        return np.array([self.x, 1.0]), {}

    def step(self, action):
        self.steps += 1
        self.x += float(action[0]) * 0.1
        reward = self.x
        if self.armed and self.steps >= self.at_step:
            if self.fault == "raise":
                raise RuntimeError("faulty env: injected failure")
            if self.fault == "nan":
                reward = float("nan")
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "hang":
                time.sleep(3600)
        return np.array([self.x, 1.0]), reward, False, False, {}


gym.register("Faulty-v0", entry_point=FaultyEnv, max_episode_steps=100)
