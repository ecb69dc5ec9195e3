"""A stopped and resumed run continues bit-identically to one that never stopped."""

import h5py
import numpy as np
import pytest
from helpers import read_theta, run_cli, tiny_job, write_job

from es_mpi.runs.checkpoint import SCHEMA_VERSION, read_checkpoint
from es_mpi.runs.job import ConfigError


def test_resume_with_raised_budget_continues_bit_identically(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 4, "checkpoint_every": 2}))
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(["train", path, "--run-dir", whole]).returncode == 0
    first = run_cli(["train", path, "--run-dir", parts, "--set", "run.generations=2"])
    assert first.returncode == 0, first.stderr
    second = run_cli(["train", path, "--run-dir", parts, "--resume", "must"])
    assert second.returncode == 0, second.stderr
    assert "resuming at generation 2" in second.stdout
    assert np.array_equal(read_theta(whole), read_theta(parts))
    with h5py.File(whole / "metrics.h5") as a, h5py.File(parts / "metrics.h5") as b:
        assert list(b["generation"][...]) == [0, 1, 2, 3]
        for col in ("return_mean", "timesteps", "eval_return", "episode_cap"):
            assert np.array_equal(a[col][...], b[col][...], equal_nan=True), col
    with h5py.File(parts / "checkpoint.h5") as f:
        assert f.attrs["generation"] == 4 and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["theta"].attrs["units"] and f["theta"].attrs["description"]


@pytest.mark.mpi
def test_resume_on_another_rank_count_matches(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 3}))
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(["train", path, "--run-dir", whole], ranks=2).returncode == 0
    assert run_cli(["train", path, "--run-dir", parts, "--set", "run.generations=1"], ranks=3).returncode == 0
    assert run_cli(["train", path, "--run-dir", parts, "--resume", "auto"]).returncode == 0
    assert np.array_equal(read_theta(whole), read_theta(parts))


def test_metrics_rows_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 3, "checkpoint_every": 2}))
    run = tmp_path / "run"
    assert run_cli(["train", path, "--run-dir", run, "--set", "run.generations=3"]).returncode == 0
    # Pretend the process died after metrics row 3 but before its checkpoint: roll checkpoint back to gen 2.
    ref = tmp_path / "ref"
    assert run_cli(["train", path, "--run-dir", ref, "--set", "run.generations=2"]).returncode == 0
    (run / "checkpoint.h5").write_bytes((ref / "checkpoint.h5").read_bytes())
    proc = run_cli(["train", path, "--run-dir", run, "--set", "run.generations=3", "--resume", "auto"])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(run / "metrics.h5") as f:
        assert list(f["generation"][...]) == [0, 1, 2]


def test_truncated_checkpoint_is_named_in_the_error(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 1}))
    run = tmp_path / "run"
    assert run_cli(["train", path, "--run-dir", run]).returncode == 0
    data = (run / "checkpoint.h5").read_bytes()
    (run / "checkpoint.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="checkpoint.h5"):
        read_checkpoint(run / "checkpoint.h5")
    proc = run_cli(["train", path, "--run-dir", run, "--resume", "auto"])
    assert proc.returncode == 2 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_metrics_written_before_a_new_column_keep_their_rows_on_resume(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 2}))
    run = tmp_path / "run"
    assert run_cli(["train", path, "--run-dir", run]).returncode == 0
    # An older es-mpi wrote no length_max column: drop it by rewriting the file without it.
    with h5py.File(run / "metrics.h5") as f:
        old = {k: (f[k][...], dict(f[k].attrs)) for k in f if k != "length_max"}
        attrs = dict(f.attrs)
    with h5py.File(run / "metrics.h5", "w", libver="latest") as f:
        for k, (data, a) in old.items():
            maxshape = (None,) + data.shape[1:]
            f.create_dataset(k, data=data, maxshape=maxshape, chunks=True).attrs.update(a)
        f.attrs.update(attrs)
    proc = run_cli(["train", path, "--run-dir", run, "--set", "run.generations=3", "--resume", "must"])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(run / "metrics.h5") as f:
        assert list(f["generation"][...]) == [0, 1, 2]
        assert np.array_equal(f["return_mean"][:2], old["return_mean"][0])
        assert f["length_max"][0] == f["length_max"][1] == -1 and f["length_max"][2] >= f["length_mean"][2] > 0


def test_bookkeeping_keys_may_change_on_resume_and_the_parameters_stay_bit_identical(tmp_path):
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 4, "checkpoint_every": 2,
                                                           "eval_every": 2, "eval_episodes": 2}))
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(["train", path, "--run-dir", whole]).returncode == 0
    assert run_cli(["train", path, "--run-dir", parts, "--set", "run.generations=2"]).returncode == 0
    changed = ["--set", "run.checkpoint_every=1", "--set", "run.eval_every=1", "--set", "run.eval_episodes=1"]
    proc = run_cli(["train", path, "--run-dir", parts, "--resume", "must", *changed])
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_theta(whole), read_theta(parts))
    with h5py.File(parts / "metrics.h5") as f:
        assert np.isfinite(f["eval_return"][...]).tolist() == [True, False, True, True]  # the new cadence
    proc = run_cli(["train", path, "--run-dir", parts, "--resume", "auto", "--set", "es.sigma=0.1"])
    assert proc.returncode == 2 and "es.sigma: 0.05 -> 0.1" in proc.stderr
    assert ("run.eval_every, run.eval_episodes, run.checkpoint_every, run.tensorboard may change on resume"
            in proc.stderr)
