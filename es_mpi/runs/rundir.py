"""Run directories on rank 0: create or resume, never overwrite, and record each generation."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np

from es_mpi.engine.loop import progress_line
from es_mpi.runs.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    checkpoint_image,
    checkpoint_job,
    read_checkpoint,
    write_checkpoint,
)
from es_mpi.runs.job import RESUMABLE_KEYS, ConfigError, Job, job_from_dict, parse_yaml
from es_mpi.runs.lock import RunLock
from es_mpi.runs.metrics import METRICS, MetricsLog
from es_mpi.runs.state import TrainState, descriptions, save_state
from es_mpi.runs.storage import EXIT_STORAGE, SLACK, WARN_CHECKPOINTS, RunDirectory, StorageError, size_text
from es_mpi.runs.tensorboard import Board
from es_mpi.strategies.base import Saved, Strategy

JOB_FILE = "job.yaml"
# A checkpoint write taking longer than this many seconds and this share of the training time since the
# last one is reported as slow.
SLOW_CHECKPOINT_S = 1.0
SLOW_CHECKPOINT_SHARE = 0.1


def default_run_dir(job_path: str, job: Job) -> Path:
    """Stable for a given job file and seed, so that a requeued job finds its own run."""
    return Path("results") / "runs" / f"{Path(job_path).stem}-seed{job.run.seed}"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) and v and k != "kwargs" else {key: v})
    return out


def job_differences(old: Job, new: Job) -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) where the jobs differ, resumable keys excluded."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    keys = sorted((set(a) | set(b)) - set(RESUMABLE_KEYS))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def _refuse_other_job(stored: Job, job: Job, where: Path) -> None:
    diff = job_differences(stored, job)
    if diff:
        shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diff[:3])
        raise ConfigError(
            f"{where}: holds a different job ({shown}); only {', '.join(RESUMABLE_KEYS)} may change on resume; "
            "use another --run-dir for a new job"
        )


def open_run(run_dir: Path, job: Job, resume: str) -> tuple[Saved | None, dict, str]:
    """Check `run_dir` against the job and the resume mode. Returns the checkpoint's saved state and root
    attributes, or (None, {}) to start fresh, and a notice for the user ("" if none). Raises ConfigError,
    touching nothing, when the directory must not be used."""
    ckpt = run_dir / CHECKPOINT
    if resume == "never":
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir}: run directory already holds a run; pass --resume auto to continue it, "
                "or --run-dir to start a new one"
            )
        return None, {}, ""
    previous = run_dir / PREVIOUS
    if not ckpt.exists() and not previous.exists():
        if resume == "must":
            raise ConfigError(f"{ckpt}: no checkpoint to resume (--resume must); use --resume auto to start fresh")
        stored = run_dir / JOB_FILE
        if stored.exists():
            _refuse_other_job(job_from_dict(parse_yaml(stored.read_text(), str(stored)), str(stored)), job, run_dir)
        return None, {}, ""
    notice = ""
    try:
        saved, attrs = read_checkpoint(ckpt)
    except ConfigError as exc:
        if resume != "auto" or not previous.exists():
            raise
        saved, attrs = read_checkpoint(previous)
        notice = f"{exc}; resuming from {previous} (generation {attrs.get('generation')}) instead"
    _refuse_other_job(checkpoint_job(attrs, ckpt), job, ckpt)
    return saved, attrs, notice


class Recorder:
    """Rank 0's writer: metrics row and progress line every generation, checkpoints when asked.

    Before each generation's writes it checks the run directory (still there, writable, room for the next
    checkpoint, whose size is known); a storage fault, found so or by a failed write, ends its writing:
    `failed` becomes EXIT_STORAGE, one line on stderr says what failed and what survives, and the engine
    stops every rank. Raises StorageError when the directory cannot be used at all, LockError when another
    run holds it (es_mpi.runs.lock; held from here to `close`)."""

    def __init__(self, run_dir: Path, job: Job, strategy: Strategy, state: TrainState, identity: dict,
                 resumed: bool) -> None:
        self.job, self.strategy = job, strategy
        self.attrs = {"job_yaml": job.to_yaml(), "job_digest": job.digest(), **identity}
        self.stop_signal = 0
        self.failed, self.failed_at = 0, 0
        self.saved = state.generation if resumed else None  # generation of the last good checkpoint
        self.saved_wall_s = state.wall_s
        self.warned = WARN_CHECKPOINTS
        self.path = run_dir
        try:
            self.dir = RunDirectory(run_dir)
            self.dir.check_place()
            self.lock, notice = RunLock.take(self.dir)
            if notice:
                print(f"es-mpi: notice: {notice}", file=sys.stderr, flush=True)
            self.dir.remove_temporaries((CHECKPOINT, PREVIOUS, METRICS, JOB_FILE))
            self.checkpoint_bytes = len(self._image(state))
            metrics = self.dir.path / METRICS
            self._check_space(self.checkpoint_bytes + (metrics.stat().st_size if metrics.exists() else 0))
            self.dir.write(JOB_FILE, job.to_yaml().encode())
            self.metrics = MetricsLog(self.dir, state.generation, self.attrs, strategy.columns)
            self.board = self._board(state) if job.run.tensorboard else None
        except StorageError as exc:
            raise StorageError(f"{exc}; {self._survivors(exc)}", exc.fix) from None

    def __call__(self, state: TrainState, row: dict, checkpoint: bool) -> None:
        self.stop_signal = row.get("stop_signal", 0)
        try:
            self.dir.check_place()
            self.lock.beat(row["generation_s"])
            image = self._image(state) if checkpoint else None
            self._check_space(len(image) if image else self.checkpoint_bytes)
            self.metrics.append({**row, "checkpoint_s": np.nan})
            print(progress_line(self.job, row), flush=True)
            took = self._write_checkpoint(state, image) if image else np.nan
            if self.board:
                self.board.append({**row, "checkpoint_s": took})
        except StorageError as exc:
            self.failed, self.failed_at = EXIT_STORAGE, state.generation
            print(f"es-mpi: error: {exc}; {self._survivors(exc)}", file=sys.stderr, flush=True)

    def _board(self, state: TrainState) -> Board:
        """TensorBoard's events file, starting with the rows metrics.h5 kept."""
        kept = {name: self.metrics.file[name][...] for name in self.metrics.columns}
        dtypes = {name: column[0] for name, column in self.metrics.columns.items()}
        return Board(self.dir, kept, dtypes, _flatten(self.job.to_dict()), self.job.to_yaml(),
                     time.time() - state.wall_s)

    def _image(self, state: TrainState) -> bytes:
        return checkpoint_image(save_state(state, self.strategy), descriptions(self.strategy), self.attrs)

    def _write_checkpoint(self, state: TrainState, image: bytes) -> float:
        start = time.perf_counter()
        path = write_checkpoint(self.dir, image)
        took = time.perf_counter() - start
        self.saved, self.checkpoint_bytes = state.generation, len(image)
        self.metrics.amend_last("checkpoint_s", took)
        trained = state.wall_s - self.saved_wall_s
        self.saved_wall_s = state.wall_s
        if took > SLOW_CHECKPOINT_S and took > SLOW_CHECKPOINT_SHARE * trained:
            print(f"es-mpi: warning: {path} took {took:.1f} s to write ({size_text(len(image))}), "
                  f"{took / max(trained, 1e-9):.0%} of the {trained:.1f} s trained since the last one: a slow "
                  "file system? raise run.checkpoint_every or use a faster --run-dir", flush=True)
        return took

    def _check_space(self, need: int) -> None:
        """Room for a write of `need` bytes beside the files there, or StorageError before writing anything;
        a warning, once per checkpoint's worth lost, while fewer than WARN_CHECKPOINTS fit."""
        free = self.dir.free_bytes()
        if free < need + SLACK:
            raise StorageError(f"{self.dir.path}: {size_text(free)} free on its file system, the next "
                               f"checkpoint needs {size_text(need + SLACK)}; stopped before writing it")
        worth = free / max(self.checkpoint_bytes, 1)
        if int(worth) >= self.warned:
            self.warned = min(int(worth), WARN_CHECKPOINTS)  # space was freed: warn again should it fill
        else:
            self.warned = int(worth)
            print(f"es-mpi: warning: {self.dir.path}: {size_text(free)} free on its file system, room for "
                  f"{worth:.1f} checkpoints of {size_text(self.checkpoint_bytes)}; free space, or the run stops "
                  "(cleanly) when the next one would not fit", flush=True)

    def _survivors(self, exc: StorageError) -> str:
        """What is left to resume from, and what to do."""
        if self.saved is None:
            return f"no checkpoint written yet; {exc.fix}, then --resume auto (it starts afresh)"
        if exc.fix == "restore the run directory":
            return f"its checkpoints went with it (the last: generation {self.saved}); {exc.fix} or start again"
        return (f"last good checkpoint: generation {self.saved} in {self.path / CHECKPOINT}; {exc.fix}, "
                "then --resume auto")

    def close(self, state: TrainState, code: int) -> bool:
        """Close metrics.h5 and print the closing line; False if metrics.h5 could not be closed (HDF5 saw a
        write fail: the process must end without the interpreter's clean-up, which would crash in HDF5)."""
        self.lock.release()
        if self.board:
            self.board.close()
        self.metrics.close()
        self.dir.close()
        word = "done" if code == 0 else f"exit {code}"
        if code == 3:
            word = f"stopped by {signal.Signals(self.stop_signal).name}; resume with --resume auto"
        if code == EXIT_STORAGE:
            saved = "none" if self.saved is None else f"generation {self.saved}"
            print(f"stopped by a storage fault: generation {self.failed_at}, last good checkpoint {saved}",
                  flush=True)
            return not self.metrics.broken
        print(f"{word}: generation {state.generation}, {state.timesteps:,} timesteps, "
              f"checkpoint {self.dir.path / CHECKPOINT}", file=sys.stdout, flush=True)
        return True
