"""Storage faults never crash or lose a run: a full disk at start-up, at a metrics row, at a checkpoint and
at the final checkpoint; a run directory made read-only, removed or renamed while training; slow writes.

The full-disk cases put the run directory on a small tmpfs (as in the issue: a Hopper policy of 256x256,
checkpoints of about 860 kB, on 2 MB). Each fault run goes under `mpiexec -n 2` and must exit with status 4,
print no traceback, leave no temporary file, and after the fault is fixed `--resume auto` must finish
bit-identically to an uninterrupted run. Mounting needs root; without it these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import ROOT, mpiexec, read_theta, run_cli, tiny_job, write_job

from es_mpi.runs.checkpoint import CHECKPOINT, checkpoint_image, read_checkpoint, write_checkpoint
from es_mpi.runs.metrics import COLUMNS, RANK_TIMES, MetricsLog, read_metrics
from es_mpi.runs.storage import EXIT_STORAGE, RunDirectory, StorageError, temporary_name
from es_mpi.strategies.base import Saved

GENERATIONS, EVERY = 6, 2
PAUSE = {"ES_MPI_TEST_CHECKPOINT_PAUSE": "1"}  # a window of a second inside each checkpoint write


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


@pytest.fixture
def mounts():
    """mount(src, dst, *options) as root; every mount made is undone at the end, innermost first."""
    made: list[Path] = []

    def mount(*args: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
        proc = _run("mount", *args)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
        made.append(Path(args[-1]))
        return made[-1]

    yield mount
    for target in reversed(made):
        _run("umount", "-l", str(target))


def small_disk(mounts, where: Path, size: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return mounts("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))


def grow(disk: Path) -> None:
    """Room for the whole run: three checkpoints at once."""
    assert _run("mount", "-o", "remount,size=8m", str(disk)).returncode == 0


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all but about `leave` bytes of the file system of `disk` with a ballast file."""
    ballast = disk / "ballast"
    with open(ballast, "ab", buffering=0) as f:
        while True:
            st = os.statvfs(disk)
            room = st.f_bavail * st.f_frsize - leave
            if room <= 0:
                break
            try:
                f.write(b"\0" * min(room, 1 << 20))
            except OSError:
                break
    return ballast


def big_job(tmp_path: Path) -> Path:
    """Hopper with a 256x256 policy: checkpoints of about 860 kB, generations of a tenth of a second."""
    job = tiny_job(env={"id": "Hopper-v5", "episode_cap": "env"}, policy={"hidden": [256, 256]},
                   es={"pairs": 2, "noise_table_size": 2_000_000},
                   run={"generations": GENERATIONS, "checkpoint_every": EVERY, "eval_every": 0})
    job["env"].pop("adaptive")
    return write_job(tmp_path / "hopper.yaml", job)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The job file and an uninterrupted run of it."""
    where = tmp_path_factory.mktemp("reference")
    job = big_job(where)
    proc = run_cli(["train", job, "--run-dir", where / "run"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    return job, where / "run"


def assert_clean_fault(proc, run_dir: Path, *words: str) -> None:
    assert proc.returncode == EXIT_STORAGE, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("es-mpi: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert not list(run_dir.glob(".*.tmp")), list(run_dir.iterdir())


def assert_resumes_identically(job: Path, run_dir: Path, reference: Path) -> None:
    proc = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_theta(run_dir), read_theta(reference))
    with h5py.File(run_dir / "metrics.h5") as a, h5py.File(reference / "metrics.h5") as b:
        assert list(a["generation"][...]) == list(range(GENERATIONS))
        assert np.array_equal(a["return_mean"][...], b["return_mean"][...])


def metrics_rows(run_dir: Path) -> np.ndarray:
    """The generation column, read the way a user would: plain h5py, no SWMR flag, no repair."""
    with h5py.File(run_dir / "metrics.h5", "r") as f:
        return f["generation"][...]


class Launch:
    """`mpiexec -n 2 es-mpi train ...` whose stdout is read line by line; `at(text)` waits for a line."""

    def __init__(self, args: list, env: dict) -> None:
        cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "es_mpi", *map(str, args)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **env})
        self.seen: list[str] = []
        self.cond = threading.Condition()
        self.err = ""
        threading.Thread(target=self._read, daemon=True).start()
        self.err_thread = threading.Thread(target=self._read_err, daemon=True)
        self.err_thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.seen.append(line)
                self.cond.notify_all()
        with self.cond:
            self.seen.append("<eof>")
            self.cond.notify_all()

    def _read_err(self) -> None:
        self.err = self.proc.stderr.read()

    def at(self, text: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(text in s or s == "<eof>" for s in self.seen), timeout=120)
            assert self.seen[-1] != "<eof>" or any(text in s for s in self.seen), "".join(self.seen)

    def result(self) -> subprocess.CompletedProcess:
        self.proc.wait(timeout=120)
        self.err_thread.join(timeout=10)
        with self.cond:
            out = "".join(self.seen)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, self.err)


def written(path: Path, size: int, timeout: float = 60) -> None:
    """Wait until `path` holds `size` bytes (a temporary file being written by the run)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.stat().st_size >= size:
                return
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, f"{path} never reached {size} bytes"
        time.sleep(0.005)


# --- a full disk -------------------------------------------------------------------------------------------


@pytest.mark.mpi
def test_no_room_at_start_up_writes_nothing_and_a_later_start_completes(mounts, tmp_path, reference):
    job, whole = reference
    disk = small_disk(mounts, tmp_path / "disk", "2m")
    ballast = fill(disk, leave=600_000)  # less than one checkpoint: job.yaml would be the first write
    run_dir = disk / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], ranks=2)
    assert_clean_fault(proc, run_dir, "needs", "no checkpoint written yet; free space, then --resume auto")
    assert list(run_dir.iterdir()) == []
    ballast.unlink()
    grow(disk)
    assert_resumes_identically(job, run_dir, whole)


@pytest.mark.mpi
def test_full_disk_before_a_checkpoint_stops_after_the_last_good_one(mounts, tmp_path, reference):
    job, whole = reference
    disk = small_disk(mounts, tmp_path / "disk", "1600k")  # room for checkpoint.h5, not for its successor
    run_dir = disk / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], ranks=2)
    assert_clean_fault(proc, run_dir, "free on its file system",
                       f"last good checkpoint: generation 2 in {run_dir / CHECKPOINT}", "then --resume auto")
    assert "room for 1.9 checkpoints" in proc.stdout, proc.stdout
    assert list(metrics_rows(run_dir)) == [0, 1]
    grow(disk)
    assert_resumes_identically(job, run_dir, whole)


@pytest.mark.mpi
def test_full_disk_at_the_final_checkpoint_keeps_the_one_before(mounts, tmp_path, reference):
    job, whole = reference
    disk = small_disk(mounts, tmp_path / "disk", "2600k")  # two checkpoints fit, not three
    run_dir = disk / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], ranks=2)
    assert_clean_fault(proc, run_dir, f"last good checkpoint: generation 4 in {run_dir / CHECKPOINT}")
    assert read_checkpoint(run_dir / CHECKPOINT)[1]["generation"] == 4
    assert list(metrics_rows(run_dir)) == [0, 1, 2, 3]
    (run_dir / "checkpoint.prev.h5").unlink()  # the user frees space
    assert_resumes_identically(job, run_dir, whole)


@pytest.mark.mpi
def test_disk_filled_by_someone_else_between_checkpoints_stops_before_the_next_row(mounts, tmp_path, reference):
    job, whole = reference
    disk = small_disk(mounts, tmp_path / "disk", "4m")
    run_dir = disk / "run"
    launch = Launch(["train", job, "--run-dir", run_dir], PAUSE)
    launch.at("gen    1/")  # the row is out; the checkpoint of generation 2 comes next
    written(run_dir / temporary_name(CHECKPOINT), (whole / CHECKPOINT).stat().st_size)
    ballast = fill(disk)  # in the pause between the checkpoint's last byte and its rename
    proc = launch.result()
    assert_clean_fault(proc, run_dir, "last good checkpoint: generation 2")
    assert list(metrics_rows(run_dir)) == [0, 1]
    ballast.unlink()
    assert_resumes_identically(job, run_dir, whole)


# --- the run directory changes under the run -------------------------------------------------------------


@pytest.mark.mpi
def test_run_directory_made_read_only_mid_run(mounts, tmp_path, reference):
    job, whole = reference
    run_dir = tmp_path / "run"
    launch = Launch(["train", job, "--run-dir", run_dir], PAUSE)
    launch.at("gen    1/")  # the checkpoint of generation 2 pauses a second: time to mount before row 2
    # Linux refuses to remount read-only a file system with files open for writing (metrics.h5 is): a
    # read-only bind mount stacked on the directory makes its path read-only, as a server gone read-only does.
    mounts("--bind", str(run_dir), str(run_dir))
    assert _run("mount", "-o", "remount,bind,ro", str(run_dir)).returncode == 0
    proc = launch.result()
    assert_clean_fault(proc, run_dir, "read-only (EROFS)", "last good checkpoint: generation 2",
                       "make the run directory writable")
    assert list(metrics_rows(run_dir)) == [0, 1]
    assert _run("umount", str(run_dir)).returncode == 0
    assert_resumes_identically(job, run_dir, whole)


@pytest.mark.mpi
def test_run_directory_renamed_mid_run_is_named_and_kept_whole(tmp_path, reference):
    job, whole = reference
    run_dir, moved = tmp_path / "run", tmp_path / "moved"
    launch = Launch(["train", job, "--run-dir", run_dir], PAUSE)
    launch.at("gen    1/")  # inside the checkpoint write of generation 2: it must land in the moved directory
    run_dir.rename(moved)
    proc = launch.result()
    assert_clean_fault(proc, moved, f"renamed to {moved}", "move it back", "then --resume auto")
    assert read_checkpoint(moved / CHECKPOINT)[1]["generation"] == 2
    assert list(metrics_rows(moved)) == [0, 1]
    moved.rename(run_dir)
    assert_resumes_identically(job, run_dir, whole)


@pytest.mark.mpi
def test_run_directory_removed_mid_run(tmp_path, reference):
    job, whole = reference
    run_dir = tmp_path / "run"
    launch = Launch(["train", job, "--run-dir", run_dir], PAUSE)
    launch.at("gen    1/")
    while run_dir.exists():  # the run may add a file between rmtree's unlinks and its rmdir
        shutil.rmtree(run_dir, ignore_errors=True)
    proc = launch.result()
    assert_clean_fault(proc, run_dir, f"{run_dir}: the run directory was removed while training",
                       "restore the run directory")
    assert_resumes_identically(job, run_dir, whole)


# --- slow writes ---------------------------------------------------------------------------------------------


def test_slow_checkpoint_writes_are_recorded_and_reported(tmp_path):
    job = write_job(tmp_path / "job.yaml", tiny_job(run={"generations": 2, "checkpoint_every": 1}))
    proc = run_cli(["train", job, "--run-dir", tmp_path / "run"], env={"ES_MPI_TEST_CHECKPOINT_PAUSE": "1.2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("to write") == 2 and "a slow file system?" in proc.stdout, proc.stdout
    taken = read_metrics(tmp_path / "run")["checkpoint_s"]
    assert len(taken) == 2 and np.all(taken >= 1.2) and np.all(taken < 10)


# --- each writer on a full disk, in process --------------------------------------------------------------


def tiny_saved(n: int) -> Saved:
    return Saved({"theta": np.arange(n, dtype=np.float32)}, {"generation": n})


def test_a_checkpoint_that_does_not_fit_leaves_the_old_one_and_no_temporary_file(mounts, tmp_path):
    disk = small_disk(mounts, tmp_path / "disk", "1m")
    run_dir = RunDirectory(disk / "run")
    write_checkpoint(run_dir, checkpoint_image(tiny_saved(1000), {"theta": ("1", "x")}, {}))
    fill(disk, leave=100_000)
    with pytest.raises(StorageError, match=r"checkpoint\.h5: No space left on device \(ENOSPC\)") as err:
        write_checkpoint(run_dir, checkpoint_image(tiny_saved(100_000), {"theta": ("1", "x")}, {}))
    assert err.value.fix == "free space"
    assert sorted(p.name for p in run_dir.path.iterdir()) == ["checkpoint.h5"]
    assert read_checkpoint(run_dir.path / CHECKPOINT)[0].arrays["theta"].size == 1000


def test_job_file_on_a_full_disk_fails_cleanly(mounts, tmp_path):
    disk = small_disk(mounts, tmp_path / "disk", "256k")
    run_dir = RunDirectory(disk / "run")
    fill(disk)
    with pytest.raises(StorageError, match=r"job\.yaml: No space left on device"):
        run_dir.write("job.yaml", b"x" * 10_000)
    assert list(run_dir.path.iterdir()) == []


def test_metrics_rows_stop_before_hdf5_sees_a_full_disk(mounts, tmp_path):
    disk = small_disk(mounts, tmp_path / "disk", "2m")
    run_dir = RunDirectory(disk / "run")
    log = MetricsLog(run_dir, 0, {"job_yaml": "x"}, {})
    row = {name: 1 for name in COLUMNS} | {RANK_TIMES: np.ones((40, 4))}
    ballast = fill(disk, leave=0)
    written = 0
    with pytest.raises(StorageError, match=r"metrics\.h5: no room for the next rows: No space left on device"):
        for written in range(100_000):
            log.append({**row, "generation": written})
    assert not log.broken
    log.close()
    ballast.unlink()
    with h5py.File(run_dir.path / "metrics.h5", "r") as f:  # no SWMR flag left set, no repair needed
        assert list(f["generation"][...]) == list(range(written))
        assert f[RANK_TIMES].shape[0] == written


def test_read_only_renamed_and_removed_directories_are_found_before_writing(mounts, tmp_path):
    where = tmp_path / "a"
    run_dir = RunDirectory(where)
    run_dir.check_place()
    mounts("--bind", str(where), str(where))
    _run("mount", "-o", "remount,bind,ro", str(where))
    through_mount = RunDirectory(where)
    with pytest.raises(StorageError, match=r"read-only \(EROFS\)"):
        through_mount.check_place()
    through_mount.close()
    assert _run("umount", str(where)).returncode == 0
    where.rename(tmp_path / "b")
    with pytest.raises(StorageError, match=f"renamed to {tmp_path / 'b'}"):
        run_dir.check_place()
    (tmp_path / "b").rmdir()
    with pytest.raises(StorageError, match="was removed"):
        run_dir.check_place()


# --- Slurm ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,requeued", [(3, True), (4, False)])
def test_slurm_scripts_requeue_after_a_signal_but_not_after_a_storage_fault(tmp_path, status, requeued):
    marker = tmp_path / "requeued"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f"#!/bin/sh\ntouch {marker}\n")
    scontrol.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
    proc = subprocess.run(["bash", "-c", f". slurm/lib.sh; es_mpi_trap_signals; es_mpi_finish {status}"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == status and marker.exists() == requeued, proc.stderr
    if not requeued:
        assert "storage fault (status 4): not requeueing" in proc.stderr
