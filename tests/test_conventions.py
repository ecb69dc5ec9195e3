"""The conventions users bring from other tools: scientific numbers, a fixed integer episode cap,
gymnasium's max_episode_steps for every env, and one-line errors from the analysis scripts."""

import subprocess
import sys

import h5py
import pytest
from helpers import ROOT, run_cli, tiny_job, write_job

from es_mpi.envs.make import make_env
from es_mpi.runs.job import ConfigError, EnvConfig, job_from_dict, load_job


def test_scientific_numbers_are_numbers_in_job_files_and_in_set(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("env: {id: HalfCheetah-v5}\nes: {sigma: 1e-2, noise_table_size: 2.5e8}\n")
    job = load_job(path)
    assert job.es.sigma == 0.01 and job.es.noise_table_size == 250_000_000
    job = load_job(path, ["es.sigma=5E-3", "optimizer.lr=1e-3", "run.generations=1e3"])
    assert (job.es.sigma, job.optimizer.lr, job.run.generations) == (0.005, 0.001, 1000)
    with pytest.raises(ConfigError, match="run.generations must be an integer"):
        load_job(path, ["run.generations=1.5e0"])  # not a whole number
    assert job_from_dict({"env": {"id": "X-v0", "kwargs": {"name": "1e5"}}}, "t").env.kwargs == {"name": "1e5"}


def test_a_refused_set_value_is_blamed_on_the_set_not_the_job_file(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job())
    with pytest.raises(ConfigError, match=r"es\.sigma must be a number, got 'abc' \(from --set es\.sigma=abc\)"):
        load_job(path, ["es.sigma=abc"])
    proc = run_cli(["train", path, "--set", "es.sigma=abc", "--run-dir", tmp_path / "run"])
    assert proc.returncode == 2 and "(from --set es.sigma=abc)" in proc.stderr and "Traceback" not in proc.stderr


def test_an_integer_episode_cap_caps_training_and_evaluation_of_any_env(tmp_path):
    assert make_env(EnvConfig(id="CartPole-v1", episode_cap=5000))[1] == 5000
    assert make_env(EnvConfig(id="HalfCheetah-v5", episode_cap=30))[1] == 30
    with pytest.raises(ConfigError, match="env.episode_cap must be >= 1 steps"):
        job_from_dict({"env": {"id": "HalfCheetah-v5", "episode_cap": 0}}, "t")
    job = tiny_job(env={"episode_cap": 30}, run={"generations": 2, "eval_every": 1})
    run = tmp_path / "run"
    proc = run_cli(["train", write_job(tmp_path / "job.yaml", job), "--run-dir", run])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(run / "metrics.h5") as f:  # HalfCheetah never ends early: every episode runs to the cap
        assert list(f["length_max"][...]) == [30, 30] and list(f["eval_length"][...]) == [30.0, 30.0]
        assert list(f["episode_cap"][...]) == [30, 30]


def test_max_episode_steps_is_the_limit_for_gymnasium_and_ale_ids_alike():
    assert make_env(EnvConfig(id="Pendulum-v1", kwargs={"max_episode_steps": 50}))[1] == 50
    env, limit = make_env(EnvConfig(id="ALE/Pong-v5", kwargs={"max_episode_steps": 100}))
    assert limit == 100 and env.reset(seed=0)[0].shape == (84, 84, 4)


@pytest.mark.parametrize("script", ["summary_table.py", "learning_curves.py", "time_breakdown.py",
                                    "play_policy.py"])
def test_results_scripts_answer_bad_input_with_one_line_and_status_2(tmp_path, script):
    proc = subprocess.run([sys.executable, str(ROOT / "results" / script), str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"{script}: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
