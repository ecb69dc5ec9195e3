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
