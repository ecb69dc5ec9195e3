"""`es-mpi report`: figures and tables from real tiny runs, seeds grouped, readable while a run trains."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import ROOT, run_cli, tiny_job, write_job

from es_mpi.reports.summary import Run, evaluation_axes, group_runs, load_run, mean_interval, seed_curves
from es_mpi.runs.metrics import read_metrics

pytest.importorskip("matplotlib")


def assert_refused(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def train(tmp_path, name, **sections):
    path = write_job(tmp_path / f"{name}.yaml", tiny_job(**sections))
    proc = run_cli(["train", path, "--run-dir", tmp_path / name])
    assert proc.returncode == 0, proc.stderr
    return tmp_path / name


def columns(run):
    with h5py.File(run / "metrics.h5") as f:
        return {k: f[k][...] for k in ("eval_return", "timesteps", "wall_s", "eval_timesteps", "eval_wall_s")}


def test_report_groups_seeds_and_its_table_matches_metrics(tmp_path):
    run = {"generations": 3, "eval_every": 1}
    seed3 = train(tmp_path, "seed3", run=run)
    seed4 = train(tmp_path, "seed4", run={**run, "seed": 4})
    other = train(tmp_path, "other", es={"sigma": 0.1}, run=run)
    m3, m4 = columns(seed3), columns(seed4)
    threshold = float(m3["eval_return"].max())  # seed 3 reaches it by construction
    out = tmp_path / "report"
    proc = run_cli(["report", seed3, other, seed4, "--out", out, "--threshold", f"HalfCheetah-v5={threshold!r}"])
    assert proc.returncode == 0, proc.stderr

    for name in ("learning_curves_HalfCheetah-v5.png", "time_breakdown.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["seeds"] for r in rows] == ["3 4", "3"]  # two jobs; seeds of one job in one row
    assert rows[0]["label"].startswith("HalfCheetah-v5 [openai_es ") and rows[0]["label"] != rows[1]["label"]
    g = rows[0]
    assert float(g["best_eval"]) == pytest.approx(np.mean([m3["eval_return"].max(), m4["eval_return"].max()]))
    assert float(g["best_eval_std"]) == pytest.approx(np.std([m3["eval_return"].max(), m4["eval_return"].max()],
                                                             ddof=1))
    assert float(g["final_eval"]) == pytest.approx(np.mean([m3["eval_return"][-1], m4["eval_return"][-1]]))
    assert float(g["timesteps"]) == np.mean([m3["timesteps"][-1], m4["timesteps"][-1]])
    assert float(g["steps_per_s"]) == pytest.approx(np.mean([m["timesteps"][-1] / m["wall_s"][-1] for m in (m3, m4)]))
    reached = [m for m in (m3, m4) if (m["eval_return"] >= threshold).any()]
    first = [int(np.argmax(m["eval_return"] >= threshold)) for m in reached]
    assert int(g["seeds_reaching"]) == len(reached) >= 1
    # an evaluation scores the parameters before its generation's update: the steps and time they had spent
    assert float(g["timesteps_to_threshold"]) == np.mean([m["eval_timesteps"][i] for m, i in zip(reached, first)])
    assert float(g["wall_s_to_threshold"]) == pytest.approx(
        np.mean([m["eval_wall_s"][i] for m, i in zip(reached, first)]))
    for m in (m3, m4):
        assert list(m["eval_timesteps"]) == [0, *m["timesteps"][:-1]]
        assert list(m["eval_wall_s"]) == [0.0, *m["wall_s"][:-1]]
    assert (out / "summary.md").read_text() in proc.stdout and "| 3 4 |" in proc.stdout

    # the figure's legend names each job once, as the table does (not once per panel)
    from es_mpi.reports.plots import curves_figure

    groups = group_runs([load_run(d) for d in (seed3, other, seed4)])
    (legend,) = curves_figure(groups, "HalfCheetah-v5").legends
    assert [t.get_text() for t in legend.get_texts()] == [f"{r['label']} ({len(r['seeds'].split())} seed"
                                                         f"{'s' if ' ' in r['seeds'] else ''})" for r in rows]


def test_files_without_the_evaluation_axes_get_them_from_the_previous_row():
    old = {"timesteps": np.array([10, 25, 45]), "wall_s": np.array([1.0, 2.5, 4.0]),
           "eval_return": np.array([5.0, np.nan, 7.0])}
    axes = evaluation_axes(old)
    assert list(axes["eval_timesteps"]) == [0, -1, 25]
    assert axes["eval_wall_s"][0] == 0.0 and np.isnan(axes["eval_wall_s"][1]) and axes["eval_wall_s"][2] == 2.5
    written = {**old, "eval_timesteps": np.array([0, -1, 25]), "eval_wall_s": np.array([0.0, np.nan, 2.5])}
    assert all(np.array_equal(evaluation_axes(written)[k], axes[k], equal_nan=True) for k in axes)


def test_mean_interval_is_the_student_t_95_percent_interval_of_the_mean():
    mean, lo, hi = mean_interval(np.array([[0.0, 2.0], [2.0, 4.0]]))
    # n = 2: std 1.414, sem 1, t(1) = 12.706
    assert mean.tolist() == [1.0, 3.0] and lo.tolist() == pytest.approx([-11.706, -9.706])
    assert hi.tolist() == pytest.approx([13.706, 15.706])
    single = mean_interval(np.array([[1.0, 5.0]]))
    assert all(a.tolist() == [1.0, 5.0] for a in single)


def test_seed_curves_are_interpolated_where_all_seeds_have_data():
    def run(steps, values):
        return Run(Path("."), "HalfCheetah-v5", 0, "k", "openai_es",
                   {"timesteps": np.array(steps), "eval_return": np.array(values)})

    grid, curves = seed_curves([run([0, 10, 20], [0.0, np.nan, 20.0]), run([5, 15, 30], [5.0, 15.0, 45.0])],
                               "timesteps", "eval_return")
    assert grid.tolist() == [5, 15, 20]  # the NaN row is no point; outside [5, 20] not every seed has data
    assert curves.tolist() == [[5.0, 15.0, 20.0], [5.0, 15.0, 25.0]]


def test_report_and_readers_see_whole_rows_while_a_run_trains(tmp_path):
    # Short episodes (the cap barely grows): many generations, so reads overlap writes often.
    job = tiny_job(env={"adaptive": {"start": 20, "fraction": 1.0, "ratio": 1.01}},
                   run={"generations": 5000, "checkpoint_every": 1000})
    path = write_job(tmp_path / "job.yaml", job)
    run = tmp_path / "live"
    trainer = subprocess.Popen([sys.executable, "-m", "es_mpi", "train", path, "--run-dir", run], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and (not seen or seen[-1] < 10):
            if (run / "metrics.h5").exists():
                m = read_metrics(run)
                n = m["generation"].size
                assert all(c.shape[0] == n for c in m.values())
                assert m["generation"].tolist() == list(range(n))
                assert np.all(m["timesteps"] > 0) and np.all(np.diff(m["timesteps"]) > 0)  # no unwritten rows
                seen.append(n)
            time.sleep(0.01)
        assert seen and seen[-1] >= 10, seen
        proc = run_cli(["report", run, "--out", tmp_path / "report"])
        assert proc.returncode == 0, proc.stderr
        assert trainer.poll() is None  # the report really read a live run
        rows = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
        assert int(rows[0]["generations"]) >= 10
    finally:
        trainer.send_signal(signal.SIGTERM)
        assert trainer.wait(timeout=30) == 3, trainer.stderr.read()
    with h5py.File(run / "metrics.h5") as f:
        assert f["generation"].size >= int(rows[0]["generations"])


def test_bad_run_dirs_and_flags_exit_2_with_one_line(tmp_path):
    assert_refused(run_cli(["report", tmp_path / "nope"]), "nope", "not a directory")
    (tmp_path / "empty").mkdir()
    assert_refused(run_cli(["report", tmp_path / "empty"]), "no metrics.h5")
    assert_refused(run_cli(["report", tmp_path / "empty", "--threshold", "HalfCheetah-v5"]), "ENV_ID=RETURN")


def test_missing_plotting_library_names_the_report_extra(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from es_mpi.cli import main; "
            f"sys.exit(main(['report', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert_refused(proc, "matplotlib", "pip install 'es-mpi[report]'")


def test_a_novelty_run_gets_its_archive_drawn_and_others_do_not(tmp_path):
    job = tiny_job(run={"generations": 3, "eval_every": 0})
    job["strategy"] = {"kind": "ns_es", "agents": 2, "k": 2, "behaviour_episodes": 1}
    novelty_run = tmp_path / "ns"
    assert run_cli(["train", write_job(tmp_path / "ns.yaml", job), "--run-dir", novelty_run]).returncode == 0
    plain = train(tmp_path, "plain", run={"generations": 1})
    out = tmp_path / "report"
    proc = run_cli(["report", novelty_run, plain, "--out", out])
    assert proc.returncode == 0, proc.stderr
    data = (out / "archive_ns.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not (out / "archive_plain.png").exists() and "archive_ns.png" in proc.stdout
