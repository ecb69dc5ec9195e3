"""metrics.h5: one row per generation, one chunked resizable dataset per column, self-describing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

METRICS = "metrics.h5"

# name: (dtype, units, description)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "generation": ("i8", "1", "generation index, from 0"),
    "timesteps": ("i8", "steps", "training env steps spent after this generation"),
    "episodes": ("i8", "1", "training episodes run after this generation"),
    "return_mean": ("f8", "return", "mean return of this generation's perturbed episodes"),
    "return_std": ("f8", "return", "std of the perturbed returns"),
    "return_min": ("f8", "return", "lowest perturbed return"),
    "return_max": ("f8", "return", "highest perturbed return"),
    "length_mean": ("f8", "steps", "mean length of the perturbed episodes"),
    "eval_return": ("f8", "return", "mean return of the noiseless policy (NaN when not evaluated)"),
    "eval_length": ("f8", "steps", "mean length of the evaluation episodes (NaN when not evaluated)"),
    "episode_cap": ("i8", "steps", "step limit of this generation's training episodes"),
    "theta_norm": ("f8", "1", "L2 norm of the parameters after the update"),
    "grad_norm": ("f8", "1", "L2 norm of the ES gradient estimate"),
    "wall_s": ("f8", "s", "training wall time after this generation, over all restarts"),
    "generation_s": ("f8", "s", "wall time of this generation"),
    "rollout_s": ("f8", "s", "mean over ranks of the time spent running episodes"),
    "wait_s": ("f8", "s", "mean over ranks of the time waiting for the slowest rank"),
    "comm_s": ("f8", "s", "mean over ranks of the time in collectives, waiting excluded"),
    "update_s": ("f8", "s", "time to rank, compute the gradient and step the optimiser"),
    "steps_per_s": ("f8", "steps/s", "env steps (training and evaluation) per second of this generation"),
    "ranks": ("i8", "1", "number of MPI ranks"),
}


class MetricsLog:
    """Appends rows; opened on resume, it drops rows past the checkpoint so the file matches the state."""

    def __init__(self, run_dir: Path, keep_rows: int, attrs: dict) -> None:
        path = Path(run_dir) / METRICS
        self.file = h5py.File(path, "a")
        for name, (dtype, units, description) in COLUMNS.items():
            if name not in self.file:
                ds = self.file.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
                ds.attrs["units"], ds.attrs["description"] = units, description
            elif self.file[name].shape[0] > keep_rows:
                self.file[name].resize((keep_rows,))
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.file.flush()

    def append(self, row: dict) -> None:
        missing = set(COLUMNS) - set(row)
        if missing:
            raise KeyError(f"metrics row lacks {sorted(missing)}")
        for name in COLUMNS:
            ds = self.file[name]
            n = ds.shape[0]
            ds.resize((n + 1,))
            ds[n] = row[name]
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    with h5py.File(Path(run_dir) / METRICS, "r") as f:
        return {name: f[name][...] for name in f if isinstance(f[name], h5py.Dataset)}
