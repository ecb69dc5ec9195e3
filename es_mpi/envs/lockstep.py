"""Batched lockstep episodes: K episodes of one MuJoCo task advanced by one `mujoco.batch.Batch` call per step.

A rank playing one episode at a time through gymnasium spends a third or more of each step in Python (the
env's step, observation and reward code). Here the K simulations step in one call with the GIL released,
and observations, rewards and terminations are computed for all of them at once (es_mpi.envs.physics).
Every result is bit-identical to `es_mpi.envs.rollout.run_episode` on `gym.make(env_id, **env_kwargs).unwrapped`
(tests/test_batched.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from es_mpi.core.obs_stats import accumulate, normalise
from es_mpi.envs.handover import HandoverRound, movable
from es_mpi.envs.physics import PHYSICS, supports
from es_mpi.envs.rollout import NOISE_BLOCK, POLL_EVERY, Episode, EpisodeSpec, finish_episode
from es_mpi.policies.mlp import ACTIVATIONS, MlpPolicy


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
        task_type = PHYSICS[env_id]
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
