"""An environment package as users write one: importing it registers its envs, whose entry points wrap
gymnasium's own. es-mpi trains on them with `env.id: "myenvs:MyPendulum-v0"` (the module is imported
first), and must step exactly what `gym.make` returns (tests/test_own_env.py; README "Your own environment").
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class Bonus(gym.RewardWrapper):
    """+100 per step: with it a do-nothing policy earns about +19,000 over 200 steps, without it about -1,000."""

    def reward(self, reward: float) -> float:
        return reward + 100.0


class Doubled(gym.ObservationWrapper):
    """Observations scaled by 2: a policy that saw the bare env's observations acts differently."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        self.observation_space = spaces.Box(2 * space.low, 2 * space.high, space.shape, space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return 2 * observation


def wrapped_pendulum(**kwargs) -> gym.Env:
    return Bonus(Doubled(PendulumEnv(**kwargs)))


def wrapped_hopper(**kwargs) -> gym.Env:
    """gymnasium's Hopper-v5 with a reward bonus: not the task the lockstep runner models."""
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    return Bonus(HopperEnv(**kwargs))


class Spaces(gym.Env):
    """A toy task with the observation and action space named by `obs` and `act`: reward 1 for each
    action component equal to the step's target (derived from the step count), episodes of 20 steps."""

    OBS = {
        "box": spaces.Box(-1.0, 1.0, (3,), np.float32),
        "dict": spaces.Dict({"goal": spaces.Box(-1.0, 1.0, (2,), np.float32), "phase": spaces.Discrete(4)}),
        "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(0.0, 1.0, (2,), np.float32))),
        "text": spaces.Text(8),
    }
    ACT = {
        "discrete": spaces.Discrete(3, start=-1),
        "multi_discrete": spaces.MultiDiscrete([2, 3]),
        "multi_binary": spaces.MultiBinary(3),
        "box": spaces.Box(-1.0, 1.0, (2,), np.float32),
        "tuple": spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))),
    }

    def __init__(self, obs: str = "box", act: str = "discrete") -> None:
        self.observation_space, self.action_space = self.OBS[obs], self.ACT[act]
        self.t = 0

    def _observe(self):
        self.observation_space.seed(self.t)
        return self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.t = int(self.np_random.integers(4))
        return self._observe(), {}

    def step(self, action):
        self.action_space.seed(self.t)
        same = np.asarray(action) == np.asarray(self.action_space.sample())
        self.t += 1
        return self._observe(), float(np.sum(same)), False, self.t >= 20, {}


gym.register("MyPendulum-v0", entry_point=wrapped_pendulum, max_episode_steps=200)
gym.register("Spaces-v0", entry_point=Spaces, max_episode_steps=50)
gym.register("MyHopper-v0", entry_point=wrapped_hopper, max_episode_steps=1000)
