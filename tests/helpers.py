"""Shared test helpers: tiny jobs and running the CLI, alone or under mpiexec, with a timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from es_mpi.core.noise import fill_noise

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def mpiexec() -> str:
    found = shutil.which("mpiexec", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.skip("no mpiexec on PATH (install the mpich extra)")
    return found


def tiny_job(**sections) -> dict:
    """A HalfCheetah job of a few seconds that still exercises adaptive caps and observation statistics."""
    job = {
        "env": {"id": "HalfCheetah-v5", "episode_cap": "adaptive",
                "adaptive": {"start": 40, "fraction": 0.5, "ratio": 1.5}},
        "policy": {"hidden": [8, 8], "obs_stat_fraction": 0.5},
        "es": {"pairs": 5, "sigma": 0.05, "noise_table_size": 200_000},
        "optimizer": {"kind": "adam", "lr": 0.05},
        "run": {"seed": 3, "generations": 3, "eval_every": 2, "eval_episodes": 2, "checkpoint_every": 1},
    }
    for name, values in sections.items():
        job[name].update(values)
    return job


def write_job(path: Path, job: dict) -> Path:
    path.write_text(yaml.safe_dump(job))
    return path


def run_cli(args: list[str], ranks: int | None = None, timeout: float = 180, cwd: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`es-mpi ARGS` as a subprocess; under `mpiexec -n ranks` when ranks is given."""
    cmd = [sys.executable, "-m", "es_mpi", *map(str, args)]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=full_env)


def make_noise(size: int, seed: int) -> np.ndarray:
    """A private noise table, as every rank's shared one is filled."""
    table = np.empty(size, dtype=np.float32)
    fill_noise(table, seed)
    return table


def read_theta(run_dir: Path) -> np.ndarray:
    with h5py.File(run_dir / "checkpoint.h5", "r") as f:
        return f["theta"][...]


class Training:
    """`es-mpi train ARGS` on one process in the background, stdout and stderr read line by line into
    `lines`, so that a test can act at a known point of the run (a progress line) and then wait for it."""

    def __init__(self, args: list, env: dict | None = None) -> None:
        import threading

        self.proc = subprocess.Popen([sys.executable, "-m", "es_mpi", "train", *map(str, args)], cwd=ROOT,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_line(self, prefix: str, timeout: float = 120) -> None:
        """Until a line starting with `prefix` was printed; the test fails if the run ends or times out first."""
        import time

        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no line starting {prefix!r} (exit {self.proc.poll()}):\n{self.out}")
            time.sleep(0.02)

    def wait(self, timeout: float = 180) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running after {timeout} s:\n{self.out}")
        self._reader.join(10)
        return code
