"""Bad input: exit status 2, one line naming the problem, no traceback, nothing destroyed."""

import subprocess
import sys

import h5py
import pytest
import yaml
from helpers import ROOT, run_cli, tiny_job, write_job


def assert_clean_refusal(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip() and "settotalmass" not in x]
    assert len(lines) <= 2 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_unknown_key_exits_2(tmp_path):
    job = write_job(tmp_path / "j.yaml", tiny_job(es={"sigam": 1}))
    assert_clean_refusal(run_cli(["train", job, "--run-dir", tmp_path / "run"]), "es.sigam", "es.sigma")
    assert not (tmp_path / "run").exists()


def test_unknown_env_id_exits_2(tmp_path):
    job = tiny_job()
    job["env"]["id"] = "HalfCheeta-v5"
    path = write_job(tmp_path / "j.yaml", job)
    assert_clean_refusal(run_cli(["train", path, "--run-dir", tmp_path / "run"]), "HalfCheetah-v5")


def test_noise_table_smaller_than_policy_exits_2(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job(es={"noise_table_size": 100}))
    assert_clean_refusal(run_cli(["train", path, "--run-dir", tmp_path / "run"]), "es.noise_table_size")


def test_bad_flag_value_exits_2(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job())
    proc = run_cli(["train", path, "--resume", "sometimes"])
    assert proc.returncode == 2 and "--resume" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_set_exits_2(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job())
    assert_clean_refusal(run_cli(["train", path, "--set", "es.sigma=-1", "--run-dir", tmp_path / "r"]), "es.sigma")


@pytest.mark.mpi
def test_bad_input_under_mpi_prints_once_and_all_ranks_exit_2(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job(es={"sigma": -1}))
    proc = run_cli(["train", path, "--run-dir", tmp_path / "run"], ranks=2)
    assert_clean_refusal(proc, "es.sigma")
    assert proc.stderr.count("es.sigma") == 1


def test_existing_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    path = write_job(tmp_path / "j.yaml", tiny_job(run={"generations": 1}))
    assert run_cli(["train", path, "--run-dir", run]).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert_clean_refusal(run_cli(["train", path, "--run-dir", run]), "--resume")
    other = write_job(tmp_path / "k.yaml", tiny_job(es={"sigma": 0.3}, run={"generations": 1}))
    assert_clean_refusal(run_cli(["train", other, "--run-dir", run, "--resume", "auto"]), "es.sigma")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_must_without_checkpoint_exits_2(tmp_path):
    path = write_job(tmp_path / "j.yaml", tiny_job())
    assert_clean_refusal(run_cli(["train", path, "--run-dir", tmp_path / "run", "--resume", "must"]), "checkpoint")


@pytest.mark.parametrize("var, value", [("ES_MPI_TASK_COUNTER", "cluster"), ("ES_MPI_SLOTS", "many"),
                                        ("ES_MPI_NODE_RANKS", "0")])
def test_bad_tuning_variable_exits_2(tmp_path, var, value):
    path = write_job(tmp_path / "j.yaml", tiny_job(run={"generations": 1}))
    proc = run_cli(["train", path, "--run-dir", tmp_path / "r"], env={var: value})
    assert_clean_refusal(proc, var)


def test_dry_run_prints_the_resolved_job_and_trains_nothing(tmp_path):
    proc = run_cli(["train", "jobs/default.yaml", "--set", "es.sigma=1e-2", "--set", "run.seed=7", "--dry-run",
                    "--run-dir", tmp_path / "run"])
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed["es"]["sigma"] == 0.01 and printed["run"]["seed"] == 7
    assert printed["strategy"] == {"kind": "openai_es"} and printed["policy"]["action_noise"] == 0.01  # defaults
    assert not (tmp_path / "run").exists() and not (ROOT / "results" / "runs" / "default-seed7").exists()
    again = tmp_path / "resolved.yaml"
    again.write_text(proc.stdout)
    assert yaml.safe_load(run_cli(["train", again, "--dry-run"]).stdout) == printed  # a job file itself
    bad = run_cli(["train", "jobs/default.yaml", "--set", "env.id=Nope-v9", "--dry-run"])
    assert bad.returncode == 2 and "Nope-v9" in bad.stderr and "Traceback" not in bad.stderr


def test_a_reader_that_goes_away_stops_no_command_and_no_run(tmp_path):
    """`es-mpi ... | head -1`: the rest of the output goes nowhere, the run trains on to its checkpoint."""
    path = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 3}))
    es_mpi = f"{sys.executable} -m es_mpi"
    for command in (f"{es_mpi} keys", f"{es_mpi} train {path} --run-dir {tmp_path / 'run'}"):
        proc = subprocess.run(f"set -o pipefail; {command} | head -1", shell=True, executable="/bin/bash",
                              capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stdout.splitlines()) == 1
    assert h5py.File(tmp_path / "run" / "checkpoint.h5", "r").attrs["generation"] == 3
