"""A run directory has one writer (es_mpi.runs.lock): a second run is refused with one line naming the
holder, exit 2, touching nothing, while the first goes on unaffected; a lock left by a run killed with
kill -9, or by a node that died under Slurm, is taken over with a notice and the resumed run ends
bit-identical to an uninterrupted one. The staleness rule itself is checked on forged lock files, with a
stand-in `scontrol` for the Slurm part; the last test runs the real local Slurm cluster (root only)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import Training, read_theta, run_cli, tiny_job, write_job
from test_slurm import SHRINK, finished, output_of, sbatch, slurm, wait_for  # noqa: F401 (slurm: a fixture)

from es_mpi.runs import lock as lockmod
from es_mpi.runs.lock import LOCK, LockError, RunLock, check_free
from es_mpi.runs.storage import RunDirectory, StorageError

GENERATIONS = 5
HOST = socket.gethostname()


def holder(**fields) -> dict:
    """A lock record as es-mpi writes it; by default the test process itself, on this host (alive)."""
    record = {"host": HOST, "boot_id": lockmod._boot_id(), "pid": os.getpid(),
              "pid_start": lockmod._start_ticks(os.getpid()), "slurm_job_id": None, "slurm_restart": 0,
              "started": "2025-01-02 03:04:05", "heartbeat": time.time(), "stale_after_s": lockmod.STALE_MIN_S,
              "token": "forged"}
    return {**record, **fields}


def forge(run_dir: Path, record: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK).write_text(json.dumps(record))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def take(run_dir: Path) -> tuple[RunLock, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunLock.take(RunDirectory(run_dir))


# --- The rule, on forged lock files: no training. ---

def test_a_lock_is_held_once_and_released(tmp_path):
    lock, notice = take(tmp_path)
    assert notice == ""
    written = json.loads((tmp_path / LOCK).read_text())
    assert (written["host"], written["pid"]) == (HOST, os.getpid())
    with pytest.raises(LockError, match=f"in use by es-mpi pid {os.getpid()} on {HOST}, started "):
        take(tmp_path)
    lock.release()
    assert not (tmp_path / LOCK).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no private or temporary file left"


@pytest.mark.parametrize(("record", "why"), [
    (lambda: holder(pid=dead_pid()), "process {pid} is gone"),
    (lambda: holder(pid_start=1), "process {pid} is gone"),  # the pid now belongs to a later process
    (lambda: holder(boot_id="another-boot"), "its host rebooted since"),
    (lambda: holder(host="node-gone", heartbeat=time.time() - 1000), "its last heartbeat is 1000 s old"),
], ids=["dead-pid", "reused-pid", "rebooted", "other-host-silent"])
def test_a_gone_holder_is_taken_over_with_a_notice(tmp_path, record, why):
    forged = record()
    forge(tmp_path, forged)
    lock, notice = take(tmp_path)
    assert notice.startswith(f"{tmp_path / LOCK}: taking over from es-mpi pid {forged['pid']} on {forged['host']}")
    assert notice.endswith(why.format(pid=forged["pid"]) + (" (stale after 900 s)" if "heartbeat" in why else ""))
    assert json.loads((tmp_path / LOCK).read_text())["token"] == lock.me["token"]
    lock.release()


def test_a_live_holder_elsewhere_is_refused_touching_nothing(tmp_path):
    forge(tmp_path, holder(host="node7", slurm_job_id="4242", heartbeat=time.time() - 100))
    before = (tmp_path / LOCK).read_bytes()
    with pytest.raises(LockError) as refused:
        check_free(tmp_path)
    assert str(refused.value) == (f"{tmp_path / LOCK}: in use by es-mpi pid {os.getpid()} on node7 (Slurm job "
                                  "4242), started 2025-01-02 03:04:05, heartbeat 100 s ago; wait for it to end or "
                                  "use another --run-dir (a holder that died is taken over: docs/cluster.md)")
    with pytest.raises(LockError):
        take(tmp_path)
    assert (tmp_path / LOCK).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [LOCK]


@pytest.fixture
def scontrol(tmp_path, monkeypatch):
    """A stand-in `scontrol` on PATH that answers `show job` with the line given to it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def answer(line: str, status: int = 0) -> None:
        script = bin_dir / "scontrol"
        stream = ">&2" if status else ""
        script.write_text(f"#!/bin/sh\necho '{line}' {stream}\nexit {status}\n")
        script.chmod(0o755)

    return answer


@pytest.mark.parametrize(("answer", "why"), [
    (("JobId=4242 JobState=COMPLETED Restarts=0",), "its Slurm job 4242 is COMPLETED"),
    (("JobId=4242 JobState=NODE_FAIL Restarts=0",), "its Slurm job 4242 is NODE_FAIL"),
    (("JobId=4242 JobState=RUNNING Restarts=2",), "its Slurm job 4242 was requeued since (restart 2)"),
    (("slurm_load_jobs error: Invalid job id specified", 1), "its Slurm job 4242 is GONE"),
    (None, None),  # RUNNING, same incarnation: alive, whatever the heartbeat's age below the limit
])
def test_slurm_tells_whether_a_holder_on_another_node_is_gone(tmp_path, scontrol, answer, why):
    scontrol(*(answer or ("JobId=4242 JobState=RUNNING Restarts=1",)))
    run_dir = tmp_path / "run"
    forge(run_dir, holder(host="node7", slurm_job_id="4242", slurm_restart=1, heartbeat=time.time() - 600))
    if why is None:
        with pytest.raises(LockError, match="on node7 \\(Slurm job 4242\\)"):
            take(run_dir)
        return
    lock, notice = take(run_dir)
    assert notice.endswith(why), notice
    lock.release()


def test_the_holder_stops_once_another_run_took_its_lock_over(tmp_path):
    lock, _ = take(tmp_path)
    lock.beat(1.0)
    (tmp_path / LOCK).write_text(json.dumps(holder(host="node7", pid=99, token="other")))
    with pytest.raises(StorageError, match="no longer this run's: the lock is held by es-mpi pid 99 on node7"):
        lock.beat(1.0)
    lock.release()
    assert (tmp_path / LOCK).exists(), "the other run's lock must stay"


def test_the_heartbeat_grows_with_the_generations(tmp_path):
    lock, _ = take(tmp_path)
    lock.beat(200.0)
    assert json.loads((tmp_path / LOCK).read_text())["stale_after_s"] == 2000.0
    lock.release()


# --- Training runs. ---

@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """About a second per generation on one process (full-length HalfCheetah episodes)."""
    return write_job(tmp_path_factory.mktemp("job") / "job.yaml",
                     tiny_job(env={"episode_cap": "env"}, es={"pairs": 4},
                              run={"generations": GENERATIONS, "eval_every": 0, "checkpoint_every": 2}))


@pytest.fixture(scope="module")
def reference(job, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (run_dir / LOCK).exists(), "a finished run leaves its lock behind"
    return run_dir


def snapshot(run_dir: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.iterdir()}


def test_second_run_is_refused_while_the_first_goes_on_unaffected(job, reference, tmp_path):
    run_dir = tmp_path / "run"
    first = Training([job, "--run-dir", run_dir])
    try:
        first.wait_line("gen    0/")
        second = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], timeout=120)
        code = first.wait()
    finally:
        first.proc.kill()
    assert second.returncode == 2, second.stderr
    assert second.stderr.startswith(f"es-mpi: error: {run_dir / LOCK}: in use by es-mpi pid {first.proc.pid} "
                                    f"on {HOST}, started "), second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and second.stdout == "", second.stderr
    assert code == 0, first.out
    assert np.array_equal(read_theta(run_dir), read_theta(reference))
    with h5py.File(run_dir / "metrics.h5") as f:
        assert list(f["generation"][...]) == list(range(GENERATIONS))


def test_refused_run_touches_nothing(job, reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    forge(run_dir, holder(slurm_job_id="4242"))  # this test's own process: alive
    before = snapshot(run_dir)
    proc = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto", "--set", "run.generations=9"])
    assert proc.returncode == 2, proc.stderr
    assert f"in use by es-mpi pid {os.getpid()} on {HOST} (Slurm job 4242)" in proc.stderr
    assert snapshot(run_dir) == before


def test_kill_9_then_resume_takes_the_lock_over_and_matches_an_uninterrupted_run(job, reference, tmp_path):
    run_dir = tmp_path / "run"
    run = Training([job, "--run-dir", run_dir])
    run.wait_line("gen    2/")
    run.proc.send_signal(signal.SIGKILL)
    run.wait()
    assert json.loads((run_dir / LOCK).read_text())["pid"] == run.proc.pid
    resumed = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (f"es-mpi: notice: {run_dir / LOCK}: taking over from es-mpi pid {run.proc.pid} on {HOST}"
            in resumed.stderr), resumed.stderr
    assert f"process {run.proc.pid} is gone" in resumed.stderr
    assert "resuming at generation 2" in resumed.stdout
    assert np.array_equal(read_theta(run_dir), read_theta(reference))
    assert not (run_dir / LOCK).exists()


# --- Under the real local Slurm cluster (tests/test_slurm.py starts it; root only). ---

def job_tasks(job_id: str) -> list[int]:
    """Pids of the es-mpi ranks of Slurm job `job_id` (python processes whose environment names the job)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (f"SLURM_JOB_ID={job_id}".encode() in environ and Path(argv[0].decode()).name.startswith("python")
                and b"es_mpi" in argv and b"train" in argv):
            pids.append(int(entry.name))
    return pids


@pytest.mark.slurm
def test_a_job_whose_node_died_is_requeued_and_takes_its_lock_over(slurm, tmp_path):  # noqa: F811
    """The job's ranks die at once (kill -9, as with a node that fails) and the lock is made to name another
    host, so only Slurm can tell it is stale: the requeued job (restart 1) takes it over, resumes and ends
    bit-identical to an uninterrupted run."""
    run_dir, ref_dir, log = tmp_path / "run", tmp_path / "ref", tmp_path / "job.out"
    args = ["--set", "run.generations=12", "--set", "run.checkpoint_every=2", *SHRINK]
    job_id = sbatch(["-N1", "-n2", f"--output={log}", "slurm/humanoid_1440.sh", *args], ES_MPI_RUN_DIR=str(run_dir))
    deadline = time.monotonic() + 90
    while "gen    2/" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"no generation 2 after 90 s\n{output_of([log])}"
        time.sleep(0.1)
    tasks = job_tasks(job_id)
    assert len(tasks) == 2, tasks
    segments = {line.split()[-1] for pid in tasks for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                if "/dev/shm/" in line}
    for pid in tasks:
        os.kill(pid, signal.SIGKILL)
    wait_for(job_id, finished, 60, lambda: [log])
    # A dead node's /dev/shm goes with it; here MPICH's segments of the killed step would stay, and the
    # requeued step (same job and step id) fails in MPI_Init on them.
    for segment in segments:
        Path(segment).unlink(missing_ok=True)
    held = json.loads((run_dir / LOCK).read_text())
    assert (held["slurm_job_id"], held["slurm_restart"], held["pid"]) == (job_id, 0, min(tasks)), held
    (run_dir / LOCK).write_text(json.dumps({**held, "host": "node-gone", "boot_id": ""}))
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    (rec,) = wait_for(job_id, lambda r: int(r[0]["Restarts"]) >= 1 and finished(r), 150, lambda: [log])
    text = log.read_text()
    assert (rec["JobState"], rec["ExitCode"]) == ("COMPLETED", "0:0"), text
    assert (f"taking over from es-mpi pid {held['pid']} on node-gone (Slurm job {job_id})" in text
            and f"its Slurm job {job_id} was requeued since (restart 1)" in text), text
    assert "resuming at generation" in text and "done: generation 12" in text, text
    with h5py.File(run_dir / "metrics.h5") as f:
        assert list(f["generation"][...]) == list(range(12))
    assert not (run_dir / LOCK).exists()
    # The uninterrupted reference, outside Slurm (results do not depend on the rank count).
    ref = run_cli(["train", "jobs/humanoid.yaml", "--run-dir", ref_dir, *args], timeout=300)
    assert ref.returncode == 0, ref.stderr
    assert np.array_equal(read_theta(run_dir), read_theta(ref_dir))
