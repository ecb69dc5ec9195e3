"""Batched lockstep episodes: K episodes of one MuJoCo task advanced by one `mujoco.batch.Batch` call per step.

A rank playing one episode at a time through gymnasium spends a third or more of each step in Python (the
env's step, observation and reward code). Here the K simulations step in one call with the GIL released,
and observations, rewards and terminations are computed for all of them at once from the batch's bound
fields, with the same numpy operations gymnasium 1.4's v5 envs apply (elementwise, or reductions along a
row, which numpy evaluates row by row exactly as on the 1-D array). Every result is bit-identical to
`es_mpi.rollout.run_episode` on `gym.make(env_id, **env_kwargs).unwrapped` (tests/test_batched.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from numbers import Real

import numpy as np

from es_mpi.core.obs_stats import accumulate, normalise
from es_mpi.envs.handover import HandoverRound, movable
from es_mpi.envs.rollout import NOISE_BLOCK, POLL_EVERY, Episode, EpisodeSpec, finish_episode
from es_mpi.policies.mlp import ACTIVATIONS, MlpPolicy

# Constructor arguments that change no more than numbers the formulas below read back from the env.
_COMMON = {"frame_skip", "reset_noise_scale"}
_LOCOMOTION = _COMMON | {"forward_reward_weight", "ctrl_cost_weight", "exclude_current_positions_from_observation"}
_HEALTHY = {"healthy_reward", "terminate_when_unhealthy", "healthy_z_range"}


class _Task:
    """One v5 task's reset noise, observation, reward and termination, for rows `ids` of the batch.

    Parameters are read back from a gymnasium env made with the job's kwargs, so they are the env's own.
    """

    kwargs: frozenset[str] = frozenset()
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


class _Planar(_Task):
    """HalfCheetah, Hopper, Walker2d: obs = qpos[1:] (or all of qpos), qvel, optionally clipped."""

    kwargs = frozenset(_LOCOMOTION)
    clip_qvel = False

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.skip = 1 if env._exclude_current_positions_from_observation else 0

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


class _HalfCheetah(_Planar):
    normal_qvel = True


class _Hopper(_Planar):
    kwargs = frozenset(_LOCOMOTION | _HEALTHY | {"healthy_state_range", "healthy_angle_range"})
    clip_qvel = True

    def healthy(self, ids: np.ndarray) -> np.ndarray:
        env = self.env
        z, angle = self.qpos[ids, 1], self.qpos[ids, 2]
        state = np.concatenate((self.qpos[ids], self.qvel[ids]), axis=1)[:, 2:]
        lo, hi = env._healthy_state_range
        ok = np.all(np.logical_and(lo < state, state < hi), axis=1)
        ok &= (env._healthy_z_range[0] < z) & (z < env._healthy_z_range[1])
        return ok & (env._healthy_angle_range[0] < angle) & (angle < env._healthy_angle_range[1])


class _Walker2d(_Planar):
    kwargs = frozenset(_LOCOMOTION | _HEALTHY | {"healthy_angle_range"})
    clip_qvel = True

    def healthy(self, ids: np.ndarray) -> np.ndarray:
        env = self.env
        z, angle = self.qpos[ids, 1], self.qpos[ids, 2]
        ok = (env._healthy_z_range[0] < z) & (z < env._healthy_z_range[1])
        return ok & (env._healthy_angle_range[0] < angle) & (angle < env._healthy_angle_range[1])


class _Swimmer(_Task):
    kwargs = frozenset(_LOCOMOTION)

    def __init__(self, env, batch) -> None:
        super().__init__(env, batch)
        self.skip = 2 if env._exclude_current_positions_from_observation else 0

    def position(self, ids: np.ndarray) -> np.ndarray:
        return self.qpos[ids, 0:2]

    def observe(self, ids: np.ndarray) -> np.ndarray:
        return np.concatenate((self.qpos[ids, self.skip :], self.qvel[ids]), axis=1)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        velocity = (self.qpos[ids, 0:2] - before) / self.dt
        forward = self.env._forward_reward_weight * velocity[:, 0]
        return forward - self.ctrl_cost(actions), np.zeros(len(ids), bool)


class _Contact(_Task):
    """Ant and Humanoid read cfrc_ext, which gymnasium computes with mj_rnePostConstraint after mj_step and
    a batch step does not: a persistent batch keeps each simulation's whole MjData, which is copied into a
    scratch MjData to run it there."""

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


class _Ant(_Contact):
    kwargs = frozenset(_LOCOMOTION | _HEALTHY | {
        "contact_cost_weight", "main_body", "contact_force_range", "include_cfrc_ext_in_observation"})
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


class _Humanoid(_Contact):
    kwargs = frozenset(_LOCOMOTION | _HEALTHY | {
        "contact_cost_weight", "contact_cost_range", "include_cinert_in_observation",
        "include_cvel_in_observation", "include_qfrc_actuator_in_observation", "include_cfrc_ext_in_observation"})

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


class _InvertedPendulum(_Task):
    kwargs = frozenset(_COMMON)

    def observe(self, ids: np.ndarray) -> np.ndarray:
        return np.concatenate((self.qpos[ids], self.qvel[ids]), axis=1)

    def reward(self, ids: np.ndarray, before: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = self.observe(ids)
        terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
        return (~terminated).astype(np.float64), terminated


class _InvertedDoublePendulum(_Task):
    """Per simulation, with gymnasium's own scalar expressions: numpy's scalar power and its array square, or
    sin on a strided column and on a contiguous row, are not guaranteed to agree to the bit."""

    kwargs = frozenset(_COMMON | {"healthy_reward"})
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


_TASKS: dict[str, type[_Task]] = {
    "HalfCheetah-v5": _HalfCheetah,
    "Hopper-v5": _Hopper,
    "Walker2d-v5": _Walker2d,
    "Swimmer-v5": _Swimmer,
    "Ant-v5": _Ant,
    "Humanoid-v5": _Humanoid,
    "InvertedPendulum-v5": _InvertedPendulum,
    "InvertedDoublePendulum-v5": _InvertedDoublePendulum,
}


def _simple(value) -> bool:
    """Numbers, flags, a body name, or a (low, high) pair of numbers: values the formulas use as they are."""
    if isinstance(value, (bool, Real, str)):
        return True
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, Real) for v in value)


def supports(env_id: str, env_kwargs: dict) -> bool:
    """Whether BatchedRunner reproduces `env_id` made with `env_kwargs`; if not, run episodes one by one."""
    task = _TASKS.get(env_id)
    return task is not None and all(k in task.kwargs and _simple(v) for k, v in env_kwargs.items())


class BatchedRunner:
    """Plays episodes `slots` at a time in one batch; a finished episode's slot takes the next one at once."""

    def __init__(self, env_id: str, env_kwargs: dict, policy: MlpPolicy, slots: int) -> None:
        if not supports(env_id, env_kwargs):
            raise ValueError(f"no batched runner for {env_id!r} with env.kwargs {env_kwargs}")
        import gymnasium as gym
        from mujoco import batch

        env = gym.make(env_id, **env_kwargs).unwrapped
        if (policy.obs_dim, policy.act_dim) != (env.observation_space.shape[0], env.action_space.shape[0]):
            raise ValueError(f"policy sizes {policy.obs_dim}->{policy.act_dim} do not fit {env_id}")
        task_type = _TASKS[env_id]
        self.batch = batch.Batch(env.model, nsim=slots, nthread=1, persistent=task_type.persistent)
        self.task = task_type(env, self.batch)
        self.policy, self.slots = policy, slots
        self.ctrl = self.batch.bind("ctrl")
        # One parameter row per slot; each layer is a (slots, n_in, n_out) view for np.matmul over all slots.
        self.theta = np.zeros((slots, policy.num_params), np.float32)
        self.layers, pos = [], 0
        for n_in, n_out in zip(policy.sizes[:-1], policy.sizes[1:]):
            w = self.theta[:, pos : pos + n_in * n_out].reshape(slots, n_in, n_out)
            pos += n_in * n_out
            self.layers.append((w, self.theta[:, None, pos : pos + n_out]))
            pos += n_out

    def act(self, obs: np.ndarray) -> np.ndarray:
        """MlpPolicy.act for every slot's parameters: the same ufuncs, with each np.dot of a slot done as a
        (1, n_in) x (n_in, n_out) product of np.matmul's stack, which numpy hands to the same BLAS gemv."""
        policy = self.policy
        x = obs[:, None, :]
        hidden = ACTIVATIONS[policy.activation]
        for w, b in self.layers[:-1]:
            x = np.matmul(x, w)
            x += b
            x = hidden(x)
        w, b = self.layers[-1]
        x = np.matmul(x, w)[:, 0, :]
        x += b[:, 0, :]
        if policy.bins is None:
            np.maximum(x, policy.low, out=x)
            return np.minimum(x, policy.high, out=x)
        scores = x.reshape(len(x), policy.act_dim, policy.bins)
        step = (policy.high - policy.low) / np.float32(policy.bins - 1)
        return policy.low + step * np.argmax(scores, axis=-1).astype(np.float32)

    def run(self, episodes: Iterable[EpisodeSpec], mean: np.ndarray | None, std: np.ndarray | None,
            poll: Callable[[], object] | None = None, limit: Callable[[], int] | None = None,
            exchange: HandoverRound | None = None) -> list[Episode]:
        """What run_episode returns for each spec, in the order they are taken; observations normalised
        unless mean is None. `episodes` is consumed lazily, one spec whenever a slot is free, so that it
        can hand out work dynamically; `poll` is called every few lockstep steps (see run_episode).
        `limit()`, if given, caps the number of episodes in flight when slots are refilled (0: no spec
        is left): near the end of a generation a rank then holds only its share of what is left, instead
        of up to `slots` episodes that other, idle ranks would have to wait for. Once no spec is left,
        the last episode in flight is handed to the gymnasium env (its state copied over), where a lone
        episode steps faster than in a batch: it is the straggler every other rank waits for.

        With an `exchange`, once no spec is left, episodes in flight beyond the last go to ranks that
        have none, of this node first (the youngest first; not those collecting statistics), and when this
        rank has none it finishes episodes others hand over; the list then holds the episodes this rank
        finished, each with its spec's task."""
        import gymnasium.utils.seeding
        import mujoco

        k_all, task, policy = self.slots, self.task, self.policy
        taken_specs: list[EpisodeSpec] = []
        results: list[Episode | None] = []
        owner = np.full(k_all, -1)  # index into taken_specs per slot, -1: idle
        steps = np.zeros(k_all, np.int64)
        caps = np.zeros(k_all, np.int64)
        totals = np.zeros(k_all)
        noise = np.zeros((k_all, NOISE_BLOCK, policy.act_dim), np.float32)
        noisy = np.zeros(k_all, bool)
        collecting = np.zeros(k_all, bool)
        seen: list[list] = [[] for _ in range(k_all)]
        obs = np.zeros((k_all, policy.obs_dim))
        queue = iter(episodes)
        exhausted = False
        given: set[int] = set()  # indices into taken_specs of episodes handed to other ranks

        def give_away(ids: np.ndarray) -> np.ndarray:
            """Hand episodes in flight to waiting ranks while more than one is left here."""
            for k in sorted(ids.tolist(), key=lambda k: steps[k]):
                spec = taken_specs[owner[k]]
                if (owner >= 0).sum() < 2:
                    break
                if not movable(spec):
                    continue
                if not exchange.give(lambda k=k: self.batch.get_data(k, task.env.data), task.env, spec, obs[k],
                                     float(totals[k]), int(steps[k]), noise[k]):
                    break
                given.add(int(owner[k]))
                owner[k] = -1
            return np.flatnonzero(owner >= 0)

        def start(free: np.ndarray) -> None:
            """Reset the slots `free` to the next specs, as env.reset(seed=...) does; with `limit`, only
            as many as keep the episodes in flight within it (at least one while none runs)."""
            nonlocal exhausted
            if limit is not None:
                active, allowed = int((owner >= 0).sum()), limit()
                exhausted |= allowed == 0
                free = free[: max(allowed - active, 0 if active else 1)]
            taken = []
            for k in free.tolist():
                spec = next(queue, None)
                while spec is not None and spec.cap <= 0:  # run_episode takes no step at all
                    taken_specs.append(spec)
                    results.append(Episode(0.0, 0, None, spec.task))
                    spec = next(queue, None)
                if spec is None:
                    exhausted = True
                    owner[k], collecting[k], noisy[k] = -1, False, False
                    continue
                taken_specs.append(spec)
                results.append(None)
                j = len(taken_specs) - 1
                owner[k], steps[k], totals[k], caps[k] = j, 0, 0.0, spec.cap
                noisy[k] = spec.noise_rng is not None and spec.noise_std > 0
                collecting[k], seen[k] = spec.collect_stats, []
                self.theta[k] = spec.theta
                taken.append(k)
            if not taken:
                return
            ids = np.array(taken)
            self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)  # mj_resetData; set_state's mj_forward follows
            for k in taken:
                rng = gymnasium.utils.seeding.np_random(taken_specs[owner[k]].env_seed)[0]
                task.qpos[k], task.qvel[k] = task.reset_state(rng)
            self.batch.forward(ids)
            task.refresh(ids, stepped=False)
            obs[ids] = task.observe(ids)

        start(np.arange(k_all))
        ids = np.flatnonzero(owner >= 0)
        lockstep = 0
        while ids.size:
            if exhausted and ids.size == 1:
                k = int(ids[0])
                spec = taken_specs[owner[k]]
                self.batch.get_data(k, task.env.data)
                results[owner[k]] = finish_episode(
                    task.env, policy, spec, obs[k].copy(), mean, std, seen[k] if collecting[k] else None, poll,
                    float(totals[k]), int(steps[k]), noise[k].copy())
                break
            if lockstep % POLL_EVERY == 0:
                if poll is not None:
                    poll()
                if exchange is not None and ids.size > 1 and exchange.wanted():
                    # Under dynamic assignment the counter tells whether tasks are left before a slot frees.
                    exhausted |= limit is not None and limit() == 0
                    if exhausted:
                        ids = give_away(ids)
                        lockstep += 1
                        continue  # one episode may be left: hand it to the gymnasium env above
            lockstep += 1
            for k in ids[noisy[ids] & (steps[ids] % NOISE_BLOCK == 0)].tolist():
                spec = taken_specs[owner[k]]
                block = spec.noise_rng.standard_normal((NOISE_BLOCK, policy.act_dim), dtype=np.float32)
                block *= np.float32(spec.noise_std)
                noise[k] = block
            for k in ids[collecting[ids]].tolist():
                seen[k].append(obs[k].copy())
            # idle slots are computed too (their last rows): one matmul per layer whatever the occupancy
            actions = self.act(obs if mean is None else normalise(obs, mean, std))[ids]
            add = noisy[ids]
            if add.any():
                actions[add] += noise[ids[add], steps[ids[add]] % NOISE_BLOCK]
            self.ctrl[ids] = actions
            before = task.position(ids)
            self.batch.step(None if ids.size == k_all else ids, nstep=task.frame_skip)
            task.refresh(ids, stepped=True)
            obs[ids] = task.observe(ids)
            rewards, terminated = task.reward(ids, before, actions)
            totals[ids] += rewards
            steps[ids] += 1
            done = ids[terminated | (steps[ids] >= caps[ids])]
            if done.size:
                for k in done.tolist():
                    stats = accumulate(np.asarray(seen[k])) if seen[k] else None
                    results[owner[k]] = Episode(float(totals[k]), int(steps[k]), stats, taken_specs[owner[k]].task)
                owner[done] = -1
                start(np.flatnonzero(owner < 0))
                ids = np.flatnonzero(owner >= 0)
        finished = [ep for j, ep in enumerate(results) if j not in given]
        if exchange is not None:
            finished += exchange.finish_received(task.env, policy, mean, std, poll)
        return finished  # type: ignore[return-value]
