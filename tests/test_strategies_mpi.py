"""A second strategy trains end to end through the same engine: bit-identical on 1 and 2 ranks and across a
resume, as OpenAI-ES is (test_mpi_determinism, test_resume)."""

import h5py
import numpy as np
import pytest
from helpers import ROOT, read_theta, run_cli, tiny_job, write_job

pytestmark = pytest.mark.mpi
JOB = ROOT / "tests" / "jobs" / "random_search.yaml"


def random_search_job(tmp_path, generations=3):
    job = tiny_job(run={"generations": generations, "eval_every": 1, "eval_episodes": 1})
    job["strategy"] = {"kind": "random_search", "pairs": 4, "sigma": 0.05, "step": 0.05}
    return write_job(tmp_path / "job.yaml", job)


def test_random_search_job_file_trains_on_2_ranks_and_improves(tmp_path):
    proc = run_cli(["train", JOB, "--run-dir", tmp_path / "run"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "run" / "metrics.h5") as f:
        evals = f["eval_return"][...]
    evals = evals[np.isfinite(evals)]
    assert len(evals) == 6 and evals[1:].max() > 2 * evals[0], evals


def test_random_search_is_bit_identical_on_1_and_2_ranks_and_across_a_resume(tmp_path):
    path = random_search_job(tmp_path)
    runs = {}
    for name, ranks in (("alone", None), ("two", 2)):
        proc = run_cli(["train", path, "--run-dir", tmp_path / name], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        assert "random_search" in proc.stdout
        runs[name] = read_theta(tmp_path / name)
    first = run_cli(["train", path, "--run-dir", tmp_path / "parts", "--set", "run.generations=1"], ranks=2)
    assert first.returncode == 0, first.stderr
    second = run_cli(["train", path, "--run-dir", tmp_path / "parts", "--resume", "must"])
    assert second.returncode == 0, second.stderr
    assert np.array_equal(runs["alone"], runs["two"])
    assert np.array_equal(runs["alone"], read_theta(tmp_path / "parts"))
    with h5py.File(tmp_path / "two" / "metrics.h5") as f:
        assert list(f["generation"][...]) == [0, 1, 2]
        assert "theta_norm" in f and "grad_norm" not in f  # the strategy's own columns
        assert np.isfinite(f["eval_return"][...]).all()
    with h5py.File(tmp_path / "two" / "checkpoint.h5") as f:
        assert set(f) == {"theta"} and f.attrs["generation"] == 3


def test_changing_the_strategy_on_resume_is_refused(tmp_path):
    path = random_search_job(tmp_path, generations=1)
    assert run_cli(["train", path, "--run-dir", tmp_path / "run"]).returncode == 0
    proc = run_cli(["train", path, "--run-dir", tmp_path / "run", "--resume", "auto",
                    "--set", "strategy={kind: openai_es}"])
    assert proc.returncode == 2 and "strategy.kind" in proc.stderr and "Traceback" not in proc.stderr
