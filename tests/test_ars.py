"""ARS (es_mpi/strategies/ars.py) and the linear policy it trains, without MPI: plans, the step of the
paper's Algorithm 2, top-b selection, the reward shift, statistics, saved state and job errors."""

import gymnasium as gym
import h5py
import numpy as np
import pytest
from helpers import make_noise, run_cli, tiny_job, write_job
from test_batched import assert_same, reference, specs, to_spec

from es_mpi.core.noise import weighted_noise_sum
from es_mpi.core.obs_stats import ObsStats, accumulate
from es_mpi.envs.lockstep import BatchedRunner
from es_mpi.policies.make import make_policy
from es_mpi.policies.mlp import MlpPolicy
from es_mpi.runs.job import ConfigError, job_from_dict
from es_mpi.strategies.ars import Ars
from es_mpi.strategies.base import Results

NOISE = make_noise(200_000, 123)
POLICY = MlpPolicy(3, 2, (), "tanh", np.full(2, -1, np.float32), np.ones(2, np.float32), bias=False)


def noise_sum(offsets, weights):
    return weighted_noise_sum(NOISE, offsets, weights, POLICY.num_params)


def make(policy=None, **strategy):
    sections = {"policy": {"kind": "linear", "obs_norm": True, "obs_stat_fraction": 1.0, "action_noise": 0.0},
                "run": {"eval_every": 0}}
    job = job_from_dict({**tiny_job(**sections), "strategy": {"kind": "ars", **strategy}}, "test")
    return Ars(job, POLICY, 100)


def results(plan, returns, lengths=None, stats=()):
    lengths = np.full(len(plan), 10) if lengths is None else lengths
    return Results(np.asarray(returns, np.float64), np.asarray(lengths, np.int64), np.zeros((len(plan), 0)),
                   list(stats))


def eps(offset):
    return NOISE[offset:][: POLICY.num_params].astype(np.float64)


def test_linear_policy_is_weights_only_and_acts_as_m_x():
    env = gym.make("Swimmer-v5")
    job = job_from_dict(tiny_job(policy={"kind": "linear", "hidden": [64]}), "t")
    p = make_policy(job.policy, env)
    assert (p.hidden, p.bias, p.num_params) == ((), False, 8 * 2)
    theta = np.arange(p.num_params, dtype=np.float32) / 50
    obs = np.linspace(-1, 1, 8).astype(np.float32)
    np.testing.assert_allclose(p.act(p.bind(theta), obs), np.clip(obs @ theta.reshape(8, 2), -1, 1), rtol=1e-6)


def test_linear_policy_runs_bit_identically_in_lockstep_batches():
    job = job_from_dict(tiny_job(policy={"kind": "linear"}), "t")
    for env_id in ("Swimmer-v5", "Hopper-v5"):
        policy = make_policy(job.policy, gym.make(env_id))
        cases = specs(policy, 6, seed=4)
        expected = reference(env_id, {}, policy, cases, None, None, 80)
        assert_same(expected, BatchedRunner(env_id, {}, policy, 4).run([to_spec(80, *c) for c in cases], None, None))


def test_linear_policy_on_atari_is_a_one_line_error():
    class Atari:  # what make_policy sees of an ALE env: stacked frames, discrete actions
        observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        action_space = gym.spaces.Discrete(6)

    job = job_from_dict(tiny_job(policy={"kind": "linear"}), "jobs/x.yaml")
    with pytest.raises(ConfigError, match=r"^jobs/x.yaml: policy.kind linear needs flat observations"):
        make_policy(job.policy, Atari(), source="jobs/x.yaml")


def test_starts_from_zero_and_plans_both_sides_of_each_direction():
    ars = make(directions=4, nu=0.03)
    state = ars.init()
    assert not state.theta.any() and state.theta.dtype == np.float32
    plan = ars.plan(state, 0)
    assert len(plan) == 8 and plan.train.all() and plan.stats.all() and (plan.cap == 100).all()
    assert (plan.offset[::2] == plan.offset[1::2]).all() and (plan.env_seed[::2] == plan.env_seed[1::2]).all()
    assert np.array_equal(plan.scale, np.tile(np.float32([0.03, -0.03]), 4))


def test_v1_collects_no_statistics_and_does_not_normalise():
    job = job_from_dict({**tiny_job(policy={"kind": "linear", "obs_norm": False}), "strategy": {"kind": "ars"}}, "t")
    ars = Ars(job, POLICY, 100)
    assert not ars.plan(ars.init(), 0).stats.any() and ars.normaliser(ars.init()) == (None, None)


def test_step_is_alpha_over_b_sigma_r_times_the_kept_differences():
    ars = make(directions=6, top=3, step=0.05)
    state = ars.init()
    plan = ars.plan(state, 0)
    returns = np.array([5.0, 1.0, 0.0, 2.0, 9.0, 3.0, 1.0, 1.5, 0.5, 0.2, 4.0, 8.0])
    new, metrics = ars.update(state, plan, results(plan, returns), noise_sum)
    pairs = returns.reshape(6, 2)
    kept = [0, 2, 5]  # max(r+, r-): 5, 2, 9, 1.5, 0.5, 8: directions 2, 5 and 0 are the top 3
    sigma_r = pairs[kept].std()
    expected = sum((pairs[k, 0] - pairs[k, 1]) * eps(plan.offset[2 * k]) for k in kept) * 0.05 / (3 * sigma_r)
    np.testing.assert_allclose(new.theta, expected, rtol=1e-5, atol=1e-7)
    assert metrics["reward_std"] == pytest.approx(sigma_r)


def test_shift_lowers_training_returns_by_steps_times_shift():
    ars, shifted = make(directions=2, top=1, shift=1.0), make(directions=2, top=1, shift=0.0)
    plan = ars.plan(ars.init(), 0)
    # raw returns: direction 0's best side is higher, but it lived 100 steps against 10
    returns, lengths = [60.0, 0.0, 50.0, 40.0], [100, 100, 10, 10]
    with_shift, _ = ars.update(ars.init(), plan, results(plan, returns, lengths), noise_sum)
    without, _ = shifted.update(shifted.init(), plan, results(plan, returns, lengths), noise_sum)
    # with the shift: returns -40, -100, 40, 30; direction 1 is kept; without it direction 0
    e1, e0 = eps(plan.offset[2]), eps(plan.offset[0])
    np.testing.assert_allclose(with_shift.theta, 0.02 * (40 - 30) / 5.0 * e1, rtol=1e-5)
    np.testing.assert_allclose(without.theta, 0.02 * (60 - 0) / 30.0 * e0, rtol=1e-5)


def test_evaluation_episodes_are_neither_shifted_nor_in_the_step():
    job = job_from_dict({**tiny_job(policy={"kind": "linear"}, run={"eval_every": 1, "eval_episodes": 2}),
                         "strategy": {"kind": "ars", "directions": 2, "shift": 5.0}}, "t")
    ars = Ars(job, POLICY, 100)
    plan = ars.plan(ars.init(), 0)
    assert list(plan.train) == [False, False, True, True, True, True]
    returns = [1e6, -1e6, 3.0, 1.0, 2.0, 2.5]
    a, _ = ars.update(ars.init(), plan, results(plan, returns), noise_sum)
    b, _ = ars.update(ars.init(), plan, results(plan, [0, 0, *returns[2:]]), noise_sum)
    assert np.array_equal(a.theta, b.theta)


def test_equal_returns_leave_theta_unchanged():
    ars = make(directions=3)
    plan = ars.plan(ars.init(), 0)
    new, metrics = ars.update(ars.init(), plan, results(plan, np.full(6, 7.0)), noise_sum)
    assert not new.theta.any() and metrics["reward_std"] == 0


def test_v2_statistics_add_every_episode_in_plan_order():
    ars = make(directions=2)
    state = ars.init()
    plan = ars.plan(state, 0)
    rng = np.random.default_rng(0)
    blocks = [accumulate(rng.normal(size=(5, 3))) for _ in range(4)]
    new, _ = ars.update(state, plan, results(plan, [1.0, 2.0, 3.0, 0.0], stats=blocks), noise_sum)
    expected = ObsStats.empty(3)
    for block in blocks:
        expected = expected.add(block)
    assert new.obs.count == expected.count and np.array_equal(new.obs.total, expected.total)
    mean, std = ars.normaliser(new)
    np.testing.assert_allclose(mean, expected.total / expected.count, rtol=1e-6)


def test_saved_state_loads_back_equal():
    ars = make(directions=2)
    plan = ars.plan(ars.init(), 0)
    rng = np.random.default_rng(1)
    state, _ = ars.update(ars.init(), plan, results(plan, [1.0, 2.0, 3.0, 0.0],
                                                    stats=[accumulate(rng.normal(size=(4, 3)))]), noise_sum)
    saved = ars.save(state)
    again = ars.save(ars.load(saved))
    assert saved.scalars == again.scalars and set(saved.arrays) <= set(Ars.arrays)
    assert all(np.array_equal(saved.arrays[k], again.arrays[k]) for k in saved.arrays)


def test_top_above_directions_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^t: strategy.top \(b\) must be <= strategy.directions \(N\) 4, got 5$"):
        job_from_dict({**tiny_job(), "strategy": {"kind": "ars", "directions": 4, "top": 5}}, "t")


def ars_job(tmp_path, **strategy):
    job = tiny_job(env={"id": "Hopper-v5", "episode_cap": "env"},
                   policy={"kind": "linear", "obs_norm": True, "obs_stat_fraction": 1.0, "action_noise": 0.0},
                   es={"noise_table_size": 1_000_000},
                   run={"generations": 4, "eval_every": 2, "eval_episodes": 1, "checkpoint_every": 1})
    job["strategy"] = {"kind": "ars", "directions": 4, "top": 2, "step": 0.02, "nu": 0.03, "shift": 1.0, **strategy}
    return write_job(tmp_path / "job.yaml", job)


def read_state(run_dir):
    with h5py.File(run_dir / "checkpoint.h5") as f:
        return {name: f[name][...] for name in ("theta", "obs_stats/sum", "obs_stats/sumsq")}, dict(
            f["obs_stats"].attrs)


def run_everywhere(path, tmp_path, read, split: int) -> dict:
    """read(run dir) of the job trained alone, on 2 and on 3 ranks, and in two parts: `split` generations
    on 3 ranks, then resumed on 2 (keys None, 2, 3, 'resumed')."""
    runs = {}
    for ranks in (None, 2, 3):
        proc = run_cli(["train", path, "--run-dir", tmp_path / f"r{ranks}"], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        runs[ranks] = read(tmp_path / f"r{ranks}")
    first = run_cli(["train", path, "--run-dir", tmp_path / "parts", "--set", f"run.generations={split}"], ranks=3)
    assert first.returncode == 0, first.stderr
    second = run_cli(["train", path, "--run-dir", tmp_path / "parts", "--resume", "must"], ranks=2)
    assert second.returncode == 0, second.stderr
    runs["resumed"] = read(tmp_path / "parts")
    return runs


@pytest.mark.mpi
def test_ars_is_bit_identical_on_1_2_and_3_ranks_and_across_a_resume_on_another_count(tmp_path):
    runs = run_everywhere(ars_job(tmp_path), tmp_path, read_state, split=1)
    arrays, scalars = runs[None]
    assert arrays["theta"].any() and scalars["count"] > 4 * 2 * 4  # every state of every training episode
    for name, (other, other_scalars) in runs.items():
        assert other_scalars == scalars, name
        assert all(np.array_equal(arrays[k], other[k]) for k in arrays), name
    with h5py.File(tmp_path / "r2" / "metrics.h5") as f:
        assert {"reward_std", "step_norm", "theta_norm"} <= set(f) and (f["reward_std"][...] > 0).all()


@pytest.mark.mpi
def test_the_shift_never_touches_evaluation_returns(tmp_path):
    """Generation 0 evaluates M = 0 before any step, so its evaluation return cannot depend on the shift."""
    evals = []
    for shift in (0.0, 5.0):
        path = ars_job(tmp_path, shift=shift)
        run_dir = tmp_path / f"shift{shift}"
        proc = run_cli(["train", path, "--run-dir", run_dir, "--set", "run.generations=1"], ranks=2)
        assert proc.returncode == 0, proc.stderr
        with h5py.File(run_dir / "metrics.h5") as f:
            evals.append((f["eval_return"][0], f["return_mean"][0]))
    assert evals[0] == evals[1] and evals[0][0] > 0
