"""Strategies as pure functions: plans, updates and saved states, without MPI or environments."""

import numpy as np
import pytest
from helpers import make_noise, tiny_job

from es_mpi.core.noise import weighted_noise_sum
from es_mpi.policies.mlp import MlpPolicy
from es_mpi.runs.job import ConfigError, job_from_dict
from es_mpi.strategies import STRATEGIES
from es_mpi.strategies.ars import Ars
from es_mpi.strategies.base import Plan, Results
from es_mpi.strategies.ga import Ga
from es_mpi.strategies.novelty import NsEs, NsraEs, NsrEs
from es_mpi.strategies.openai_es import OpenAiEs
from es_mpi.strategies.random_search import RandomSearch

NOISE = make_noise(200_000, 123)
POLICY = MlpPolicy(3, 2, (4,), "tanh", np.full(2, -1, np.float32), np.ones(2, np.float32))


def noise_sum(offsets, weights):
    return weighted_noise_sum(NOISE, offsets, weights, POLICY.num_params)


def make(kind="openai_es", **sections):
    job = job_from_dict({**tiny_job(**sections), "strategy": {"kind": kind}}, "test")
    return STRATEGIES[kind](job, POLICY, 100)


def results_for(plan: Plan, returns: np.ndarray, lengths: np.ndarray | None = None) -> Results:
    lengths = np.full(len(plan), 10) if lengths is None else lengths
    return Results(returns.astype(np.float64), lengths.astype(np.int64), np.zeros((len(plan), 0)), [])


def test_the_registry_finds_every_strategy_module():
    assert STRATEGIES == {"ars": Ars, "ga": Ga, "ns_es": NsEs, "nsr_es": NsrEs, "nsra_es": NsraEs,
                          "openai_es": OpenAiEs, "random_search": RandomSearch}


def test_openai_es_plans_antithetic_pairs_after_the_evaluation_episodes():
    es = make(run={"eval_every": 2, "eval_episodes": 2})
    state = es.init()
    plan = es.plan(state, 0)
    assert len(plan) == 2 + 2 * 5 and not plan.train[:2].any() and plan.train[2:].all()
    assert (plan.offset[:2] == -1).all() and (plan.cap[:2] == 100).all()
    pairs = plan.offset[2:].reshape(5, 2)
    assert (pairs[:, 0] == pairs[:, 1]).all()
    assert np.array_equal(plan.scale[2:].reshape(5, 2), np.tile(np.float32([0.05, -0.05]), (5, 1)))
    assert np.array_equal(plan.env_seed[2::2], plan.env_seed[3::2])  # common random numbers within a pair
    again = es.plan(state, 0)
    assert all(np.array_equal(getattr(plan, f), getattr(again, f)) for f in Plan.__dataclass_fields__)
    assert len(es.plan(state, 1)) == 10  # no evaluation in odd generations
    assert not np.array_equal(es.plan(state, 1).offset, pairs.ravel())


def test_openai_es_step_is_the_ranked_noise_sum_over_2n():
    # SGD without momentum or weight decay: theta moves by lr times the ES direction exactly
    es = make(optimizer={"kind": "sgd", "momentum": 0.0, "lr": 0.1}, es={"l2": 0.0}, run={"eval_every": 0})
    state = es.init()
    plan = es.plan(state, 0)
    returns = np.random.default_rng(0).normal(size=len(plan))
    new, metrics = es.update(state, plan, results_for(plan, returns), noise_sum)
    ranks = np.argsort(np.argsort(returns)) / (len(returns) - 1) - 0.5  # distinct returns: no ties
    slow = np.zeros(POLICY.num_params)
    for j in range(5):
        eps = NOISE[plan.offset[2 * j] :][: POLICY.num_params].astype(np.float64)
        slow += (ranks[2 * j] - ranks[2 * j + 1]) * eps / 10
    np.testing.assert_allclose(new.theta - state.theta, 0.1 * slow, rtol=1e-4, atol=1e-6)
    assert metrics["episode_cap"] == state.episode_cap and metrics["grad_norm"] > 0


def test_openai_es_moves_toward_the_better_side_of_a_linear_return():
    es = make(es={"pairs": 200, "l2": 0.0}, run={"eval_every": 0})
    state = es.init()
    plan = es.plan(state, 0)
    target = np.linspace(-1, 1, POLICY.num_params)
    returns = np.array([(s * NOISE[o:][: POLICY.num_params]) @ target for o, s in zip(plan.offset, plan.scale)])
    new, _ = es.update(state, plan, results_for(plan, returns), noise_sum)
    step = (new.theta - state.theta).astype(np.float64)
    assert step @ target / (np.linalg.norm(step) * np.linalg.norm(target)) > 0.8


def test_openai_es_grows_the_adaptive_cap_when_episodes_hit_it():
    es = make(run={"eval_every": 0})  # tiny_job: adaptive cap from 40, x1.5 once half the episodes hit it
    state = es.init()
    plan = es.plan(state, 0)
    new, _ = es.update(state, plan, results_for(plan, np.arange(10.0), plan.cap), noise_sum)
    assert (state.episode_cap, new.episode_cap) == (40, 60)


@pytest.mark.parametrize("kind", ["openai_es", "random_search"])
def test_saved_state_loads_back_equal(kind):
    strategy = make(kind)
    state = strategy.init()
    plan = strategy.plan(state, 0)
    state, _ = strategy.update(state, plan, results_for(plan, np.arange(len(plan), dtype=float)), noise_sum)
    loaded = strategy.load(strategy.save(state))
    for name, array in strategy.save(state).arrays.items():
        assert np.array_equal(strategy.save(loaded).arrays[name], array), name
    assert strategy.save(loaded).scalars == strategy.save(state).scalars
    assert set(strategy.save(state).arrays) <= set(strategy.arrays)


def test_random_search_steps_along_the_better_sides():
    rs = make("random_search", run={"eval_every": 0})
    state = rs.init()
    plan = rs.plan(state, 0)
    assert len(plan) == 16 and (plan.cap == 100).all() and (plan.noise_key == -1).all()
    returns = np.tile([1.0, 0.0], 8)
    returns[2:4] = [0.0, 1.0]  # pair 1: the minus side is better
    new, _ = rs.update(state, plan, results_for(plan, returns), noise_sum)
    signs = np.where(np.arange(8) == 1, -1.0, 1.0)
    expected = sum(s * NOISE[o:][: POLICY.num_params] for s, o in zip(signs, plan.offset[::2]))
    np.testing.assert_allclose(new.theta - state.theta, 0.02 / 8 * expected, rtol=1e-5, atol=1e-7)


def test_unknown_strategy_kind_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"strategy\.kind must be one of ars, ga, ns_es, nsr_es, nsra_es, openai_es, "
                       r"random_search, got 'cma'"):
        job_from_dict({**tiny_job(), "strategy": {"kind": "cma"}}, "t")
    with pytest.raises(ConfigError, match=r"unknown key strategy\.step"):
        job_from_dict({**tiny_job(), "strategy": {"step": 0.1}}, "t")  # openai_es has no step
    with pytest.raises(ConfigError, match=r"strategy\.step must be > 0"):
        job_from_dict({**tiny_job(), "strategy": {"kind": "random_search", "step": -1}}, "t")


def test_the_engines_row_split_gives_the_rows_of_one_call():
    from es_mpi.engine.context import NodeRows
    from es_mpi.parallel.comm import LocalComm

    split = NodeRows(LocalComm())
    square = np.arange(12.0).reshape(6, 2)
    assert np.array_equal(split(lambda lo, hi: square[lo:hi] ** 2, 6, 2), square**2)
    assert np.array_equal(split(lambda lo, hi: square[lo:hi, :1], 6, 1), square[:, :1])  # the buffer is reused
    assert split.buffer.size == 12
