"""Tasks moving in a plane, rewarded for the root's forward velocity: HalfCheetah, Hopper, Walker2d, Swimmer."""

from __future__ import annotations

import numpy as np

from es_mpi.envs.physics.base import HEALTHY_KWARGS, LOCOMOTION_KWARGS, Physics


class _Planar(Physics):
    """obs = qpos without the root's position (or all of qpos), qvel, optionally clipped."""

    kwargs = LOCOMOTION_KWARGS
    root_coordinates = 1  # the leading qpos entries exclude_current_positions_from_observation leaves out
    clip_qvel = False

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.skip = self.root_coordinates if env._exclude_current_positions_from_observation else 0

    def observe(self, ids: np.ndarray) -> np.ndarray:
        qvel = self.qvel[ids]
        if self.clip_qvel:
            qvel = np.clip(qvel, -10, 10)
        return np.concatenate((self.qpos[ids, self.skip :], qvel), axis=1)

    def healthy(self, ids: np.ndarray) -> np.ndarray | None:
        """None for a task without a healthy bonus and termination."""
        return None

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        env = self.env
        forward = env._forward_reward_weight * ((self.qpos[ids, 0] - before) / self.dt)
        healthy = self.healthy(ids)
        if healthy is None:
            return forward - self.ctrl_cost(actions), np.zeros(len(ids), bool)
        rewards = forward + healthy * env._healthy_reward
        return rewards - self.ctrl_cost(actions), ~healthy & env._terminate_when_unhealthy


class HalfCheetah(_Planar):
    normal_qvel = True


class Swimmer(_Planar):
    """gymnasium differentiates the root's (x, y) and keeps x: elementwise, the same as differentiating x."""

    root_coordinates = 2


class Walker2d(_Planar):
    kwargs = LOCOMOTION_KWARGS | HEALTHY_KWARGS | {"healthy_angle_range"}
    clip_qvel = True

    def healthy(self, ids: np.ndarray) -> np.ndarray:
        """The torso's height and angle within their ranges."""
        env = self.env
        z, angle = self.qpos[ids, 1], self.qpos[ids, 2]
        ok = (env._healthy_z_range[0] < z) & (z < env._healthy_z_range[1])
        return ok & (env._healthy_angle_range[0] < angle) & (angle < env._healthy_angle_range[1])


class Hopper(Walker2d):
    kwargs = Walker2d.kwargs | {"healthy_state_range"}

    def healthy(self, ids: np.ndarray) -> np.ndarray:
        """Walker2d's check, and every entry of the state after qpos[:2] within a range."""
        state = np.concatenate((self.qpos[ids], self.qvel[ids]), axis=1)[:, 2:]
        lo, hi = self.env._healthy_state_range
        return np.all(np.logical_and(lo < state, state < hi), axis=1) & super().healthy(ids)
