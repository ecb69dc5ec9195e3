"""ES actually learns: InvertedPendulum-v5 reaches its solved score (950, gymnasium's threshold) on 2 ranks."""

import h5py
import numpy as np
import pytest
from helpers import run_cli, write_job

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.mark.parametrize("seed", [11])
def test_inverted_pendulum_is_solved_on_two_ranks(tmp_path, seed):
    job = {
        "env": {"id": "InvertedPendulum-v5"},
        "policy": {"hidden": [16], "obs_stat_fraction": 0.2},
        "es": {"pairs": 10, "sigma": 0.05, "noise_table_size": 1_000_000},
        "optimizer": {"lr": 0.05},
        "run": {"seed": seed, "generations": 40, "eval_every": 2, "eval_episodes": 3, "checkpoint_every": 100},
    }
    run = tmp_path / "run"
    proc = run_cli(["train", write_job(tmp_path / "ip.yaml", job), "--run-dir", run], ranks=2, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(run / "metrics.h5") as f:
        evals = f["eval_return"][...]
    evals = evals[np.isfinite(evals)]
    assert evals[0] < 200  # starts far from solved
    assert evals.max() >= 950
