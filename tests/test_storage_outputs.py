"""The commands that write outside a run (es-mpi report's figures and tables, es-mpi eval's CSV and video)
fail cleanly on a full or read-only file system too: one line naming the file and the OS error, status 4."""

import pytest
from helpers import run_cli, tiny_job, write_job
from test_storage import fill, mounts, small_disk  # noqa: F401  (mounts is a fixture)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outputs")
    job = tiny_job(env={"id": "InvertedPendulum-v5", "episode_cap": "env"}, run={"generations": 1})
    proc = run_cli(["train", write_job(tmp / "job.yaml", job), "--run-dir", tmp / "run"])
    assert proc.returncode == 0, proc.stderr
    return tmp / "run"


def assert_clean_failure(proc, name: str) -> None:
    assert proc.returncode == 4, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("eval [")]  # progress bars
    assert len(errors) == 1 and errors[0].startswith("es-mpi: error: ") and name in errors[0], proc.stderr
    assert "(ENOSPC)" in errors[0]
    assert "Traceback" not in proc.stderr


def test_report_on_a_full_disk_is_one_line_and_status_4(run, tmp_path, mounts):  # noqa: F811
    disk = small_disk(mounts, tmp_path / "disk", "1m")
    fill(disk)
    proc = run_cli(["report", run, "--out", disk / "report"])
    assert_clean_failure(proc, str(disk / "report"))


def test_eval_csv_and_video_on_a_full_disk_are_one_line_and_status_4(run, tmp_path, mounts):  # noqa: F811
    disk = small_disk(mounts, tmp_path / "disk", "1m")
    fill(disk)
    proc = run_cli(["eval", run, "--episodes", "2", "--csv", disk / "episodes.csv"], ranks=2)
    assert_clean_failure(proc, str(disk / "episodes.csv"))
    pytest.importorskip("imageio")
    proc = run_cli(["eval", run, "--episodes", "2", "--video", disk / "episode.gif"], ranks=2)
    assert_clean_failure(proc, str(disk / "episode.gif"))
