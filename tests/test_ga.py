"""The seed-encoded deep GA (es_mpi/strategies/ga.py) without MPI: plans, truncation selection, elitism by
re-evaluation, rebuilding individuals from seed lists (bit-identical to what was evaluated), the cache,
saved state and job errors."""

import h5py
import numpy as np
import pytest
from helpers import make_noise, run_cli, tiny_job, write_job
from test_ars import run_everywhere
from test_strategies import POLICY

from es_mpi.core import seeds
from es_mpi.runs.job import ConfigError, job_from_dict
from es_mpi.strategies.base import Results
from es_mpi.strategies.ga import Ga

NOISE = make_noise(200_000, 123)
GA = {"kind": "ga", "population": 6, "parents": 3, "sigma": 0.1, "elite_candidates": 2, "elite_episodes": 3}


def make(noise=NOISE, **changes):
    sections = {"policy": {"obs_norm": False, "action_noise": 0.0}, "run": {"eval_every": 0},
                "env": {"episode_cap": "env"}}
    job = job_from_dict({**tiny_job(**sections), "strategy": {**GA, **changes}}, "test")
    return Ga(job, POLICY, 100, noise)


def results(plan, returns):
    returns = np.asarray(returns, np.float64)
    return Results(returns, np.full(len(plan), 10, np.int64), np.zeros((len(plan), 0)), [])


def unused_noise_sum(offsets, weights):
    raise AssertionError("the GA moves no vector by a weighted noise sum")


def init(k):
    return POLICY.init_theta(seeds.stream(3, seeds.INIT, k))  # tiny_job's run seed is 3


def played(ga, state, plan, i):
    """The parameters episode i of `plan` plays, as the engine builds them from the recipe."""
    theta, offset = ga.bases(state)[plan.base[i]], plan.offset[i]
    return theta if offset < 0 else theta + plan.scale[i] * NOISE[offset : offset + POLICY.num_params]


def first_generation(ga):
    state = ga.init()
    plan = ga.plan(state, 0)
    returns = [3.0, 9.0, 1.0, 7.0, 5.0, 0.0]
    return ga.update(state, plan, results(plan, returns), unused_noise_sum)[0]


def test_generation_0_plays_every_initialisation_unmutated():
    ga = make()
    state = ga.init()
    plan = ga.plan(state, 0)
    assert len(plan) == 6 and (plan.offset == -1).all() and len(set(plan.env_seed.tolist())) == 6
    for i in range(6):
        assert np.array_equal(played(ga, state, plan, i), init(i))
    assert np.array_equal(ga.bases(state)[0], init(0))  # vector 0 before any selection: initialisation 0


def test_truncation_keeps_the_best_and_the_best_is_the_first_elite():
    state = first_generation(make())
    assert state.elite_seeds == (1,) and np.isnan(state.elite_return)
    assert state.parents == ((1,), (3,), (4,)) and state.candidates == ((1,), (3,))
    assert np.array_equal(state.elite, init(1))


def test_offspring_mutate_parents_and_candidates_are_re_evaluated():
    ga = make()
    state = first_generation(ga)
    plan = ga.plan(state, 1)
    assert len(plan) == 5 + 2 * 3
    offspring, rerun = slice(0, 5), slice(5, None)
    assert set(plan.base[offspring].tolist()) <= {1, 2, 3} and (plan.offset[offspring] >= 0).all()
    assert (plan.scale[offspring] == np.float32(0.1)).all()
    assert list(plan.base[rerun]) == [4, 4, 4, 5, 5, 5] and (plan.offset[rerun] == -1).all()
    assert len(set(plan.env_seed.tolist())) == len(plan)  # every re-evaluation on a fresh start
    assert plan.train.all()


def test_the_best_re_evaluated_candidate_becomes_the_elite_and_a_parent():
    ga = make()
    state = first_generation(ga)
    plan = ga.plan(state, 1)
    returns = np.r_[[2.0, 8.0, 4.0, 6.0, 1.0], [1, 1, 1], [5, 5, 5]]
    new, metrics = ga.update(state, plan, results(plan, returns), unused_noise_sum)
    assert new.elite_seeds == (3,) and new.elite_return == 5.0
    children = [ga.bases(state).lists[b] + (int(o),) for b, o in zip(plan.base[:5], plan.offset[:5])]
    assert new.parents == ((3,), children[1], children[3])
    assert new.candidates == ((3,), children[1])
    assert metrics == {"best_return": 8.0, "population_return": 4.2, "elite_return": 5.0, "elite_mutations": 0,
                       "episode_cap": 100}


def test_an_equal_re_evaluation_keeps_the_current_elite():
    ga = make()
    state = first_generation(ga)
    plan = ga.plan(state, 1)
    new, _ = ga.update(state, plan, results(plan, np.r_[np.zeros(5), [4, 4, 4], [3, 6, 3]]), unused_noise_sum)
    assert new.elite_seeds == (1,)


def test_rebuilt_individuals_equal_what_was_played_bit_for_bit():
    ga = make()
    state = first_generation(ga)
    for g in range(1, 5):
        plan = ga.plan(state, g)
        rng = np.random.default_rng(g)
        new, _ = ga.update(state, plan, results(plan, rng.normal(size=len(plan))), unused_noise_sum)
        lists = ga.bases(state).lists
        for i in range(5):
            child = lists[plan.base[i]] + (int(plan.offset[i]),)
            if child in new.parents:
                assert np.array_equal(ga.rebuild(child), played(ga, state, plan, i))
        state = new
    # a fresh process (empty cache, as after a resume) rebuilds the same vectors from the seed lists alone
    fresh = make()
    for seed_list in (state.elite_seeds, *state.parents):
        assert np.array_equal(fresh.rebuild(seed_list), ga.rebuild(seed_list))
    slow = init(state.elite_seeds[0])
    for offset in state.elite_seeds[1:]:
        slow = slow + np.float32(0.1) * NOISE[offset : offset + POLICY.num_params]
    assert np.array_equal(state.elite, slow)


def test_the_cache_is_bounded_and_a_child_costs_one_step():
    ga = make()
    state = first_generation(ga)
    for g in range(1, 30):
        plan = ga.plan(state, g)
        state, _ = ga.update(state, plan, results(plan, np.arange(len(plan), dtype=float)), unused_noise_sum)
    assert len(ga._cache) <= 2 * (3 + 2 + 1)
    assert len(state.parents[1]) > 20
    parent = state.parents[1]
    steps = []
    ga.noise = _Counting(NOISE, steps)
    ga.rebuild(parent + (17,))
    assert steps == [17]  # one slice of the table: the parent came from the cache


class _Counting:
    def __init__(self, table, seen):
        self.table, self.seen = table, seen

    def __getitem__(self, index):
        self.seen.append(index.start)
        return self.table[index]


def test_mutated_individuals_need_the_noise_table():
    ga = make(noise=None)
    assert np.array_equal(ga.rebuild((2,)), init(2))
    with pytest.raises(RuntimeError, match="noise table"):
        ga.rebuild((2, 5))


def test_saved_state_holds_seed_lists_and_loads_back_equal():
    ga = make()
    state = first_generation(ga)
    plan = ga.plan(state, 1)
    state, _ = ga.update(state, plan, results(plan, np.arange(len(plan), dtype=float)), unused_noise_sum)
    saved = ga.save(state)
    assert set(saved.arrays) == set(Ga.arrays)
    assert saved.arrays["population/seeds"].dtype == np.int64
    assert saved.arrays["population/seeds"].shape == (1 + 3 + 2, 2)
    loaded = make().load(saved)
    assert (loaded.elite_seeds, loaded.parents, loaded.candidates) == (state.elite_seeds, state.parents,
                                                                        state.candidates)
    assert np.array_equal(loaded.elite, state.elite) and loaded.elite_return == state.elite_return
    torn = dict(saved.scalars, **{"population/parents": 4})
    with pytest.raises(KeyError):
        make().load(type(saved)(saved.arrays, torn))


@pytest.mark.parametrize("changes, message", [
    ({"parents": 7}, r"strategy.parents \(T\) must be <= strategy.population \(N\) 6, got 7$"),
    ({"elite_candidates": 6}, r"strategy.elite_candidates must be <= strategy.population - 1 \(5, .*got 6$"),
    ({"population": 1}, r"strategy.population must be >= 2, got 1$"),
])
def test_invalid_sizes_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=r"^t: " + message):
        job_from_dict({**tiny_job(policy={"obs_norm": False}), "strategy": {**GA, **changes}}, "t")


def test_observation_normalisation_is_refused():
    with pytest.raises(ConfigError, match=r"^t: policy.obs_norm must be false with strategy.kind ga"):
        job_from_dict({**tiny_job(), "strategy": GA}, "t")


def ga_job(tmp_path):
    job = {"env": {"id": "CartPole-v1"}, "policy": {"hidden": [8], "obs_norm": False, "action_noise": 0.0},
           "es": {"noise_table_size": 1_000_000},
           "run": {"seed": 1, "generations": 4, "eval_every": 2, "eval_episodes": 1, "checkpoint_every": 1},
           "strategy": {**GA, "sigma": 0.2, "elite_episodes": 2}}
    return write_job(tmp_path / "job.yaml", job)


def read_population(run_dir):
    with h5py.File(run_dir / "checkpoint.h5") as f:
        return (f["theta"][...], f["population/seeds"][...], dict(f["population"].attrs))


@pytest.mark.mpi
def test_ga_is_bit_identical_on_1_2_and_3_ranks_and_across_a_resume_on_another_count(tmp_path):
    runs = run_everywhere(ga_job(tmp_path), tmp_path, read_population, split=2)
    theta, lists, attrs = runs[None]
    assert lists.shape[0] == 1 + 3 + 2 and lists.shape[1] >= 2 and (attrs["parents"], attrs["candidates"]) == (3, 2)
    for name, (other_theta, other_lists, other_attrs) in runs.items():
        assert np.array_equal(theta, other_theta) and np.array_equal(lists, other_lists), name
        assert other_attrs == attrs, name
    with h5py.File(tmp_path / "r2" / "metrics.h5") as f:
        assert {"best_return", "population_return", "elite_return", "elite_mutations"} <= set(f)
        assert np.isnan(f["elite_return"][0]) and np.isfinite(f["elite_return"][1:]).all()
        # generation 0: 6 initialisations; later: 5 offspring and 2 candidates x 2 re-evaluations
        assert list(np.diff(np.r_[0, f["episodes"][...]])) == [6, 9, 9, 9]
    proc = run_cli(["eval", tmp_path / "r2", "--episodes", "2"])
    assert proc.returncode == 0, proc.stderr
