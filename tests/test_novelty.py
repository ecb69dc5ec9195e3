"""NS-ES, NSR-ES and NSRA-ES (es_mpi/strategies/novelty.py) and the archive (es_mpi/core/archive.py) without
MPI: k-NN novelty, the meta-population's plans, the weights of reward and novelty, NSRA's adaptation, the
choice of agent, saved state and job errors; and end to end on 1, 2 and 3 ranks and across a resume."""

import h5py
import numpy as np
import pytest
from helpers import run_cli, tiny_job, write_job
from test_ars import run_everywhere
from test_strategies import NOISE, POLICY, noise_sum

from es_mpi.core.archive import novelty
from es_mpi.core.shaping import centered_ranks
from es_mpi.runs.job import ConfigError, job_from_dict
from es_mpi.strategies import STRATEGIES
from es_mpi.strategies.base import Results

NOVELTY = {"agents": 3, "k": 2, "behaviour_episodes": 2}


def make(kind="ns_es", **changes):
    job = job_from_dict({**tiny_job(run={"eval_every": 0}), "strategy": {"kind": kind, **NOVELTY, **changes}},
                        "test")
    return STRATEGIES[kind](job, POLICY, 100, NOISE)


def results(plan, returns, bcs):
    return Results(np.asarray(returns, np.float64), np.full(len(plan), 10, np.int64),
                   np.asarray(bcs, np.float64).reshape(len(plan), 2), [])


def started(strategy, bcs=((0, 0), (1, 0), (5, 0)), returns=(1.0, 2.0, 3.0)):
    """The state after generation 0, which measures every agent twice."""
    state = strategy.init()
    plan = strategy.plan(state, 0)
    state, metrics = strategy.update(state, plan, results(plan, np.repeat(returns, 2), np.repeat(bcs, 2, axis=0)),
                                     noise_sum)
    return state, metrics


def test_novelty_is_the_mean_distance_to_the_k_nearest():
    archive = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [10.0, 0.0]])
    assert np.allclose(novelty([[0.0, 0.0]], archive, 2), [0.5])
    assert np.allclose(novelty([[0.0, 0.0]], archive, 9), [(0 + 5 + 1 + 10) / 4])  # fewer entries than k
    assert novelty([[1.0, 1.0]], archive[:0], 3)[0] == np.inf
    rng = np.random.default_rng(1)
    big, queries = rng.normal(size=(3000, 3)), rng.normal(size=(700, 3))
    brute = np.sort(np.linalg.norm(queries[:, None] - big[None], axis=2), axis=1)[:, :10].mean(axis=1)
    assert np.allclose(novelty(queries, big, 10), brute, rtol=1e-12, atol=0)


def test_novelty_does_not_depend_on_how_queries_are_blocked(monkeypatch):
    rng = np.random.default_rng(2)
    archive, queries = rng.normal(size=(500, 2)), rng.normal(size=(64, 2))
    whole = novelty(queries, archive, 10)
    monkeypatch.setattr("es_mpi.core.archive.BLOCK_PAIRS", 1000)
    assert np.array_equal(novelty(queries, archive, 10), whole)
    assert np.array_equal(np.concatenate([novelty(queries[:5], archive, 10), novelty(queries[5:], archive, 10)]),
                          whole)


def test_generation_0_measures_every_agent_and_fills_the_archive():
    ns = make()
    state = ns.init()
    plan = ns.plan(state, 0)
    assert list(plan.base) == [1, 1, 2, 2, 3, 3] and (plan.offset == -1).all() and (plan.noise_key == -1).all()
    assert (plan.cap == 100).all() and len(set(plan.env_seed.tolist())) == 6
    assert not np.array_equal(state.thetas[0], state.thetas[1])
    state, metrics = started(ns)
    assert np.array_equal(state.archive, [[0, 0], [1, 0], [5, 0]]) and list(state.archive_agent) == [0, 1, 2]
    assert metrics["agent"] == -1 and metrics["archive_size"] == 3 and metrics["measured_return"] == 2.0
    assert state.best_agent() == 2 and np.array_equal(ns.bases(state)[0], state.thetas[2])


def test_the_chosen_agent_is_perturbed_and_measured_the_generation_after():
    ns = make()
    state, _ = started(ns)
    plan = ns.plan(state, 1)
    assert len(plan) == 2 * 5 and (plan.offset >= 0).all()  # no agent was updated in generation 0
    agent = int(plan.base[0]) - 1
    assert (plan.base == agent + 1).all() and (plan.scale[::2] == -plan.scale[1::2]).all()
    bcs = np.arange(20, dtype=float).reshape(10, 2)
    new, metrics = ns.update(state, plan, results(plan, np.zeros(10), bcs), noise_sum)
    assert metrics["agent"] == agent and new.pending == agent and new.steps[agent] == 1
    assert sum(not np.array_equal(a, b) for a, b in zip(new.thetas, state.thetas)) == 1
    assert len(new.archive) == 3  # the updated agent's BC joins when measured, next generation
    plan2 = ns.plan(new, 2)
    assert list(plan2.base[:2]) == [agent + 1, agent + 1] and (plan2.offset[:2] == -1).all()
    newer, metrics2 = ns.update(new, plan2, results(plan2, np.r_[[7.0, 9.0], np.zeros(10)],
                                                    np.r_[[[2, 2], [4, 4]], np.zeros((10, 2))]), noise_sum)
    assert np.array_equal(newer.archive[-1], [3, 3]) and newer.archive_generation[-1] == 2
    assert newer.agent_return[agent] == 8.0 and metrics2["measured_return"] == 8.0


@pytest.mark.parametrize("kind, weight", [("ns_es", 0.0), ("nsr_es", 0.5), ("nsra_es", 1.0)])
def test_the_step_follows_reward_and_novelty_ranks_with_the_method_s_weight(kind, weight):
    strategy = make(kind)
    state, _ = started(strategy)
    plan = strategy.plan(state, 1)
    returns = np.arange(10, dtype=float)[::-1]
    bcs = np.c_[np.arange(10) * 0.7, np.zeros(10)]
    seen = {}

    def spy(offsets, weights):
        seen["weights"] = weights
        return noise_sum(offsets, weights)

    _, metrics = strategy.update(state, plan, results(plan, returns, bcs), spy)
    nov = novelty(bcs, state.archive, 2).reshape(-1, 2)
    shaped = np.float32(weight) * centered_ranks(returns.reshape(-1, 2)) + np.float32(1 - weight) * centered_ranks(nov)
    assert np.array_equal(seen["weights"], shaped[:, 0] - shaped[:, 1])
    assert metrics["reward_weight"] == weight and metrics["novelty_mean"] == pytest.approx(nov.mean())


def test_the_choice_follows_the_agents_novelty():
    ns = make()
    state, _ = started(ns, bcs=((0, 0), (0.01, 0), (50, 0)))
    # agent 2 is far from the rest: its novelty dominates
    picks = [ns.choose(state, g) for g in range(1, 200)]
    assert picks.count(2) > 150 and set(picks) <= {0, 1, 2}
    assert picks == [make().choose(state, g) for g in range(1, 200)]  # the run's seeds, not a global RNG


def test_nsra_raises_w_on_improvement_and_lowers_it_after_patience():
    nsra = make("nsra_es", weight_start=0.5, weight_step=0.1, patience=2)
    state, _ = started(nsra)
    assert state.best_return == 3.0 and state.weight == 0.5
    seq = []
    for measured in (2.0, 1.0, 4.0, 0.0, 0.0, 0.0):
        w, best, stagnation = nsra.adapt(state, measured)
        state = type(state)(**{**state.__dict__, "weight": w, "best_return": best, "stagnation": stagnation})
        seq.append((round(w, 6), best, stagnation))
    assert seq == [(0.5, 3.0, 1), (0.4, 3.0, 0), (0.5, 4.0, 0), (0.5, 4.0, 1), (0.4, 4.0, 0), (0.4, 4.0, 1)]


@pytest.mark.parametrize("kind", ["ns_es", "nsr_es", "nsra_es"])
def test_saved_state_loads_back_equal(kind):
    strategy = make(kind)
    state, _ = started(strategy)
    plan = strategy.plan(state, 1)
    state, _ = strategy.update(state, plan, results(plan, np.arange(10.0), np.ones((10, 2))), noise_sum)
    saved = strategy.save(state)
    assert set(saved.arrays) == set(strategy.arrays)
    again = strategy.save(make(kind).load(saved))
    assert all(np.array_equal(again.arrays[k], v) for k, v in saved.arrays.items())
    assert again.scalars == saved.scalars
    with pytest.raises(KeyError, match="agents/theta"):
        make(kind, agents=4).load(saved)


@pytest.mark.parametrize("changes, message", [
    ({"agents": 0}, r"strategy.agents must be > 0, got 0$"),
    ({"k": -1}, r"strategy.k must be > 0, got -1$"),
    ({"behaviour": "final"}, r"strategy.behaviour must be one of xy, ram or module:function, got 'final'$"),
    ({"weight_start": 1.5, "kind": "nsra_es"}, r"strategy.weight_start must be in \(0, 1\], got 1.5$"),
    ({"weight_start": 1.0}, r"unknown key strategy.weight_start; known keys: kind, agents, k, behaviour, "),
])
def test_invalid_settings_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=r"^t: " + message):
        job_from_dict({**tiny_job(), "strategy": {"kind": "ns_es", **changes}}, "t")


def novelty_job(tmp_path, kind="nsra_es", **strategy):
    job = tiny_job(run={"generations": 4, "eval_every": 2, "eval_episodes": 1})
    job["strategy"] = {"kind": kind, **NOVELTY, **strategy}
    return write_job(tmp_path / "job.yaml", job)


def read_novelty(run_dir):
    with h5py.File(run_dir / "checkpoint.h5") as f:
        arrays = {name: f[name][...] for name in ("theta", "agents/theta", "agents/moments", "archive/behaviour",
                                                  "archive/generation", "agents/return", "obs_stats/sum")}
        return arrays, dict(f["agents"].attrs)


@pytest.mark.mpi
def test_nsra_es_is_bit_identical_on_1_2_and_3_ranks_and_across_a_resume_on_another_count(tmp_path):
    runs = run_everywhere(novelty_job(tmp_path, patience=1), tmp_path, read_novelty, split=2)
    arrays, attrs = runs[None]
    assert arrays["archive/behaviour"].shape == (3 + 2, 2) and list(arrays["archive/generation"]) == [0, 0, 0, 2, 3]
    for name, (other, other_attrs) in runs.items():
        assert other_attrs == attrs, name
        assert all(np.array_equal(arrays[k], other[k]) for k in arrays), name
    with h5py.File(tmp_path / "r2" / "metrics.h5") as f:
        assert f["agent"][0] == -1 and set(f["agent"][1:]) <= {0, 1, 2}
        assert list(f["archive_size"][...]) == [3, 3, 4, 5]
        assert np.isnan(f["reward_weight"][0]) and (f["novelty_s"][...] >= 0).all()
    proc = run_cli(["eval", tmp_path / "r2", "--episodes", "1"])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.mpi
def test_a_behaviour_the_env_cannot_give_stops_the_run_with_one_line(tmp_path):
    job = novelty_job(tmp_path, kind="ns_es", behaviour="ram")
    proc = run_cli(["train", job, "--run-dir", tmp_path / "run"], ranks=2)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "strategy.behaviour 'ram' does not fit env HalfCheetah-v5" in proc.stderr
