"""Users' own environments: es-mpi steps exactly what `gym.make` returns (the author's wrappers kept), and
every standard space kind has a path (README "Your own environment")."""

import csv
import os

import gymnasium as gym
import h5py
import myenvs  # registers MyPendulum-v0, MyHopper-v0 and Spaces-v0
import numpy as np
import pytest
from helpers import ROOT, run_cli, write_job

from es_mpi.commands.evaluate import CHECKPOINT_EVAL
from es_mpi.core import seeds
from es_mpi.core.noise import fill_noise
from es_mpi.engine.context import lockstep_gap
from es_mpi.envs.make import make_env
from es_mpi.policies.make import make_policy
from es_mpi.runs.job import ConfigError, EnvConfig, job_from_dict
from es_mpi.strategies import STRATEGIES

ENV = {"PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def pendulum_job(**run) -> dict:
    return {"env": {"id": "myenvs:MyPendulum-v0"}, "policy": {"hidden": [8], "obs_norm": False},
            "es": {"pairs": 3, "sigma": 0.1, "noise_table_size": 100_000},
            "run": {"seed": 5, "generations": 1, "eval_every": 1, "eval_episodes": 2, **run}}


def plain_return(theta: np.ndarray, policy, env_seed: int, noise_rng=None, noise_std: float = 0.0) -> float:
    """The return of `theta` in a plain gymnasium loop over gym.make's env (its TimeLimit included)."""
    env = gym.make("MyPendulum-v0")
    obs, _ = env.reset(seed=env_seed)
    layers, total, steps = policy.bind(theta), 0.0, 0
    while True:
        noise = None
        if noise_rng is not None:
            if steps % 128 == 0:
                block = noise_rng.standard_normal((128, policy.noise_dim), dtype=np.float32) * np.float32(noise_std)
            noise = block[steps % 128]
        obs, reward, terminated, truncated, _ = env.step(policy.act(layers, obs, noise))
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            return total


def test_training_and_eval_returns_equal_a_plain_gym_make_loop(tmp_path):
    raw = pendulum_job()
    path, run = write_job(tmp_path / "job.yaml", raw), tmp_path / "run"
    proc = run_cli(["train", path, "--run-dir", run], ranks=2, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "gymnasium, one episode at a time (myenvs:MyPendulum-v0 has no lockstep model" in proc.stdout
    job = job_from_dict(raw, "job")
    env, limit = make_env(job.env)
    assert limit == 200
    policy = make_policy(job.policy, env)
    strategy = STRATEGIES["openai_es"](job, policy, limit)
    state = strategy.init()
    plan = strategy.plan(state, 0)
    noise = np.empty(job.es.noise_table_size, np.float32)
    fill_noise(noise, job.es.noise_seed)
    returns = []
    for i in range(len(plan)):
        theta, o = state.theta, plan.offset[i]
        if o >= 0:
            theta = theta + plan.scale[i] * noise[o : o + policy.num_params]
        rng = seeds.stream(job.run.seed, 0, int(plan.noise_key[i]), seeds.ACTION_NOISE) if plan.train[i] else None
        returns.append(plain_return(theta, policy, int(plan.env_seed[i]), rng, job.policy.action_noise))
    returns = np.array(returns)
    with h5py.File(run / "metrics.h5") as f:
        assert f["eval_return"][0] == returns[~plan.train].mean()
        assert f["return_mean"][0] == returns[plan.train].mean() and f["return_max"][0] == returns[plan.train].max()
        assert f["return_mean"][0] > 10_000  # the reward wrapper's bonus is in es-mpi's returns
    with h5py.File(run / "checkpoint.h5") as f:
        trained = f["theta"][...]
    proc = run_cli(["eval", run, "--episodes", "2", "--csv", tmp_path / "eval.csv"], env=ENV)
    assert proc.returncode == 0, proc.stderr
    got = [float(r["return"]) for r in csv.DictReader((tmp_path / "eval.csv").open())]
    assert got == [plain_return(trained, policy, seeds.derive_seed(job.run.seed, e, CHECKPOINT_EVAL)) for e in range(2)]


def test_a_wrapped_mujoco_task_leaves_the_lockstep_path_and_the_start_up_line_says_why(tmp_path):
    job = {"env": {"id": "myenvs:MyHopper-v0"}, "policy": {"hidden": [4]},
           "es": {"pairs": 1, "noise_table_size": 10_000}, "run": {"generations": 1, "eval_every": 0}}
    proc = run_cli(["train", write_job(tmp_path / "job.yaml", job), "--run-dir", tmp_path / "run"], env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "episodes: gymnasium, one episode at a time (myenvs:MyHopper-v0 has no lockstep model" in proc.stdout
    job["env"]["id"] = "Hopper-v5"
    proc = run_cli(["train", write_job(tmp_path / "job.yaml", job), "--run-dir", tmp_path / "plain"])
    assert proc.returncode == 0 and "episodes: lockstep MuJoCo batches of 8 per rank" in proc.stdout
    # the same id, wrapped (as a package re-registering it would make it): not the modelled task
    plain = job_from_dict(job, "t")
    env, _ = make_env(plain.env)
    policy = make_policy(plain.policy, env)
    assert lockstep_gap(plain, env, policy) == ""
    assert lockstep_gap(plain, myenvs.wrapped_hopper(), policy) == "the env is wrapped"


@pytest.mark.parametrize(("act", "kind", "outputs"), [
    ("discrete", "discrete", 3), ("multi_discrete", "multi_discrete", 5), ("multi_binary", "multi_binary", 3),
    ("box", "box", 2)])
@pytest.mark.parametrize("obs", ["box", "dict", "tuple"])
def test_every_standard_space_has_a_policy_whose_actions_the_env_accepts(obs, act, kind, outputs):
    env, _ = make_env(EnvConfig(id="Spaces-v0", kwargs={"obs": obs, "act": act}))
    flat = gym.spaces.flatdim(gym.make("Spaces-v0", obs=obs, act=act).observation_space)
    assert env.observation_space.shape == (flat,)
    policy = make_policy(job_from_dict({"env": {"id": "Spaces-v0"}}, "t").policy, env)
    assert (policy.kind, policy.sizes[0], policy.sizes[-1]) == (kind, flat, outputs)
    theta = policy.init_theta(np.random.default_rng(0)) * 100
    obs_value, _ = env.reset(seed=0)
    for _ in range(5):
        action = policy.act(policy.bind(theta), obs_value.astype(np.float32))
        assert env.action_space.contains(action if kind != "box" else action.astype(np.float32)), action
        obs_value, *_ = env.step(action)


def test_discrete_actions_take_the_argmax_plus_the_start_and_noise_moves_the_scores():
    env, _ = make_env(EnvConfig(id="Spaces-v0", kwargs={"act": "discrete"}))
    policy = make_policy(job_from_dict({"env": {"id": "Spaces-v0"}, "policy": {"hidden": []}}, "t").policy, env)
    theta = np.zeros(policy.num_params, np.float32)
    theta[-3:] = [0.0, 1.0, 0.5]  # output biases: scores of actions -1, 0, 1
    layers = policy.bind(theta)
    assert policy.act(layers, np.zeros(3, np.float32)) == 0
    assert policy.act(layers, np.zeros(3, np.float32), np.float32([0, 0, 0.6])) == 1


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"obs": "text"}, "Text observation space"), ({"act": "tuple"}, "action space Tuple")])
def test_unsupported_spaces_are_one_line_errors_naming_the_space(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        env, _ = make_env(EnvConfig(id="Spaces-v0", kwargs=kwargs))
        make_policy(job_from_dict({"env": {"id": "Spaces-v0"}}, "t").policy, env)


def test_bins_on_discrete_actions_name_the_fix():
    env, _ = make_env(EnvConfig(id="CartPole-v1"))
    cfg = job_from_dict({"env": {"id": "CartPole-v1"}, "policy": {"actions": "uniform:5"}}, "t").policy
    with pytest.raises(ConfigError, match="use policy.actions: continuous"):
        make_policy(cfg, env)
