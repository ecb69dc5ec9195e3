"""The part of a gymnasium 1.4 MuJoCo v5 env that runs outside MuJoCo's step, for several simulations at once.

A `Physics` computes what the env's Python code computes (reset noise, observation, reward, termination) for
rows `ids` of a `mujoco.batch.Batch`, with the numpy operations the env applies: elementwise, or reductions
along a row, which numpy evaluates row by row exactly as on the env's 1-D arrays. Results are therefore
bit-identical to the env's (tests/test_batched.py). Parameters are read back from a gymnasium env made with
the job's kwargs, so they are the env's own.
"""

from __future__ import annotations

import numpy as np

# Constructor arguments that change no more than numbers the formulas read back from the env.
COMMON_KWARGS = frozenset({"frame_skip", "reset_noise_scale"})
LOCOMOTION_KWARGS = COMMON_KWARGS | {
    "forward_reward_weight", "ctrl_cost_weight", "exclude_current_positions_from_observation"}
HEALTHY_KWARGS = frozenset({"healthy_reward", "terminate_when_unhealthy", "healthy_z_range"})


class Physics:
    """One v5 task's reset noise, observation, reward and termination, for rows `ids` of the batch."""

    kwargs: frozenset[str] = frozenset()  # the env's constructor arguments these formulas honour
    persistent = False  # one MjData per simulation: needed to run mj_rnePostConstraint after a step
    normal_qvel = False  # qvel reset noise: scale * standard normal instead of uniform

    def __init__(self, env, batch) -> None:
        self.env, self.batch = env, batch
        self.frame_skip = int(env.frame_skip)
        self.dt = env.dt
        self.qpos, self.qvel = batch.bind("qpos"), batch.bind("qvel")

    def reset_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The env's reset_model draws, in its order."""
        env, scale = self.env, self.env._reset_noise_scale
        qpos = env.init_qpos + rng.uniform(low=-scale, high=scale, size=env.model.nq)
        if self.normal_qvel:
            return qpos, env.init_qvel + scale * rng.standard_normal(env.model.nv)
        return qpos, env.init_qvel + rng.uniform(low=-scale, high=scale, size=env.model.nv)

    def refresh(self, ids: np.ndarray, stepped: bool) -> None:
        """Fields gymnasium computes outside the batch's calls (none by default)."""

    def position(self, ids: np.ndarray) -> np.ndarray:
        """What the reward differentiates over a step: here the x coordinate of the root."""
        return self.qpos[ids, 0]

    def observe(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rewards, terminated) after a step from positions `before` with float32 `actions`."""
        raise NotImplementedError

    def ctrl_cost(self, actions: np.ndarray) -> np.ndarray:
        """weight * sum(action**2) in float32, as gymnasium computes it on the float32 action."""
        return self.env._ctrl_cost_weight * np.sum(np.square(actions), axis=1)
