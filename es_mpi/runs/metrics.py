"""metrics.h5: one row per generation, one chunked resizable dataset per column, self-describing.

Written in HDF5 SWMR mode (single writer, multiple readers), so a report can read a run that is still
training and never see a broken file.
"""

from __future__ import annotations

import io
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from es_mpi.runs import storage
from es_mpi.runs.storage import RunDirectory, StorageError

METRICS = "metrics.h5"

# The engine's columns, name: (dtype, units, description); a strategy adds its own (Strategy.columns).
COLUMNS: dict[str, tuple[str, str, str]] = {
    "generation": ("i8", "1", "generation index, from 0"),
    "timesteps": ("i8", "steps", "training env steps spent after this generation"),
    "episodes": ("i8", "1", "training episodes run after this generation"),
    "return_mean": ("f8", "return", "mean return of this generation's perturbed episodes"),
    "return_std": ("f8", "return", "std of the perturbed returns"),
    "return_min": ("f8", "return", "lowest perturbed return"),
    "return_max": ("f8", "return", "highest perturbed return"),
    "length_mean": ("f8", "steps", "mean length of the perturbed episodes"),
    "length_max": ("i8", "steps", "longest perturbed episode: no assignment of episodes to ranks ends the "
                   "generation sooner (-1 in rows written before this column existed)"),
    "eval_return": ("f8", "return", "mean return of the noiseless policy (NaN when not evaluated)"),
    "eval_length": ("f8", "steps", "mean length of the evaluation episodes (NaN when not evaluated)"),
    "eval_timesteps": ("i8", "steps", "training steps the evaluated parameters had seen: timesteps before this "
                       "generation's update (-1 when not evaluated, and in rows written before this column existed)"),
    "eval_wall_s": ("f8", "s", "training wall time the evaluated parameters had taken: wall_s before this "
                    "generation (NaN when not evaluated, and in rows written before this column existed)"),
    "wall_s": ("f8", "s", "training wall time after this generation, over all restarts"),
    "generation_s": ("f8", "s", "wall time of this generation"),
    "rollout_s": ("f8", "s", "mean over ranks of the time spent running episodes"),
    "wait_s": ("f8", "s", "mean over ranks of the time waiting for the slowest rank"),
    "comm_s": ("f8", "s", "mean over ranks of the time in collectives, waiting excluded"),
    "update_s": ("f8", "s", "time to rank, compute the gradient and step the optimiser"),
    "steps_per_s": ("f8", "steps/s", "env steps (training and evaluation) per second of this generation"),
    "ranks": ("i8", "1", "number of MPI ranks"),
    "handovers": ("i8", "1", "episodes a rank handed to another to finish (-1 in rows written "
                  "before this column existed)"),
    "checkpoint_s": ("f8", "s", "wall time of writing the checkpoint after this generation (NaN when none was "
                     "written)"),
}


# Per rank and generation: seconds in rollouts, waiting for the slowest rank, collectives, update.
RANK_TIMES = "rank_times"
RANK_PARTS = ("rollout", "wait", "comm", "update")
# Rows per chunk of a column, and (rows, ranks, parts) per chunk of rank_times.
ROW_CHUNK = 256
TIMES_CHUNK = (64, 16, len(RANK_PARTS))


class MetricsLog:
    """Appends rows, in SWMR mode so that reports can read a live run.

    Opening rewrites the file from its complete rows up to `keep_rows` (the checkpoint's generation): that
    drops rows a crashed run wrote after its last checkpoint, and a file left flagged as open by a killed
    writer (SWMR consistency flags) or written by an older format would otherwise refuse to reopen. The new
    file is made in memory and written whole (es_mpi.runs.storage); each row is then written into disk space
    reserved beforehand, so that a full disk or a quota stops the run before HDF5 sees a failed write
    (which it does not survive). A failure raises StorageError; `broken` tells whether HDF5 saw it.
    """

    def __init__(self, run_dir: RunDirectory, keep_rows: int, attrs: dict,
                 columns: dict[str, tuple[str, str, str]]) -> None:
        self.columns = {**COLUMNS, **columns}
        self.path = run_dir.path / METRICS
        self.broken = False
        old = {k: v[:keep_rows] for k, v in read_metrics(run_dir.path).items()} if run_dir.exists(METRICS) else {}
        run_dir.write(METRICS, self._image(old, attrs))
        try:
            self.file = _open_waiting(self.path, "a", libver="latest")
            self.file.swmr_mode = True
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot open for writing: {exc}", storage.fix_for(exc)) from None

    def _image(self, old: dict[str, np.ndarray], attrs: dict) -> bytes:
        kept = len(old.get("generation", ()))
        buffer = io.BytesIO()
        # SWMR needs the latest file format, and no new datasets or attributes once it is on.
        with h5py.File(buffer, "w", libver="latest") as f:
            for name, (dtype, units, description) in self.columns.items():
                data = old.get(name, np.full(kept, np.nan if dtype == "f8" else -1, dtype))
                ds = f.create_dataset(name, data=data, maxshape=(None,), dtype=dtype, chunks=(ROW_CHUNK,))
                ds.attrs["units"], ds.attrs["description"] = units, description
            times = old.get(RANK_TIMES, np.zeros((0, 1, len(RANK_PARTS))))
            ds = f.create_dataset(RANK_TIMES, data=times, maxshape=(None, None, len(RANK_PARTS)),
                                  chunks=TIMES_CHUNK, fillvalue=np.nan)
            ds.attrs["units"] = "s"
            ds.attrs["description"] = ("per generation and rank: seconds in rollouts, waiting for the slowest rank, "
                                       "collectives (waiting excluded) and the update; NaN where a rank did not exist")
            ds.attrs["parts"] = list(RANK_PARTS)
            for key, value in attrs.items():
                f.attrs[key] = value
        return buffer.getvalue()

    def reserve(self, ranks: int) -> None:
        """Make sure the next row can be written whatever space is left: twice the most one row can add (a
        new chunk of every column and of `rank_times`, index blocks) allocated past the file's end."""
        rank_chunks = -(-max(ranks, 1) // TIMES_CHUNK[1])
        row_bytes = 8 * (len(self.columns) * ROW_CHUNK + rank_chunks * int(np.prod(TIMES_CHUNK)))
        try:
            storage.reserve(self.file.id.get_vfd_handle(), 2 * row_bytes + storage.SLACK)
        except OSError as exc:
            raise StorageError(f"{self.path}: no room for the next rows: {storage.describe(exc)}",
                               storage.fix_for(exc)) from None

    def append(self, row: dict) -> None:
        missing = set(self.columns) - set(row)
        if missing:
            raise KeyError(f"metrics row lacks {sorted(missing)}")
        self.reserve(len(row[RANK_TIMES]))
        with self._writing():
            times = self.file[RANK_TIMES]
            n = times.shape[0]
            ranks = max(times.shape[1], len(row[RANK_TIMES]))
            times.resize((n + 1, ranks, len(RANK_PARTS)))
            times[n, : len(row[RANK_TIMES])] = row[RANK_TIMES]
            # `generation` last: readers take a row as complete once its generation number is there.
            for name in sorted(self.columns, key=lambda c: c == "generation"):
                ds = self.file[name]
                ds.resize((n + 1,))
                ds[n] = row[name]
            self.file.flush()

    def amend_last(self, name: str, value: float) -> None:
        """Set column `name` of the last row (a value known only after the row was written)."""
        with self._writing():
            ds = self.file[name]
            ds[ds.shape[0] - 1] = value
            self.file.flush()

    @contextmanager
    def _writing(self):
        try:
            yield
        except (OSError, RuntimeError) as exc:
            self.broken = True
            # HDF5's message spans lines and buries the OS error in them ("errno = 28").
            found = re.search(r"errno = (\d+)", str(exc))
            code = int(found[1]) if found else 0
            why = storage.describe(OSError(code, os.strerror(code))) if code else str(exc).split("\n")[0]
            raise StorageError(f"{self.path}: {why}", storage.fix_for(OSError(code, why))) from None

    def close(self) -> None:
        """Close the file; after a write HDF5 saw fail, leave it alone (closing would crash the process)."""
        if self.broken:
            _ABANDONED.append(self.file)
        else:
            self.file.close()


# Files whose write failed inside HDF5: kept referenced so that no garbage collection touches them; the
# train command then ends the process without the interpreter's clean-up (es_mpi.commands.train).
_ABANDONED: list[h5py.File] = []


def _open_waiting(path: Path, mode: str, **options) -> h5py.File:
    """h5py.File, waiting up to 2 s while another process holds HDF5's lock on the file: the writer holds it
    for the few milliseconds between opening the file and switching SWMR on, and a reader that opened the
    file before that holds a shared lock that keeps the writer out until it closes."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            return h5py.File(path, mode, **options)
        except OSError:
            if time.monotonic() > deadline or not path.exists():
                raise
            time.sleep(0.1)


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    """Every column, complete rows only: on a live run the writer may be part-way through a row."""
    with _open_waiting(Path(run_dir) / METRICS, "r", swmr=True) as f:
        columns = {name: f[name][...] for name in f if isinstance(f[name], h5py.Dataset)}
    n = min((c.shape[0] for c in columns.values()), default=0)
    # Rows hold generations 0..n-1 and `generation` is written last; a row not yet written reads as 0.
    done = columns.get("generation", np.arange(n))[:n] == np.arange(n)
    n = int(np.argmin(np.append(done, False)))
    return {name: c[:n] for name, c in columns.items()}


def read_metrics_attrs(run_dir: Path) -> dict:
    """The file attributes (job_yaml, job_digest, env_id, ...) as plain Python values."""
    with _open_waiting(Path(run_dir) / METRICS, "r", swmr=True) as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
