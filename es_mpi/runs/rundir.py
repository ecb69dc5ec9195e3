"""Run directories on rank 0: create or resume, never overwrite, and record each generation."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from es_mpi.engine.loop import progress_line
from es_mpi.runs.checkpoint import CHECKPOINT, PREVIOUS, checkpoint_job, read_checkpoint, write_checkpoint
from es_mpi.runs.job import BUDGET_KEYS, ConfigError, Job, job_from_dict, parse_yaml
from es_mpi.runs.metrics import MetricsLog
from es_mpi.runs.state import TrainState, descriptions, save_state
from es_mpi.strategies.base import Saved, Strategy

JOB_FILE = "job.yaml"


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
    """(dotted key, old value, new value) where the jobs differ, budget keys excluded."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if k not in BUDGET_KEYS and a.get(k) != b.get(k)]


def _refuse_other_job(stored: Job, job: Job, where: Path) -> None:
    diff = job_differences(stored, job)
    if diff:
        shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in diff[:3])
        raise ConfigError(
            f"{where}: holds a different job ({shown}); only run.generations and run.timesteps may change "
            "on resume; use another --run-dir for a new job"
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


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Recorder:
    """Rank 0's writer: metrics row and progress line every generation, checkpoints when asked."""

    def __init__(self, run_dir: Path, job: Job, strategy: Strategy, state: TrainState, identity: dict) -> None:
        self.run_dir, self.job, self.strategy = run_dir, job, strategy
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_text_atomically(run_dir / JOB_FILE, job.to_yaml())
        self.attrs = {"job_yaml": job.to_yaml(), "job_digest": job.digest(), **identity}
        self.metrics = MetricsLog(run_dir, state.generation, self.attrs, strategy.columns)
        self.stop_signal = 0

    def __call__(self, state: TrainState, row: dict, checkpoint: bool) -> None:
        self.stop_signal = row.get("stop_signal", 0)
        self.metrics.append(row)
        print(progress_line(self.job, row), flush=True)
        if checkpoint:
            write_checkpoint(self.run_dir, save_state(state, self.strategy), descriptions(self.strategy), self.attrs)

    def close(self, state: TrainState, code: int) -> None:
        self.metrics.close()
        word = "done" if code == 0 else f"exit {code}"
        if code == 3:
            word = f"stopped by {signal.Signals(self.stop_signal).name}; resume with --resume auto"
        print(f"{word}: generation {state.generation}, {state.timesteps:,} timesteps, "
              f"checkpoint {self.run_dir / CHECKPOINT}", file=sys.stdout, flush=True)
