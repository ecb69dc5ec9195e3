"""run.tensorboard: TensorBoard event files in RUN_DIR/tensorboard/ hold every metrics.h5 column against
timesteps and the job as hyperparameters, and a run stopped by SIGTERM, or killed after rows its checkpoint
does not cover, resumes into the same curves as an uninterrupted run: same steps, same values, none twice.

The files are read back with TensorBoard's own reader (the dev extra installs tensorboard)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, Training, read_theta, run_cli, tiny_job, write_job

from es_mpi.runs.metrics import read_metrics

pytest.importorskip("tensorboardX")
accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

GENERATIONS = 7
# Columns that measure time: they differ between any two runs, so only their steps are compared.
TIMED = {"wall_s", "eval_wall_s", "generation_s", "rollout_s", "wait_s", "comm_s", "update_s", "steps_per_s",
         "checkpoint_s"}


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag: [(step, value)] as TensorBoard shows it."""
    acc = accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()[accumulator.SCALARS]}


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """About a second per generation on one process (full-length HalfCheetah episodes), evaluations every
    other generation (gaps in eval_return), a checkpoint every third."""
    return write_job(tmp_path_factory.mktemp("job") / "job.yaml",
                     tiny_job(env={"episode_cap": "env"}, es={"pairs": 4},
                              run={"generations": GENERATIONS, "eval_every": 2, "checkpoint_every": 3,
                                   "tensorboard": True}))


@pytest.fixture(scope="module")
def reference(job, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], timeout=300)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def assert_same_curves(run_dir: Path, reference: Path) -> None:
    got, want = curves(run_dir), curves(reference)
    assert sorted(got) == sorted(want)
    for tag in set(want) - {"checkpoint_s"}:  # a stop adds a checkpoint, hence a checkpoint_s point
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        if tag not in TIMED:
            assert got[tag] == want[tag], tag
    assert np.array_equal(read_theta(run_dir), read_theta(reference))
    assert len(list((run_dir / "tensorboard").iterdir())) == 1, "the earlier start's events file is left"


def assert_curves_are_the_metrics(run_dir: Path) -> None:
    """Every metrics.h5 column with its value, at step `timesteps` (the evaluation's at `eval_timesteps`, the
    steps the evaluated parameters had seen); no point where metrics.h5 has none."""
    rows, got = read_metrics(run_dir), curves(run_dir)
    rows.pop("rank_times")
    assert sorted(got) == sorted(rows)
    for name, column in rows.items():
        present = ~np.isnan(column) if column.dtype.kind == "f" else column != -1
        steps = rows["eval_timesteps" if name in ("eval_return", "eval_length") else "timesteps"]
        want = [(int(s), float(np.float32(v))) for s, v in zip(steps[present], column[present])]
        assert got[name] == want, name
    assert got["eval_return"][0][0] == 0  # generation 0 evaluates the initial parameters


def test_tensorboard_holds_every_column_and_the_job(reference):
    assert_curves_are_the_metrics(reference)
    assert len(curves(reference)["generation"]) == GENERATIONS
    acc = accumulator.EventAccumulator(str(reference / "tensorboard"))
    acc.Reload()
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["es.sigma"].number_value == pytest.approx(0.05)
    assert start.session_start_info.hparams["env.id"].string_value == "HalfCheetah-v5"
    assert "sigma: 0.05" in acc.Tensors("job/text_summary")[0].tensor_proto.string_val[0].decode()


def test_sigterm_then_resume_gives_the_curves_of_an_uninterrupted_run(job, reference, tmp_path):
    run_dir = tmp_path / "run"
    run = Training([job, "--run-dir", run_dir])
    run.wait_line("gen    1/")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait() == 3, run.out
    stopped = len(curves(run_dir)["generation"])
    assert 2 <= stopped < GENERATIONS, run.out
    resumed = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at generation {stopped}" in resumed.stdout
    assert_same_curves(run_dir, reference)
    assert_curves_are_the_metrics(run_dir)


def test_rows_after_the_checkpoint_of_a_killed_run_are_dropped_not_doubled(job, reference, tmp_path):
    run_dir = tmp_path / "run"
    run = Training([job, "--run-dir", run_dir])
    run.wait_line("gen    4/")  # checkpoint at generation 3; rows 3 and 4 are not covered by it
    run.proc.send_signal(signal.SIGKILL)
    run.wait()
    before = curves(run_dir)["generation"]
    assert [v for _, v in before][:4] == [0, 1, 2, 3], run.out
    resumed = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at generation 3" in resumed.stdout
    assert_same_curves(run_dir, reference)


def test_tensorboard_without_tensorboardx_is_refused_before_anything_is_written(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "tensorboardX.py").write_text("raise ImportError('not installed')\n")
    job = write_job(tmp_path / "job.yaml", tiny_job(run={"tensorboard": True}))
    proc = run_cli(["train", job, "--run-dir", tmp_path / "run"], cwd=ROOT,
                   env={"PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 2, proc.stderr
    assert "run.tensorboard is true but tensorboardX is not installed; pip install 'es-mpi[tensorboard]'" \
        in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "run").exists()
