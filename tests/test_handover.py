"""An episode handed to another rank mid-flight ends exactly as if it had never moved."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_batched import JOBS, assert_same, job_policy, reference, specs, to_spec

from es_mpi.envs import handover
from es_mpi.envs.handover import HandoverRound
from es_mpi.envs.lockstep import BatchedRunner
from es_mpi.envs.rollout import NOISE_BLOCK, run_one_by_one

# Tasks that never end early under these kwargs, so that episodes run long enough to move mid noise block
# (128 steps) and still have steps left.
LONG = {"Humanoid-v5": {"terminate_when_unhealthy": False}, "Ant-v5": {"terminate_when_unhealthy": False},
        "Hopper-v5": {"terminate_when_unhealthy": False}, "HalfCheetah-v5": {}, "Swimmer-v5": {},
        "Walker2d-v5": {"terminate_when_unhealthy": False}}


class ListTransport:
    """A transport with one other rank that always waits: records given are kept in order, then taken back."""

    def __init__(self, dtype: np.dtype, busy_polls: int = 0) -> None:
        self.dtype, self.records, self.taken, self.busy_polls = dtype, [], 0, busy_polls

    def wanted(self) -> bool:
        self.busy_polls -= 1
        return self.busy_polls < 0

    def give(self, fill) -> bool:
        record = np.zeros(1, self.dtype)
        fill(record[0])
        self.records.append(record)
        return True

    def take(self, poll) -> np.void | None:
        if self.taken == len(self.records):
            return None
        self.taken += 1
        return self.records[self.taken - 1][0].copy()


def round_for(env_id: str, env_kwargs: dict, policy, all_specs: list, busy_polls: int = 0) -> HandoverRound:
    env = gym.make(env_id, **env_kwargs).unwrapped
    transport = ListTransport(handover.record_dtype(env, policy.obs_dim, policy.act_dim), busy_polls)
    return HandoverRound(transport, lambda task: all_specs[task]())


@pytest.mark.parametrize("env_id", sorted(LONG))
def test_episodes_given_away_mid_flight_end_as_if_they_had_not_moved(env_id):
    """Four slots, seven episodes with caps from 60 to 300: once the queue is empty, every episode in
    flight but one is given away (at steps that are not multiples of the noise block), and a receiving
    runner (here a one-by-one one, with a fresh env) finishes them. Results equal run_episode's."""
    kwargs = LONG[env_id]
    policy = job_policy(env_id, kwargs)
    args = [a[:4] + (False,) for a in specs(policy, 7, seed=11)]  # statistics-collecting episodes stay home
    caps = [60, 300, 90, 280, 150, 260, 75]
    # Fresh specs (and noise generators) each time one is asked for, as the trainer's make_spec builds them.
    makers = [lambda c=c, a=a, t=t: _with_task(to_spec(c, *a), t) for t, (c, a) in enumerate(zip(caps, args))]
    handover_round = round_for(env_id, kwargs, policy, makers)
    runner = BatchedRunner(env_id, kwargs, policy, 4)
    got = runner.run([m() for m in makers], None, None, handover_round=handover_round)
    assert handover_round.given >= 2 and len(handover_round.transport.records) == handover_round.given
    moved_at = [int(r["steps"][0]) for r in handover_round.transport.records]
    assert any(s > NOISE_BLOCK and s % NOISE_BLOCK for s in moved_at), moved_at
    got = sorted(got, key=lambda e: e.task)
    assert [e.task for e in got] == list(range(len(caps)))
    expected = [reference(env_id, kwargs, policy, [a], None, None, c)[0] for c, a in zip(caps, args)]
    assert_same(expected, got)


def test_episodes_move_before_any_slot_frees_once_the_counter_is_spent():
    """Two equally long episodes in a rank, another rank waiting: under dynamic assignment `limit()`
    says no task is left, so one moves at the first check after the waiting starts (step 8, mid noise
    block) without waiting for a slot to free. On the receiving side it draws two more noise blocks: the
    generator must continue from where the sender left it."""
    env_id = "HalfCheetah-v5"
    policy = job_policy(env_id)
    args = [a[:2] + (1234 + i, 0.05, False) for i, a in enumerate(specs(policy, 2, seed=2))]
    caps = [300, 300]
    makers = [lambda c=c, a=a, t=t: _with_task(to_spec(c, *a), t) for t, (c, a) in enumerate(zip(caps, args))]
    handover_round = round_for(env_id, {}, policy, makers, busy_polls=1)
    taken = []

    def lazily():
        for m in makers:
            taken.append(m)
            yield m()

    got = BatchedRunner(env_id, {}, policy, 2).run(lazily(), None, None, limit=lambda: len(caps) - len(taken),
                                                   handover_round=handover_round)
    assert handover_round.given == 1 and int(handover_round.transport.records[0]["steps"][0]) == 8
    expected = [reference(env_id, {}, policy, [a], None, None, c)[0] for c, a in zip(caps, args)]
    assert_same(expected, sorted(got, key=lambda e: e.task))


def test_one_by_one_runner_finishes_received_episodes():
    """A rank running one episode at a time never gives, but finishes what it receives."""
    env_id = "Hopper-v5"
    policy = job_policy(env_id)
    args = [a[:4] + (False,) for a in specs(policy, 3, seed=5)]
    makers = [lambda a=a, t=t: _with_task(to_spec(100, *a), t) for t, a in enumerate(args)]
    handover_round = round_for(env_id, {}, policy, makers)
    env = gym.make(env_id).unwrapped
    got = run_one_by_one(env, policy, [m() for m in makers], None, None, handover_round=handover_round)
    assert handover_round.given == 0 and [e.task for e in got] == [0, 1, 2]
    assert_same(reference(env_id, {}, policy, args, None, None, 100), got)


def test_episodes_collecting_statistics_are_not_given():
    policy = job_policy("HalfCheetah-v5")
    args = [a[:4] + (True,) for a in specs(policy, 3, seed=8)]
    makers = [lambda a=a, t=t: _with_task(to_spec(50, *a), t) for t, a in enumerate(args)]
    handover_round = round_for("HalfCheetah-v5", {}, policy, makers)
    runner = BatchedRunner("HalfCheetah-v5", {}, policy, 3)
    got = runner.run([m() for m in makers], None, None, handover_round=handover_round)
    assert handover_round.given == 0
    assert_same(reference("HalfCheetah-v5", {}, policy, args, None, None, 50), got)


def _with_task(spec, task: int):
    from dataclasses import replace

    return replace(spec, task=task)


assert set(LONG) <= set(JOBS)
