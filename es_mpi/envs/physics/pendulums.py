"""Tasks that balance a pole on a cart: InvertedPendulum and InvertedDoublePendulum."""

from __future__ import annotations

import numpy as np

from es_mpi.envs.physics.base import COMMON_KWARGS, Physics


class InvertedPendulum(Physics):
    kwargs = COMMON_KWARGS

    def observe(self, ids: np.ndarray) -> np.ndarray:
        return np.concatenate((self.qpos[ids], self.qvel[ids]), axis=1)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = self.observe(ids)
        terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
        return (~terminated).astype(np.float64), terminated


class InvertedDoublePendulum(Physics):
    """Per simulation, with gymnasium's own scalar expressions: numpy's scalar power and its array square, or
    sin on a strided column and on a contiguous row, are not guaranteed to agree to the bit."""

    kwargs = COMMON_KWARGS | {"healthy_reward"}
    normal_qvel = True

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.site_xpos, self.qfrc_constraint = batch.bind("site_xpos"), batch.bind("qfrc_constraint")

    def observe(self, ids: np.ndarray) -> np.ndarray:
        rows = []
        for i in ids.tolist():
            qpos, qvel = self.qpos[i], self.qvel[i]
            rows.append(np.concatenate([
                qpos[:1], np.sin(qpos[1:]), np.cos(qpos[1:]), np.clip(qvel, -10, 10),
                np.clip(self.qfrc_constraint[i], -10, 10)[:1],
            ]))
        return np.array(rows)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rewards, terminated = [], []
        for i in ids.tolist():
            x, _, y = self.site_xpos[i, 0]
            v1, v2 = self.qvel[i, 1:3]
            done = bool(y <= 1)
            dist_penalty = 0.01 * x**2 + (y - 2) ** 2
            vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
            rewards.append(self.env._healthy_reward * int(not done) - dist_penalty - vel_penalty)
            terminated.append(done)
        return np.array(rewards, np.float64), np.array(terminated)
