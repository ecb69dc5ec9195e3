"""Atari: preprocessing, determinism under reset(seed=...), job validation, the reference batch, and
short Pong runs (bit-identical on 1 and 2 ranks, checkpoint and resume with the reference batch)."""

import h5py
import numpy as np
import pytest
from helpers import read_theta, run_cli, write_job

from es_mpi.envs.atari import AtariEnv, _area_matrix, is_ale_id
from es_mpi.envs.make import make_env
from es_mpi.policies.make import make_policy
from es_mpi.policies.reference_batch import collect_reference_batch
from es_mpi.runs.job import ConfigError, EnvConfig, PolicyConfig, job_from_dict


def pong(**atari) -> tuple[AtariEnv, int]:
    return make_env(EnvConfig(id="ALE/Pong-v5", atari=_atari(**atari)))


def _atari(**values):
    from es_mpi.runs.job import AtariConfig

    return AtariConfig(**values)


def play(env, seed: int, steps: int = 60) -> tuple[np.ndarray, float]:
    obs, _ = env.reset(seed=seed)
    frames, total = [obs], 0.0
    for i in range(steps):
        obs, reward, terminated, truncated, _ = env.step((i * 5) % env.action_space.n)
        frames.append(obs)
        total += reward
        if terminated or truncated:
            break
    return np.array(frames), total


def tiny_pong_job(**sections) -> dict:
    job = {
        "env": {"id": "ALE/Pong-v5", "episode_cap": "adaptive",
                "adaptive": {"start": 80, "fraction": 1.0, "ratio": 1.5}},
        "policy": {"kind": "cnn", "obs_norm": False, "action_noise": 0.0, "ref_batch": 8},
        "es": {"pairs": 3, "sigma": 0.02, "noise_table_size": 1_000_000},
        "run": {"seed": 1, "generations": 2, "eval_every": 0, "checkpoint_every": 1},
    }
    for name, values in sections.items():
        job[name].update(values)
    return job


def test_ale_ids_are_recognised():
    assert is_ale_id("ALE/Pong-v5") and is_ale_id("ALE/Seaquest-v5") and is_ale_id("BreakoutNoFrameskip-v4")
    assert not is_ale_id("HalfCheetah-v5") and not is_ale_id("NoSuchGame-v0")


def test_observations_are_stacked_84x84_grayscale_uint8():
    env, limit = pong()
    obs, info = env.reset(seed=0)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert limit == 108_000 // 4 and env.action_space.n == 6
    # After a reset every frame of the stack is the first frame; a step shifts the newest in last.
    assert all(np.array_equal(obs[..., k], obs[..., 0]) for k in range(4))
    nxt, reward, terminated, truncated, _ = env.step(0)
    assert nxt.shape == obs.shape and nxt.dtype == np.uint8 and isinstance(reward, float)
    assert np.array_equal(nxt[..., :3], obs[..., 1:]) and not terminated and not truncated
    stacked, _ = pong(frame_stack=2)
    assert stacked.reset(seed=0)[0].shape == (84, 84, 2)


def test_the_same_seed_gives_the_same_episode_whatever_ran_before():
    env, _ = pong()
    first, _ = play(env, 3)
    play(env, 8, 150)
    env.step(2)
    again, _ = play(env, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, play(env, 4)[0])  # no-op starts differ by seed
    other, _ = pong()
    assert np.array_equal(first, play(other, 3)[0])  # and so does a fresh process's env


def test_sticky_actions_are_drawn_from_the_seed():
    env, _ = pong(repeat_action_probability=0.25)
    a, _ = play(env, 5, 200)
    play(env, 6, 30)
    b, _ = play(env, 5, 200)
    plain, _ = pong()
    assert np.array_equal(a, b) and not np.array_equal(a, play(plain, 5, 200)[0])


@pytest.mark.parametrize("skip", [1, 4, 5])
def test_frame_skip_repeats_each_action_for_that_many_frames(skip):
    env, limit = pong(frame_skip=skip, noop_max=0)
    env.reset(seed=0)
    start = env.ale.getEpisodeFrameNumber()
    for _ in range(10):
        env.step(0)
    assert env.ale.getEpisodeFrameNumber() - start == 10 * skip and limit == 108_000 // skip


def test_noop_starts_play_between_1_and_noop_max_frames():
    env, _ = pong(noop_max=30)
    base = pong(noop_max=0)[0]
    base.reset(seed=0)
    zero = base.ale.getEpisodeFrameNumber()
    counts = set()
    for seed in range(12):
        env.reset(seed=seed)
        counts.add(env.ale.getEpisodeFrameNumber() - zero)
    assert min(counts) >= 1 and max(counts) <= 30 and len(counts) > 3


def test_frames_are_the_area_resize_of_the_max_of_the_last_two_screens():
    rows, cols = _area_matrix(210, 84), _area_matrix(160, 84)
    np.testing.assert_allclose(rows.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(cols.sum(axis=1), 1, rtol=1e-6)
    env, _ = pong()
    rng = np.random.default_rng(0)
    env._screens[:] = rng.integers(0, 256, env._screens.shape, dtype=np.uint8)
    pooled = np.maximum(env._screens[0], env._screens[1]).astype(np.float64)
    expected = rows.astype(np.float64) @ pooled @ cols.T.astype(np.float64)
    assert np.abs(env._frame().astype(np.float64) - expected).max() <= 0.5 + 1e-3
    env._screens[:] = 77
    assert np.all(env._frame() == 77)


def test_cnn_jobs_need_greedy_actions_and_no_observation_normalisation():
    base = {"env": {"id": "ALE/Pong-v5"}, "policy": {"kind": "cnn", "obs_norm": False, "action_noise": 0.0}}
    assert job_from_dict(base, "j.yaml").policy.kind == "cnn"
    for key, value, words in (("obs_norm", True, "policy.obs_norm must be false"),
                              ("action_noise", 0.01, "policy.action_noise must be 0")):
        raw = {"env": base["env"], "policy": {**base["policy"], key: value}}
        with pytest.raises(ConfigError, match=words):
            job_from_dict(raw, "j.yaml")
    with pytest.raises(ConfigError, match="env.atari.frame_skip"):
        job_from_dict({"env": {"id": "ALE/Pong-v5", "atari": {"frame_skip": 0}}, "policy": base["policy"]}, "j.yaml")


def test_cnn_only_with_ale_envs_and_ale_envs_only_with_cnn():
    env, _ = pong()
    with pytest.raises(ConfigError, match="policy.kind cnn for ALE"):
        make_policy(PolicyConfig(), env)
    cheetah, _ = make_env(EnvConfig(id="HalfCheetah-v5"))
    with pytest.raises(ConfigError, match="needs an ALE"):
        make_policy(PolicyConfig(kind="cnn", obs_norm=False, action_noise=0.0), cheetah)
    with pytest.raises(ConfigError, match="env.kwargs"):
        make_env(EnvConfig(id="ALE/Pong-v5", kwargs={"obs_type": "rgb"}))


def test_reference_batch_depends_only_on_the_run_seed():
    env, _ = pong()
    a = collect_reference_batch(env, 6, 0)
    play(env, 9, 20)
    b = collect_reference_batch(env, 6, 0)
    c = collect_reference_batch(env, 6, 1)
    assert a.shape == (6, 84, 84, 4) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len({x.tobytes() for x in a}) == 6  # spread over the play, not copies of one frame


@pytest.mark.mpi
def test_pong_run_is_bit_identical_on_1_and_2_ranks(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_pong_job())
    runs = {}
    for ranks in (1, 2):
        runs[ranks] = tmp_path / f"r{ranks}"
        proc = run_cli(["train", path, "--run-dir", runs[ranks]], ranks=ranks, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_theta(runs[1]), read_theta(runs[2]))
    with h5py.File(runs[1] / "metrics.h5") as a, h5py.File(runs[2] / "metrics.h5") as b:
        for col in ("return_mean", "return_max", "timesteps", "eval_return"):
            assert np.array_equal(a[col][...], b[col][...], equal_nan=True), col
        assert a["timesteps"][-1] > 0
    with h5py.File(runs[1] / "checkpoint.h5") as a, h5py.File(runs[2] / "checkpoint.h5") as b:
        assert a["ref_batch"].shape == (8, 84, 84, 4) and a["ref_batch"].dtype == np.uint8
        assert np.array_equal(a["ref_batch"][...], b["ref_batch"][...])
        assert a["ref_batch"].attrs["units"] and a["ref_batch"].attrs["description"]


def test_pong_resume_restores_the_reference_batch_and_continues_bit_identically(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_pong_job())
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(["train", path, "--run-dir", whole], timeout=120).returncode == 0
    first = run_cli(["train", path, "--run-dir", parts, "--set", "run.generations=1"], timeout=120)
    assert first.returncode == 0, first.stderr
    with h5py.File(parts / "checkpoint.h5") as f:
        stored = f["ref_batch"][...]
    # A different batch in the checkpoint must be the one the resumed run uses: then the result differs.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in ("checkpoint.h5", "job.yaml", "metrics.h5"):
        (tampered / name).write_bytes((parts / name).read_bytes())
    with h5py.File(tampered / "checkpoint.h5", "r+") as f:
        f["ref_batch"][...] = stored[::-1] // 2
    second = run_cli(["train", path, "--run-dir", parts, "--resume", "must"], timeout=120)
    assert second.returncode == 0, second.stderr
    assert "resuming at generation 1" in second.stdout
    assert np.array_equal(read_theta(whole), read_theta(parts))
    with h5py.File(parts / "checkpoint.h5") as f:
        assert np.array_equal(f["ref_batch"][...], stored)
    third = run_cli(["train", path, "--run-dir", tampered, "--resume", "must"], timeout=120)
    assert third.returncode == 0, third.stderr
    with h5py.File(whole / "metrics.h5") as a, h5py.File(tampered / "metrics.h5") as b:
        rows_differ = not np.array_equal(a["return_mean"][1:], b["return_mean"][1:])
    assert rows_differ or not np.array_equal(read_theta(whole), read_theta(tampered))


def test_eval_of_a_pong_run_uses_its_reference_batch_and_records_the_ale_screen(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    path = write_job(tmp_path / "job.yaml", tiny_pong_job(run={"generations": 1}))
    run = tmp_path / "run"
    assert run_cli(["train", path, "--run-dir", run], timeout=120).returncode == 0
    video, table = tmp_path / "pong.mp4", tmp_path / "episodes.csv"
    proc = run_cli(["eval", run, "--episodes", "1", "--video", video, "--csv", table], timeout=300)
    assert proc.returncode == 0, proc.stderr
    length = int(table.read_text().splitlines()[1].split(",")[3])
    frames = list(iio.imiter(video))
    assert len(frames) == length + 1 and frames[0].shape[-1] == 3  # colour screens, one per step and reset
