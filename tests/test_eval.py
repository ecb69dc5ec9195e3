"""`es-mpi eval`: the checkpoint's noiseless policy, the same returns on any rank count, videos."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, run_cli, tiny_job, write_job

from es_mpi.commands.evaluate import CHECKPOINT_EVAL
from es_mpi.core import seeds
from es_mpi.core.obs_stats import ObsStats
from es_mpi.envs.make import make_env
from es_mpi.envs.rollout import run_episode
from es_mpi.policies.make import make_policy
from es_mpi.runs.checkpoint import checkpoint_job, read_checkpoint


def train(tmp_path, **sections):
    path = write_job(tmp_path / "job.yaml", tiny_job(**sections))
    proc = run_cli(["train", path, "--run-dir", tmp_path / "run"])
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "run"


def evaluate(run, out, *flags, ranks=None):
    proc = run_cli(["eval", run, "--csv", out, *flags], ranks=ranks)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    return proc, [float(r["return"]) for r in rows], [int(r["length"]) for r in rows]


@pytest.mark.mpi
def test_eval_gives_the_same_returns_on_1_and_2_ranks(tmp_path):
    run = train(tmp_path, run={"generations": 2})
    alone, returns, _ = evaluate(run, tmp_path / "alone.csv", "--episodes", "5")
    mpi, returns_2, _ = evaluate(run, tmp_path / "two.csv", "--episodes", "5", ranks=2)
    assert returns == returns_2 and len(set(returns)) == 5  # bit-identical, and episode seeds differ
    assert "5 episodes on 2 rank(s)" in mpi.stdout
    assert f"return mean {np.mean(returns):.1f} std {np.std(returns):.1f}" in alone.stdout


def test_eval_runs_the_noiseless_theta_with_the_checkpoint_statistics(tmp_path):
    run = train(tmp_path, policy={"action_noise": 0.5}, run={"generations": 2})
    _, returns, lengths = evaluate(run, tmp_path / "e.csv", "--episodes", "2")
    saved, attrs = read_checkpoint(run / "checkpoint.h5")
    job = checkpoint_job(attrs, run / "checkpoint.h5")
    env, limit = make_env(job.env)
    obs = ObsStats(saved.scalars["obs_stats/count"], saved.arrays["obs_stats/sum"], saved.arrays["obs_stats/sumsq"])
    mean, std = obs.mean_std()
    assert obs.count > 1  # the statistics are not the empty prior, so using them matters
    policy = make_policy(job.policy, env)
    for e in range(2):
        env_seed = seeds.derive_seed(job.run.seed, e, CHECKPOINT_EVAL)
        ep = run_episode(env, policy, saved.arrays["theta"], mean, std, limit, env_seed)
        assert (ep.ret, ep.length) == (returns[e], lengths[e])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_has_a_frame_after_reset_and_after_each_step(tmp_path, suffix):
    iio = pytest.importorskip("imageio.v3")
    run = train(tmp_path, env={"id": "InvertedPendulum-v5", "episode_cap": "env"}, run={"generations": 1})
    video = tmp_path / f"episode{suffix}"
    proc, returns, lengths = evaluate(run, tmp_path / "e.csv", "--episodes", "2", "--video", video)
    assert 1 < lengths[0] < 1000  # the pendulum falls: a short, complete episode
    assert sum(1 for _ in iio.imiter(video)) == lengths[0] + 1
    assert f"{lengths[0] + 1} frames of episode 0" in proc.stdout


def test_bad_input_exits_2_with_one_line(tmp_path):
    def refused(proc, words):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr

    refused(run_cli(["eval", tmp_path]), "no checkpoint.h5")
    refused(run_cli(["eval", tmp_path / "nope"]), "not a directory")
    run = train(tmp_path, run={"generations": 1})
    refused(run_cli(["eval", run, "--episodes", "0"]), "--episodes 0")
    refused(run_cli(["eval", run, "--video", tmp_path / "v.avi"]), ".mp4 or .gif")
    refused(run_cli(["eval", run, "--video", tmp_path / "no" / "v.mp4"]), "does not exist")


def test_missing_video_library_names_the_report_extra(tmp_path):
    run = train(tmp_path, run={"generations": 1})
    code = ("import sys; sys.modules['imageio'] = None; from es_mpi.cli import main; "
            f"sys.exit(main(['eval', {str(run)!r}, '--video', {str(tmp_path / 'v.mp4')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "imageio" in proc.stderr and "pip install 'es-mpi[report]'" in proc.stderr
    assert not (tmp_path / "v.mp4").exists()
