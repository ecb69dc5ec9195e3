"""es_mpi.load_policy: a run's policy in users' own gymnasium loop takes the actions `es-mpi eval` takes."""

import csv
import os
import sys

import numpy as np
import pytest
from helpers import ROOT, run_cli, tiny_job, write_job

import es_mpi
from es_mpi.runs.job import ConfigError

sys.path.insert(0, str(ROOT / "results"))
from play_policy import play  # noqa: E402

ENV = {"PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.parametrize("env", [
    {"id": "HalfCheetah-v5", "episode_cap": "env"},  # observation statistics, continuous actions
    {"id": "CartPole-v1"},  # discrete actions
    {"id": "myenvs:Spaces-v0", "kwargs": {"obs": "dict", "act": "multi_discrete"}},  # flattened observations
])
def test_a_plain_gymnasium_loop_gets_the_returns_of_es_mpi_eval(tmp_path, env, monkeypatch):
    job = tiny_job(env=env, policy={"action_noise": 0.0}, run={"generations": 2})
    run = tmp_path / "run"
    assert run_cli(["train", write_job(tmp_path / "job.yaml", job), "--run-dir", run], env=ENV).returncode == 0
    proc = run_cli(["eval", run, "--episodes", "2", "--csv", tmp_path / "eval.csv"], env=ENV)
    assert proc.returncode == 0, proc.stderr
    expected = [float(r["return"]) for r in csv.DictReader((tmp_path / "eval.csv").open())]
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert play(str(run), 2) == expected
    policy = es_mpi.load_policy(run)
    assert policy.theta.dtype == np.float32 and policy.theta.size == policy.policy.num_params
    assert (policy.mean is None) == (not policy.job.policy.obs_norm)


def test_a_directory_without_a_checkpoint_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        es_mpi.load_policy(tmp_path)
