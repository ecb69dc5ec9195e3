"""The lockstep runner returns exactly what run_episode returns, episode by episode, for every supported task."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from helpers import ROOT

from es_mpi.envs.lockstep import BatchedRunner, supports
from es_mpi.envs.rollout import Episode, EpisodeSpec, run_episode
from es_mpi.policies.make import make_policy
from es_mpi.runs.job import load_job

JOBS = {
    "HalfCheetah-v5": "halfcheetah", "Hopper-v5": "hopper", "Walker2d-v5": "walker2d", "Humanoid-v5": "humanoid",
    "Ant-v5": "ant", "Swimmer-v5": "swimmer", "InvertedPendulum-v5": "inverted_pendulum",
    "InvertedDoublePendulum-v5": "inverted_double_pendulum",
}
FALLING = {"Hopper-v5", "Walker2d-v5", "Humanoid-v5", "Ant-v5", "InvertedPendulum-v5", "InvertedDoublePendulum-v5"}
CAP = 200


def specs(policy, count: int, seed: int) -> list[tuple]:
    """Arguments of `count` episodes: perturbed job policies, ES-sized and large perturbations (which fall
    early), with and without action noise and statistics. Noise streams are given as seeds, so that each
    side of a comparison draws from a fresh generator."""
    rng = np.random.default_rng(seed)
    base = policy.init_theta(rng)
    out = []
    for j in range(count):
        scale = np.float32(0.02 if j % 2 else 0.5)
        theta = base + scale * rng.standard_normal(policy.num_params, dtype=np.float32)
        noise_seed = int(rng.integers(1 << 30)) if j % 3 else None
        out.append((theta, int(rng.integers(1 << 30)), noise_seed, 0.01, j % 4 in (0, 1)))
    return out


def to_spec(cap, theta, env_seed, noise_seed, noise_std, collect) -> EpisodeSpec:
    rng = None if noise_seed is None else np.random.default_rng(noise_seed)
    return EpisodeSpec(theta, env_seed, cap, rng, noise_std, collect)


def assert_same(expected: list[Episode], got: list[Episode]) -> None:
    assert len(expected) == len(got)
    for i, (a, b) in enumerate(zip(expected, got)):
        assert (a.ret, a.length) == (b.ret, b.length), f"episode {i}"
        assert (a.stats is None) == (b.stats is None), f"episode {i}"
        if a.stats is not None:
            assert a.stats.count == b.stats.count
            assert np.array_equal(a.stats.total, b.stats.total) and np.array_equal(a.stats.total_sq, b.stats.total_sq)


def count_batch_steps(runner: BatchedRunner) -> list[int]:
    """Spy on the runner's batch: the returned list gets the number of simulations of every step call."""
    stepped: list[int] = []
    step = runner.batch.step

    def spy(ids=None, nstep=1, **kw):
        stepped.append(runner.slots if ids is None else len(ids))
        return step(ids, nstep=nstep, **kw)

    runner.batch.step = spy
    return stepped


def reference(env_id: str, env_kwargs: dict, policy, args: list[tuple], mean, std, cap: int) -> list[Episode]:
    env = gym.make(env_id, **env_kwargs).unwrapped
    out = []
    for s in (to_spec(cap, *a) for a in args):
        out.append(run_episode(env, policy, s.theta, mean, std, cap, s.env_seed, s.noise_rng, s.noise_std,
                               s.collect_stats))
    return out


def job_policy(env_id: str, env_kwargs: dict | None = None):
    job = load_job(ROOT / "jobs" / f"{JOBS[env_id]}.yaml", [])
    return make_policy(job.policy, gym.make(env_id, **(env_kwargs or {})).unwrapped)


@pytest.mark.parametrize("normalised", [False, True], ids=["raw", "normalised"])
@pytest.mark.parametrize("env_id", list(JOBS))
def test_batched_episodes_equal_run_episode(env_id, normalised):
    policy = job_policy(env_id)
    args = specs(policy, 10, seed=len(env_id) + normalised)
    mean = std = None
    if normalised:
        rng = np.random.default_rng(7)
        mean = (0.1 * rng.standard_normal(policy.obs_dim)).astype(np.float32)
        std = (0.5 + rng.random(policy.obs_dim)).astype(np.float32)
    expected = reference(env_id, {}, policy, args, mean, std, CAP)
    if env_id in FALLING:  # finished episodes hand their slots on while the others run
        assert min(e.length for e in expected) < CAP
    for slots in (1, 3, 8):
        got = BatchedRunner(env_id, {}, policy, slots).run([to_spec(CAP, *a) for a in args], mean, std)
        assert_same(expected, got)


def test_contact_forces_are_exercised():
    """Humanoid's cfrc_ext (the observation's last 78 entries) is nonzero in the compared statistics."""
    policy = job_policy("Humanoid-v5")
    args = [(a[0], a[1], a[2], a[3], True) for a in specs(policy, 2, seed=1)]
    got = BatchedRunner("Humanoid-v5", {}, policy, 2).run([to_spec(CAP, *a) for a in args], None, None)
    assert_same(reference("Humanoid-v5", {}, policy, args, None, None, CAP), got)
    assert all(np.abs(e.stats.total[-78:]).sum() > 0 for e in got)


@pytest.mark.parametrize("env_id, env_kwargs", [
    ("HalfCheetah-v5", {"exclude_current_positions_from_observation": False, "frame_skip": 3}),
    ("Hopper-v5", {"terminate_when_unhealthy": False, "healthy_reward": 2.5, "reset_noise_scale": 0.05}),
    ("Walker2d-v5", {"healthy_z_range": (0.5, 3.0), "ctrl_cost_weight": 0.1}),
    ("Swimmer-v5", {"exclude_current_positions_from_observation": False, "forward_reward_weight": 0.7}),
    ("Humanoid-v5", {"include_cinert_in_observation": False, "contact_cost_range": (-1.0, 0.5)}),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False, "main_body": "torso", "contact_force_range": (-2, 2)}),
    ("InvertedDoublePendulum-v5", {"healthy_reward": 3.0}),
])
def test_simple_env_kwargs_are_honoured(env_id, env_kwargs):
    assert supports(env_id, env_kwargs)
    policy = job_policy(env_id, env_kwargs)
    args = specs(policy, 6, seed=3)
    got = BatchedRunner(env_id, env_kwargs, policy, 4).run([to_spec(100, *a) for a in args], None, None)
    assert_same(reference(env_id, env_kwargs, policy, args, None, None, 100), got)


def test_short_caps_and_fewer_episodes_than_slots():
    policy = job_policy("HalfCheetah-v5")
    args = specs(policy, 3, seed=5)
    runner = BatchedRunner("HalfCheetah-v5", {}, policy, 8)
    for cap in (0, 1, 129):
        got = runner.run([to_spec(cap, *a) for a in args], None, None)
        assert_same(reference("HalfCheetah-v5", {}, policy, args, None, None, cap), got)
    assert runner.run([], None, None) == []


def test_specs_are_taken_lazily_with_caps_of_their_own():
    """The trainer feeds a generator that pulls tasks from the dynamic counter, mixing evaluation
    episodes (the env's limit) and training episodes (the generation's cap)."""
    policy = job_policy("Hopper-v5")
    args = specs(policy, 7, seed=9)
    caps = [0, 200, 1, 50, 200, 129, 3]
    expected = [reference("Hopper-v5", {}, policy, [a], None, None, c)[0] for a, c in zip(args, caps)]
    taken = []

    def lazily():
        for a, c in zip(args, caps):
            taken.append(c)
            yield to_spec(c, *a)

    got = BatchedRunner("Hopper-v5", {}, policy, 3).run(lazily(), None, None)
    assert taken == caps
    assert_same(expected, got)


def test_supports_only_known_tasks_and_simple_kwargs():
    assert supports("Humanoid-v5", {}) and supports("Hopper-v5", {"healthy_angle_range": [-0.3, 0.3]})
    assert not supports("HalfCheetah-v4", {})
    assert not supports("Pusher-v5", {})
    assert not supports("CartPole-v1", {})
    assert not supports("HalfCheetah-v5", {"xml_file": "half_cheetah.xml"})
    assert not supports("HalfCheetah-v5", {"render_mode": "human"})
    assert not supports("Hopper-v5", {"healthy_angle_range": {"low": 0}})
    assert not supports("HalfCheetah-v5", {"healthy_reward": 1.0})  # not an argument of that env
    with pytest.raises(ValueError):
        BatchedRunner("HalfCheetah-v5", {"xml_file": "x.xml"}, job_policy("HalfCheetah-v5"), 2)


def test_limit_caps_the_episodes_in_flight_without_changing_results():
    policy = job_policy("Hopper-v5")
    args = specs(policy, 9, seed=4)
    runner = BatchedRunner("Hopper-v5", {}, policy, 6)
    stepped = count_batch_steps(runner)
    got = runner.run([to_spec(CAP, *a) for a in args], None, None, limit=lambda: 2)
    assert_same(reference("Hopper-v5", {}, policy, args, None, None, CAP), got)
    assert max(stepped) == 2


@pytest.mark.parametrize("with_limit", [False, True], ids=["queue-ends", "limit-0"])
def test_the_last_episode_in_flight_leaves_the_batch(with_limit):
    """Once no spec is left (the queue ends, or under dynamic assignment `limit()` says 0), a lone
    episode finishes in the gymnasium env, where it steps faster, from the batch's state mid-episode and
    mid noise block, with the same result."""
    policy = job_policy("HalfCheetah-v5")  # never terminates: the caps decide every length
    args = specs(policy, 3, seed=6)
    caps = [10, 150, 20]  # the long one has action noise and statistics
    runner = BatchedRunner("HalfCheetah-v5", {}, policy, 3)
    stepped, taken = count_batch_steps(runner), []

    def lazily():
        for c, a in zip(caps, args):
            taken.append(c)
            yield to_spec(c, *a)

    got = runner.run(lazily(), None, None, limit=(lambda: len(caps) - len(taken)) if with_limit else None)
    expected = [reference("HalfCheetah-v5", {}, policy, [a], None, None, c)[0] for c, a in zip(caps, args)]
    assert_same(expected, got)
    assert len(stepped) == 20 and [e.length for e in got] == caps
