"""bench/paper_table.py's arithmetic on hand-made metrics files: which evaluation reaches each milestone, whose
timesteps count for it (the parameters' own, i.e. the row before), budgets, medians over seeds that missed,
and the run directories the Slurm array form writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import paper_table  # noqa: E402
from paper_table import TASKS, Reached, collect, median, milestones, run_dir  # noqa: E402

NAN = np.nan
QUARTERS = (25.0, 50.0, 75.0, 100.0)  # milestone returns for the hand-made files


def metrics(evals, steps, wall, **extra) -> dict[str, np.ndarray]:
    return {"eval_return": np.array(evals, dtype=np.float64), "timesteps": np.array(steps, dtype=np.int64),
            "wall_s": np.array(wall, dtype=np.float64), **{k: np.array(v) for k, v in extra.items()}}


def write_metrics(path: Path, m: dict[str, np.ndarray]) -> None:
    path.mkdir(parents=True)
    with h5py.File(path / "metrics.h5", "w", libver="latest") as f:
        f["generation"] = np.arange(m["timesteps"].size)
        for name, column in m.items():
            f[name] = column


def test_a_milestone_counts_the_steps_the_evaluated_parameters_had_trained_on():
    # Row i evaluates the parameters before generation i's update: they had trained for row i-1's steps.
    m = metrics(evals=[30, NAN, 60, 40, 80, 120], steps=[100, 200, 300, 400, 500, 600],
                wall=[1, 2, 3, 4, 5, 6])
    got = milestones(m, QUARTERS)
    assert got == [Reached(0, 0.0),  # 25: row 0, before any training
                   Reached(200, 2.0),  # 50: row 2 (60), trained as far as row 1
                   Reached(400, 4.0),  # 75: row 4 (80); row 3's 40 does not reach it
                   Reached(500, 5.0)]  # 100: row 5 (120)


def test_the_first_evaluation_reaching_a_milestone_counts_not_the_best():
    m = metrics(evals=[NAN, 101, 50, 300], steps=[10, 20, 30, 40], wall=[1, 2, 3, 4])
    assert milestones(m, QUARTERS)[-1] == Reached(10, 1.0)


def test_a_recorded_evaluation_axis_is_used_as_written():
    m = metrics(evals=[NAN, 90], steps=[10, 20], wall=[1, 2], eval_timesteps=[-1, 7], eval_wall_s=[NAN, 0.5])
    assert milestones(m, QUARTERS)[2] == Reached(7, 0.5)


def test_evaluations_after_the_budget_or_below_a_milestone_reach_nothing():
    m = metrics(evals=[20, 30, 99, 200], steps=[10, 20, 30, 40], wall=[10, 20, 30, 40])
    assert milestones(m, QUARTERS, budget_s=25) == [Reached(10, 10.0), None, None, None]
    assert milestones(m, QUARTERS)[-1] == Reached(30, 30.0)


def test_median_counts_a_missed_milestone_as_slower_than_any_reached():
    assert median([3.0, None, 1.0]) == 3.0
    assert median([None, None, 1.0]) is None
    assert median([2.0, 4.0]) == 3.0


def test_collect_reads_each_seed_and_takes_medians(tmp_path):
    task = next(t for t in TASKS if t.job == "swimmer")
    for seed, evals in [(0, [0, 40, 130]), (1, [0, 70, 90]), (2, [0, 100, 140])]:
        write_metrics(run_dir(tmp_path, task, seed), metrics(evals, [1000, 2000, 3000], [1, 2, 3]))
    row = collect(tmp_path, task, [0, 1, 2, 3], budget_s=np.inf)  # seed 3 never ran: left out
    assert [s["seed"] for s in row["seeds"]] == [0, 1, 2]
    # Table 3's Swimmer returns 41.97, 70.73, 99.68, 128.25 (not quarters of 128.25): seed 0 reaches them at
    # rows 2, 2, 2, 2; seed 1 at rows 1, 2, -, - (its 70 is short of 70.73); seed 2 at rows 1, 1, 1, 2
    assert row["median_timesteps"] == [1000, 2000, 2000, 2000]
    assert row["seeds"][1]["milestones"][2] is None and row["seeds"][1]["best_eval"] == 90
    assert collect(tmp_path, task, [5], budget_s=np.inf) is None


def test_the_slurm_array_writes_the_run_directories_the_collector_reads():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ES_MPI_"))}
    seeds = [0, 1, 2]
    for index, (task, seed) in enumerate((t, s) for t in TASKS for s in seeds):
        env = {**clean, "ES_MPI_PYTHON": sys.executable, "ES_MPI_DRY_RUN": "1", "SLURM_ARRAY_TASK_ID": str(index),
               "SLURM_JOB_NAME": "table1"}
        proc = subprocess.run(["bash", "slurm/paper_table.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        where = re.search(r"run dir (\S+)", proc.stderr)[1]
        assert Path(where) == run_dir(Path("results/runs"), task, seed), proc.stderr
        for override in paper_table.OVERRIDES:
            assert f"--set {override}" in proc.stderr, proc.stderr


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.job)
def test_every_task_names_a_shipped_job_of_its_env(task):
    import yaml

    job = yaml.safe_load((ROOT / "jobs" / f"{task.job}.yaml").read_text())
    assert job["env"]["id"] == task.env_id
