"""Signals and failures on one rank of a 2-rank mpiexec run (no Slurm).

SIGUSR1, SIGTERM or SIGINT on any one rank: all ranks stop at the next generation boundary, rank 0 writes
the checkpoint, every rank exits 3, and `--resume auto` finishes bit-identically to an uninterrupted run.
A second SIGINT, or an exception on one rank, aborts the whole job at once with the error printed once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import ROOT, mpiexec, read_theta, run_cli, tiny_job, write_job

pytestmark = pytest.mark.mpi

GENERATIONS = 5


def slow_job(**run) -> dict:
    """About a second per generation on 2 cores: 8,000 steps of full-length HalfCheetah episodes, so that a
    signal sent right after a progress line lands well inside the next generation. No periodic checkpoint:
    the one found after a stop must be the signal's."""
    return tiny_job(env={"episode_cap": "env"}, es={"pairs": 4},
                    run={"generations": GENERATIONS, "eval_every": 0, "checkpoint_every": 1000, **run})


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    return write_job(tmp_path_factory.mktemp("job") / "job.yaml", slow_job())


@pytest.fixture(scope="module")
def reference(job, tmp_path_factory) -> np.ndarray:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli(["train", job, "--run-dir", run_dir], ranks=2, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return read_theta(run_dir)


class Launch:
    """`mpiexec -n 2 python -m es_mpi ...` in its own session (so that it can be killed as a whole), with
    stdout read by a thread that notes the first progress line."""

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.start = time.monotonic()
        self.proc = subprocess.Popen([mpiexec(), "-n", "2", *map(str, argv)], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.first_gen = threading.Event()
        self.err = ""
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("gen "):
                self.first_gen.set()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err += line

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_first_generation(self, timeout: float = 120) -> None:
        if not self.first_gen.wait(timeout):
            self.kill()
            pytest.fail(f"no progress line within {timeout} s\n{self.out}\n{self.err}")

    def rank_pid(self, rank: int, timeout: float = 30) -> int:
        """The pid of `rank`: a descendant of mpiexec (via hydra's proxy) whose environment says PMI_RANK."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parents = {}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        pass
            for pid in parents:
                p, depth = pid, 0
                while p in parents and p != self.proc.pid and depth < 10:
                    p, depth = parents[p], depth + 1
                if p != self.proc.pid or pid == self.proc.pid:
                    continue
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                # hydra's proxy has no PMI_RANK; the ranks it starts do.
                if f"PMI_RANK={rank}".encode() in environ:
                    return pid
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"rank {rank} not found among the children of mpiexec {self.proc.pid}")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s (a rank hangs?)\n{self.out}\n{self.err}")
        for t in self._threads:
            t.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.mark.parametrize(("signum", "rank"), [(signal.SIGUSR1, 1), (signal.SIGTERM, 0), (signal.SIGINT, 1)],
                         ids=["USR1-rank1", "TERM-rank0", "INT-rank1"])
def test_signal_on_one_rank_checkpoints_exits_3_and_resumes_bit_identically(job, reference, tmp_path, signum, rank):
    run_dir = tmp_path / "run"
    run = Launch([sys.executable, "-m", "es_mpi", "train", job, "--run-dir", run_dir])
    try:
        run.wait_first_generation()
        os.kill(run.rank_pid(rank), signum)
        code = run.wait(60)
    finally:
        run.kill()
    assert code == 3, f"{run.out}\n{run.err}"
    assert f"stopped by {signal.Signals(signum).name}; resume with --resume auto" in run.out, run.out
    with h5py.File(run_dir / "checkpoint.h5", "r") as f:
        stopped_at = int(f.attrs["generation"])
    assert 1 <= stopped_at < GENERATIONS, run.out
    resumed = run_cli(["train", job, "--run-dir", run_dir, "--resume", "auto"], ranks=2, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at generation {stopped_at}" in resumed.stdout
    assert np.array_equal(read_theta(run_dir), reference)


@pytest.mark.parametrize("rank", [0, 1])
def test_second_sigint_aborts_all_ranks_at_once(job, tmp_path, rank):
    run = Launch([sys.executable, "-m", "es_mpi", "train", job, "--run-dir", tmp_path / "run",
                  "--set", "run.generations=1000"])
    try:
        run.wait_first_generation()
        pid = run.rank_pid(rank)
        os.kill(pid, signal.SIGINT)
        # The next generation boundary is about a second away. Repeat rather than send once more: two
        # SIGINTs that arrive before Python runs the first handler count as one (likely on a loaded machine).
        sent = None
        for _ in range(40):
            time.sleep(0.25)
            if run.proc.poll() is not None or "aborting all ranks" in run.err:
                break
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                break
            sent = sent or time.monotonic()
        code = run.wait(30)
    finally:
        run.kill()
    assert sent is not None, f"the job ended after one SIGINT ({code})\n{run.out}\n{run.err}"
    assert code not in (0, 3), f"{code}\n{run.out}\n{run.err}"
    assert time.monotonic() - sent < 15, "the abort was not prompt"
    assert run.err.count("aborting all ranks") == 1, f"exit {code}\n{run.out}\n{run.err}"
    assert "KeyboardInterrupt" in run.err
