"""Behaviour vectors are computed where an episode ends, by one function, so they are bit-identical whichever
runner or rank ends it: one by one, in a lockstep slot, alone in the runner's env, or after a hand-over."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from test_batched import job_policy, specs, to_spec
from test_handover import _with_task, round_for

from es_mpi.envs.behaviour import check, final_ram, final_xy, measure, resolve
from es_mpi.envs.lockstep import BatchedRunner
from es_mpi.envs.rollout import run_one_by_one
from es_mpi.runs.schema import ConfigError

XY = partial(measure, final_xy, 2)


def with_bc(spec):
    return replace(spec, behaviour=XY)


def one_by_one(env_id, kwargs, policy, all_specs):
    return run_one_by_one(gym.make(env_id, **kwargs).unwrapped, policy, all_specs, None, None)


def assert_same_behaviour(expected, got):
    assert [e.task for e in expected] == [e.task for e in got]
    for a, b in zip(expected, got):
        assert (a.ret, a.length) == (b.ret, b.length)
        assert a.behaviour.dtype == np.float64 and np.array_equal(a.behaviour, b.behaviour), (a.task, a.behaviour,
                                                                                              b.behaviour)


@pytest.mark.parametrize("env_id", ["Ant-v5", "HalfCheetah-v5", "Hopper-v5"])
def test_lockstep_slots_give_the_behaviour_run_episode_gives(env_id):
    policy = job_policy(env_id)
    caps = [0, 1, 50, 200, 129, 30, 200]
    args = specs(policy, len(caps), seed=4)
    make = [lambda c=c, a=a, t=t: with_bc(_with_task(to_spec(c, *a), t)) for t, (c, a) in enumerate(zip(caps, args))]
    expected = one_by_one(env_id, {}, policy, [m() for m in make])
    moved = [e for e in expected if e.length > 0]
    assert len({tuple(e.behaviour) for e in moved}) == len(moved)  # the episodes went different places
    for slots in (1, 3, 8):
        got = BatchedRunner(env_id, {}, policy, slots).run([m() for m in make], None, None)
        assert_same_behaviour(expected, sorted(got, key=lambda e: e.task))


def test_an_episode_handed_over_mid_flight_ends_with_the_same_behaviour():
    env_id, kwargs = "Ant-v5", {"terminate_when_unhealthy": False}
    policy = job_policy(env_id, kwargs)
    args = [a[:4] + (False,) for a in specs(policy, 7, seed=11)]
    caps = [60, 300, 90, 280, 150, 260, 75]
    make = [lambda c=c, a=a, t=t: with_bc(_with_task(to_spec(c, *a), t)) for t, (c, a) in enumerate(zip(caps, args))]
    handover_round = round_for(env_id, kwargs, policy, make)
    got = BatchedRunner(env_id, kwargs, policy, 4).run([m() for m in make], None, None, handover_round=handover_round)
    assert handover_round.given >= 2
    expected = one_by_one(env_id, kwargs, policy, [m() for m in make])
    assert_same_behaviour(expected, sorted(got, key=lambda e: e.task))


def test_xy_is_the_torso_position_of_ant():
    env = gym.make("Ant-v5").unwrapped
    obs, _ = env.reset(seed=0)
    env.data.qpos[:2] = (3.0, -2.0)
    assert np.array_equal(measure(final_xy, 2, env, obs), [3.0, -2.0])


def test_a_behaviour_that_does_not_fit_the_env_is_a_one_line_error():
    env = gym.make("CartPole-v1")
    with pytest.raises(ConfigError, match=r"^job: strategy.behaviour 'xy' does not fit env CartPole-v1: .*no MuJoCo"):
        check(final_xy, 2, env, "xy", "job")
    with pytest.raises(ConfigError, match=r"^job: strategy.behaviour 'ram' does not fit env CartPole-v1"):
        check(final_ram, 128, env, "ram", "job")


def test_behaviour_names_resolve_or_say_what_they_must_be():
    assert resolve("xy") == (final_xy, 2) and resolve("ram") == (final_ram, 128)
    assert resolve("test_novelty_behaviour:last_obs") == (last_obs, 3)
    for name, words in [("position", "must be one of xy, ram or module:function"),
                        ("nowhere_module:f", "must name an importable function"),
                        ("test_novelty_behaviour:with_bc", "must name a function with an integer attribute `width`")]:
        with pytest.raises(ConfigError, match=rf"^strategy.behaviour {words}.*, got '{name}'$"):
            resolve(name)


def last_obs(env, obs):
    return obs[:3]


last_obs.width = 3


def test_a_function_returning_the_wrong_width_is_refused():
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="returned 3 values, expected 2"):
        measure(last_obs, 2, env, obs)
