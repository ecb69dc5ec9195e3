"""Tasks whose reward and observation read contact forces: Ant and Humanoid.

They read cfrc_ext, which gymnasium computes with mj_rnePostConstraint after mj_step and a batch step does
not: a persistent batch keeps each simulation's whole MjData, which is copied into a scratch MjData to run it
there.
"""

from __future__ import annotations

import numpy as np

from es_mpi.envs.physics.base import HEALTHY_KWARGS, LOCOMOTION_KWARGS, Physics


class _Contact(Physics):
    persistent = True

    def __init__(self, env, batch) -> None:
        import mujoco

        super().__init__(env, batch)
        self.mujoco = mujoco
        self.scratch = mujoco.MjData(batch.model)
        self.cfrc_ext = np.zeros((batch.nsim, *self.scratch.cfrc_ext.shape))
        self.skip = 2 if env._exclude_current_positions_from_observation else 0

    def refresh(self, ids: np.ndarray, stepped: bool) -> None:
        # after a reset gymnasium runs mj_forward only, which leaves cfrc_ext as mj_resetData set it
        for sim in ids.tolist():
            self.batch.get_data(sim, self.scratch)
            if stepped:
                self.mujoco.mj_rnePostConstraint(self.batch.model, self.scratch)
            self.cfrc_ext[sim] = self.scratch.cfrc_ext


class Ant(_Contact):
    kwargs = LOCOMOTION_KWARGS | HEALTHY_KWARGS | {
        "contact_cost_weight", "main_body", "contact_force_range", "include_cfrc_ext_in_observation"}
    normal_qvel = True

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.xpos = batch.bind("xpos")
        self.body = env.model.body(env._main_body).id

    def position(self, ids: np.ndarray) -> np.ndarray:
        return self.xpos[ids, self.body, :2]

    def contact_forces(self, ids: np.ndarray) -> np.ndarray:
        return np.clip(self.cfrc_ext[ids], *self.env._contact_force_range)

    def observe(self, ids: np.ndarray) -> np.ndarray:
        parts = [self.qpos[ids, self.skip :], self.qvel[ids]]
        if self.env._include_cfrc_ext_in_observation:
            parts.append(self.contact_forces(ids)[:, 1:].reshape(len(ids), -1))
        return np.concatenate(parts, axis=1)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        env = self.env
        forward = ((self.xpos[ids, self.body, :2] - before) / self.dt)[:, 0] * env._forward_reward_weight
        state = np.concatenate((self.qpos[ids], self.qvel[ids]), axis=1)
        z = state[:, 2]
        lo, hi = env._healthy_z_range
        healthy = np.isfinite(state).all(axis=1) & (lo <= z) & (z <= hi)
        rewards = forward + healthy * env._healthy_reward
        contact = env._contact_cost_weight * np.sum(np.square(self.contact_forces(ids)), axis=(1, 2))
        return rewards - (self.ctrl_cost(actions) + contact), ~healthy & env._terminate_when_unhealthy


class Humanoid(_Contact):
    kwargs = LOCOMOTION_KWARGS | HEALTHY_KWARGS | {
        "contact_cost_weight", "contact_cost_range", "include_cinert_in_observation",
        "include_cvel_in_observation", "include_qfrc_actuator_in_observation", "include_cfrc_ext_in_observation"}

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.ctrl, self.xipos = batch.bind("ctrl"), batch.bind("xipos")
        self.cinert, self.cvel = batch.bind("cinert"), batch.bind("cvel")
        self.qfrc_actuator = batch.bind("qfrc_actuator")
        self.mass = env.model.body_mass
        self.total_mass = env.model.body_mass.sum()

    def position(self, ids: np.ndarray) -> np.ndarray:
        """gymnasium's mass_center, for several simulations in one einsum."""
        return (np.einsum("b,kbj->kj", self.mass, self.xipos[ids]) / self.total_mass)[:, 0:2]

    def observe(self, ids: np.ndarray) -> np.ndarray:
        env, n = self.env, len(ids)
        parts = [self.qpos[ids, self.skip :], self.qvel[ids]]
        if env._include_cinert_in_observation is True:
            parts.append(self.cinert[ids, 1:].reshape(n, -1))
        if env._include_cvel_in_observation is True:
            parts.append(self.cvel[ids, 1:].reshape(n, -1))
        if env._include_qfrc_actuator_in_observation is True:
            parts.append(self.qfrc_actuator[ids, 6:])
        if env._include_cfrc_ext_in_observation is True:
            parts.append(self.cfrc_ext[ids, 1:].reshape(n, -1))
        return np.concatenate(parts, axis=1)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        env = self.env
        forward = env._forward_reward_weight * ((self.position(ids) - before) / self.dt)[:, 0]
        z = self.qpos[ids, 2]
        lo, hi = env._healthy_z_range
        healthy = (lo < z) & (z < hi)
        rewards = forward + healthy * env._healthy_reward
        ctrl = env._ctrl_cost_weight * np.sum(np.square(self.ctrl[ids]), axis=1)  # data.ctrl, float64
        contact = env._contact_cost_weight * np.sum(np.square(self.cfrc_ext[ids]), axis=(1, 2))
        contact = np.clip(contact, *env._contact_cost_range)
        return rewards - (ctrl + contact), ~healthy & env._terminate_when_unhealthy
