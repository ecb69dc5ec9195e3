"""Lockstep episodes: K episodes of one MuJoCo task, each in a slot (one simulation of a `mujoco.batch.Batch`),
advanced by one batch call per step.

A rank playing one episode at a time through gymnasium spends a third or more of each step in Python (the
env's step, observation and reward code). Here the K simulations step in one call with the GIL released, and
observations, rewards and terminations are computed for all of them at once (es_mpi.envs.physics). Every
result is bit-identical to `es_mpi.envs.rollout.run_episode` on `gym.make(env_id, **env_kwargs).unwrapped`
(tests/test_batched.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from es_mpi.core.obs_stats import accumulate, normalise
from es_mpi.envs.handover import HandoverRound, movable
from es_mpi.envs.physics import PHYSICS, supports
from es_mpi.envs.rollout import NOISE_BLOCK, POLL_EVERY, Episode, EpisodeSpec, finish_episode, noise_block
from es_mpi.policies.mlp import ACTIVATIONS, MlpPolicy


class BatchedRunner:
    """Plays episodes `slots` at a time in one batch; a finished episode's slot takes the next one at once."""

    def __init__(self, env_id: str, env_kwargs: dict, policy: MlpPolicy, slots: int) -> None:
        if not supports(env_id, env_kwargs):
            raise ValueError(f"no lockstep runner for {env_id!r} with env.kwargs {env_kwargs}")
        import gymnasium as gym
        from mujoco import batch

        env = gym.make(env_id, **env_kwargs).unwrapped
        if (policy.obs_dim, policy.act_dim) != (env.observation_space.shape[0], env.action_space.shape[0]):
            raise ValueError(f"policy sizes {policy.obs_dim}->{policy.act_dim} do not fit {env_id}")
        physics_type = PHYSICS[env_id]
        self.env = env  # where an episode plays on once it leaves the batch
        self.batch = batch.Batch(env.model, nsim=slots, nthread=1, persistent=physics_type.persistent)
        self.physics = physics_type(env, self.batch)
        self.policy, self.slots = policy, slots
        self.ctrl = self.batch.bind("ctrl")
        # One parameter row per slot; each layer is a (slots, n_in, n_out) view for np.matmul over all slots.
        self.theta = np.zeros((slots, policy.num_params), np.float32)
        self.layers, pos = [], 0
        for n_in, n_out in zip(policy.sizes[:-1], policy.sizes[1:]):
            w = self.theta[:, pos : pos + n_in * n_out].reshape(slots, n_in, n_out)
            pos += n_in * n_out
            self.layers.append((w, self.theta[:, None, pos : pos + n_out] if policy.bias else None))
            pos += n_out if policy.bias else 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """MlpPolicy.act for every slot's parameters: the same ufuncs, with each np.dot of a slot done as a
        (1, n_in) x (n_in, n_out) product of np.matmul's stack, which numpy hands to the same BLAS gemv."""
        policy = self.policy
        x = obs[:, None, :]
        hidden = ACTIVATIONS[policy.activation]
        for w, b in self.layers[:-1]:
            x = np.matmul(x, w)
            if b is not None:
                x += b
            x = hidden(x)
        w, b = self.layers[-1]
        x = np.matmul(x, w)[:, 0, :]
        if b is not None:
            x += b[:, 0, :]
        if policy.bins is None:
            np.maximum(x, policy.low, out=x)
            return np.minimum(x, policy.high, out=x)
        scores = x.reshape(len(x), policy.act_dim, policy.bins)
        step = (policy.high - policy.low) / np.float32(policy.bins - 1)
        return policy.low + step * np.argmax(scores, axis=-1).astype(np.float32)

    def reset(self, ids: np.ndarray, specs: list[EpisodeSpec]) -> np.ndarray:
        """Start episodes `specs` in slots `ids`: their parameters, and the state env.reset(seed=...) makes.
        Returns their observations."""
        import gymnasium.utils.seeding
        import mujoco

        physics = self.physics
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)  # mj_resetData; set_state's mj_forward follows
        for k, spec in zip(ids.tolist(), specs):
            self.theta[k] = spec.theta
            physics.qpos[k], physics.qvel[k] = physics.reset_state(gymnasium.utils.seeding.np_random(spec.env_seed)[0])
        self.batch.forward(ids)
        physics.refresh(ids, stepped=False)
        return physics.observe(ids)

    def step(self, ids: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """env.step with float32 `actions` in slots `ids`: their observations, rewards and terminations."""
        physics = self.physics
        self.ctrl[ids] = actions
        before = physics.position(ids)
        self.batch.step(None if ids.size == self.slots else ids, nstep=physics.frame_skip)
        physics.refresh(ids, stepped=True)
        obs = physics.observe(ids)
        return (obs, *physics.reward(ids, before, actions))

    def load(self, k: int) -> None:
        """Copy slot k's simulation into the gymnasium env, `self.env`."""
        self.batch.get_data(k, self.env.data)

    def run(self, specs: Iterable[EpisodeSpec], mean: np.ndarray | None, std: np.ndarray | None,
            poll: Callable[[], object] | None = None, limit: Callable[[], int] | None = None,
            handover_round: HandoverRound | None = None) -> list[Episode]:
        """What run_episode returns for each spec, in the order they are taken; observations normalised
        unless mean is None. `specs` is consumed lazily, one spec whenever a slot is free, so that it
        can hand out work dynamically; `poll` is called every few lockstep steps (see run_episode).
        `limit()`, if given, caps the number of episodes in flight when slots are refilled (0: no spec
        is left): near the end of a generation a rank then holds only its share of what is left, instead
        of up to `slots` episodes that other, idle ranks would have to wait for. Once no spec is left,
        the last episode in flight is handed to the gymnasium env (its state copied over), where a lone
        episode steps faster than in a batch: it is the straggler every other rank waits for.

        With `handover_round`, the generation's HandoverRound, once no spec is left, episodes in flight beyond
        the last go to ranks that have none, of this node first (the youngest first; not those collecting
        statistics), and when this rank has none it finishes episodes others hand over; the list then
        holds the episodes this rank finished, each with its spec's task."""
        slots = _Slots(self, iter(specs), limit)
        lockstep = 0
        while (ids := slots.busy()).size:
            if slots.exhausted and ids.size == 1:
                slots.finish_alone(int(ids[0]), mean, std, poll)
                break
            polling = lockstep % POLL_EVERY == 0
            lockstep += 1
            if polling:
                if poll is not None:
                    poll()
                # Under dynamic assignment the counter tells whether tasks are left before a slot frees.
                if handover_round is not None and ids.size > 1 and handover_round.wanted() and slots.spent():
                    slots.give_away(handover_round)
                    continue  # one episode may be left: it goes to the gymnasium env above
            slots.step(ids, mean, std)
        finished = slots.finished()
        if handover_round is not None:
            finished += handover_round.finish_received(self.env, self.policy, mean, std, poll)
        return finished


class _Slots:
    """The episode in each slot of a runner during one `run`: its spec, step count, return, cap, current
    action-noise block, the raw observations it collects for statistics, and its latest observation."""

    def __init__(self, runner: BatchedRunner, specs: Iterator[EpisodeSpec], limit: Callable[[], int] | None):
        k, policy = runner.slots, runner.policy
        self.runner, self.specs, self.limit = runner, specs, limit
        self.exhausted = False  # no spec is left
        self.results: list[Episode | None] = []  # per spec taken, in that order; None: in flight or given away
        self.playing = np.full(k, -1)  # each slot's episode: its index in results, -1 if the slot is idle
        self.spec: list[EpisodeSpec | None] = [None] * k
        self.steps = np.zeros(k, np.int64)
        self.caps = np.zeros(k, np.int64)
        self.totals = np.zeros(k)
        self.noise = np.zeros((k, NOISE_BLOCK, policy.act_dim), np.float32)
        self.noisy = np.zeros(k, bool)
        self.seen: list[list | None] = [None] * k  # None: the episode collects no statistics
        self.obs = np.zeros((k, policy.obs_dim))
        self.refill()

    def busy(self) -> np.ndarray:
        return np.flatnonzero(self.playing >= 0)

    def refill(self) -> None:
        """Start the next specs in the idle slots; with `limit`, only as many as keep the episodes in flight
        within it (at least one while none runs)."""
        free = np.flatnonzero(self.playing < 0)
        if self.limit is not None:
            active, allowed = self.playing.size - free.size, self.limit()
            self.exhausted |= allowed == 0
            free = free[: max(allowed - active, 0 if active else 1)]
        started = [k for k in free.tolist() if self.take(k)]
        if started:
            ids = np.array(started)
            self.obs[ids] = self.runner.reset(ids, [self.spec[k] for k in started])

    def take(self, k: int) -> bool:
        """Give slot k the next spec that takes a step; False if none is left."""
        spec = next(self.specs, None)
        while spec is not None and spec.cap <= 0:  # run_episode takes no step at all
            self.results.append(Episode(0.0, 0, None, spec.task, self.unplayed_behaviour(spec)))
            spec = next(self.specs, None)
        if spec is None:
            self.exhausted = True
            return False
        self.playing[k] = len(self.results)
        self.results.append(None)
        self.spec[k], self.steps[k], self.totals[k], self.caps[k] = spec, 0, 0.0, spec.cap
        self.noisy[k] = spec.noise_rng is not None and spec.noise_std > 0
        self.seen[k] = [] if spec.collect_stats else None
        return True

    def step(self, ids: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> None:
        """One step of the episodes in slots `ids`; those that end are recorded and their slots refilled."""
        runner, steps, noisy = self.runner, self.steps, self.noisy
        for k in ids[noisy[ids] & (steps[ids] % NOISE_BLOCK == 0)].tolist():
            self.noise[k] = noise_block(self.spec[k], runner.policy.act_dim)
        for k in ids.tolist():
            if self.seen[k] is not None:
                self.seen[k].append(self.obs[k].copy())
        # idle slots are computed too (their last rows): one matmul per layer whatever the occupancy
        actions = runner.act(self.obs if mean is None else normalise(self.obs, mean, std))[ids]
        add = noisy[ids]
        if add.any():
            actions[add] += self.noise[ids[add], steps[ids[add]] % NOISE_BLOCK]
        self.obs[ids], rewards, terminated = runner.step(ids, actions)
        self.totals[ids] += rewards
        steps[ids] += 1
        done = ids[terminated | (steps[ids] >= self.caps[ids])]
        if done.size:
            for k in done.tolist():
                seen, spec = self.seen[k], self.spec[k]
                stats = accumulate(np.asarray(seen)) if seen else None
                self.results[self.playing[k]] = Episode(float(self.totals[k]), int(steps[k]), stats, spec.task,
                                                        self.behaviour(k, spec))
            self.playing[done] = -1
            self.refill()

    def behaviour(self, k: int, spec: EpisodeSpec) -> np.ndarray | None:
        """The BC of slot k's ended episode, computed on the runner's env holding the slot's simulation, as
        finish_episode computes it on the env an episode ends in (None: the spec asks for none)."""
        if spec.behaviour is None:
            return None
        self.runner.load(k)
        return spec.behaviour(self.runner.env, self.obs[k].copy())

    def unplayed_behaviour(self, spec: EpisodeSpec) -> np.ndarray | None:
        """The BC of an episode of no steps: that of its reset state, as run_episode gives."""
        if spec.behaviour is None:
            return None
        obs, _ = self.runner.env.reset(seed=spec.env_seed)
        return spec.behaviour(self.runner.env, obs)

    def finish_alone(self, k: int, mean: np.ndarray | None, std: np.ndarray | None,
                     poll: Callable[[], object] | None) -> None:
        """Play slot k's episode, the last in flight, to its end in the gymnasium env."""
        runner = self.runner
        runner.load(k)
        self.results[self.playing[k]] = finish_episode(
            runner.env, runner.policy, self.spec[k], self.obs[k].copy(), mean, std, self.seen[k], poll,
            float(self.totals[k]), int(self.steps[k]), self.noise[k].copy())
        self.playing[k] = -1

    def spent(self) -> bool:
        """Whether no spec is left, asking `limit` (the task counter) if the queue has not said so yet."""
        self.exhausted |= self.limit is not None and self.limit() == 0
        return self.exhausted

    def give_away(self, handover_round: HandoverRound) -> None:
        """Hand episodes in flight to waiting ranks, the youngest first, while more than one is left here."""
        runner = self.runner
        for k in sorted(self.busy().tolist(), key=lambda k: self.steps[k]):
            if self.busy().size < 2:
                break
            spec = self.spec[k]
            if not movable(spec):
                continue
            if not handover_round.give(lambda k=k: runner.load(k), runner.env, spec, self.obs[k],
                                       float(self.totals[k]), int(self.steps[k]), self.noise[k]):
                break
            self.playing[k] = -1

    def finished(self) -> list[Episode]:
        """The episodes played to their end here, in the order their specs were taken."""
        return [episode for episode in self.results if episode is not None]
