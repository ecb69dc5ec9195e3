"""`es-mpi eval`: the checkpoint's noiseless policy over N episodes, spread over the ranks.

Episode e runs on rank e mod size with an env seed derived from (run seed, e), so the returns are the
same on any number of ranks.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

from es_mpi.core import seeds
from es_mpi.envs.make import make_env
from es_mpi.envs.rollout import run_episode
from es_mpi.parallel.comm import LocalComm, get_comm, load_on_root
from es_mpi.policies.make import make_policy
from es_mpi.policies.trained import load_policy
from es_mpi.reports.video import FrameRecorder, check_video_path, render_problem, rendering, write_video
from es_mpi.runs.checkpoint import CHECKPOINT
from es_mpi.runs.job import ConfigError, job_from_dict
from es_mpi.runs.storage import EXIT_STORAGE, describe, fix_for

# Seed purpose of checkpoint evaluations; seeds.py's purposes are 0..5, so no stream is shared.
CHECKPOINT_EVAL = 1000


def eval_seed(job, episode: int) -> int:
    """The env seed of `es-mpi eval`'s episode `episode` (users' own loops reproduce eval with it)."""
    return seeds.derive_seed(job.run.seed, episode, CHECKPOINT_EVAL)


def _load(args) -> tuple[dict, dict]:
    """Rank 0: check the flags and read the checkpoint once, so every rank evaluates the same policy even
    when a live run replaces the file meanwhile."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a directory; give a run directory made by es-mpi train")
    if not (run_dir / CHECKPOINT).exists():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT} yet; one is written every run.checkpoint_every generations")
    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: must be >= 1")
    for flag, name in (("--csv", args.csv), ("--video", args.video)):
        if name and not Path(name).parent.is_dir():
            raise ConfigError(f"{flag} {name}: directory {Path(name).parent} does not exist")
    if args.video:
        check_video_path(Path(args.video))
    trained = load_policy(run_dir)
    job, state, mean, std = trained.job, trained.state, trained.mean, trained.std
    path = run_dir / CHECKPOINT
    header = {"job": job.to_dict(), "source": f"{path}:job_yaml", "generation": state.generation,
              "timesteps": state.timesteps}
    empty = np.zeros(0, np.float32)
    ref_batch = state.ref_batch if state.ref_batch is not None else np.zeros(0, np.uint8)
    return header, {"theta": trained.theta, "mean": empty if mean is None else mean,
                    "std": empty if std is None else std, "ref_batch": ref_batch}


class _Progress:
    """A bar on stderr for rank 0's share of the episodes: redrawn in place on a terminal, one line per
    tenth in a log file."""

    def __init__(self, total: int, note: str) -> None:
        self.total, self.note, self.shown = total, note, -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: float) -> None:
        tenth = int(10 * done / self.total)
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        bar = "#" * int(30 * done / self.total)
        end = "\r" if self.tty and done < self.total else "\n"
        sys.stderr.write(f"eval [{bar:<30}] {done:.0f}/{self.total} episodes{self.note}{end}")
        sys.stderr.flush()


def _evaluate(comm: LocalComm, header: dict, got: dict, args) -> tuple[np.ndarray, str]:
    """This rank's episodes as rows (episode, env seed, return, length), and on rank 0 why the video of
    episode 0, when asked for, could not be written ("" if it was); the episodes go on, so that every
    rank still meets the others."""
    job = job_from_dict(header["job"], header["source"])
    record = bool(args.video) and comm.rank == 0
    env, limit = make_env(rendering(job.env) if record else job.env, header["source"])
    problem = render_problem(env) if record else None
    # Every rank learns of a rank 0 rendering failure and returns, instead of waiting in a collective.
    if any(block[0] for block in comm.gather_blocks(np.array([float(problem is not None)]))):
        raise ConfigError(problem or "rank 0 cannot render")
    ref_batch = got["ref_batch"] if got["ref_batch"].size else None
    policy = make_policy(job.policy, env, ref_batch, header["source"])
    theta = got["theta"]
    mean, std = (got["mean"], got["std"]) if got["mean"].size else (None, None)
    mine = range(comm.rank, args.episodes, comm.size)
    progress = _Progress(len(mine), f" (rank 0 of {comm.size})" if comm.size > 1 else "")
    rows, failure = [], ""
    for k, e in enumerate(mine):
        env_seed = eval_seed(job, e)
        recorder = None
        if record and e == 0:
            recorder = FrameRecorder(env, lambda frames, k=k: progress(k + min(frames / limit, 1.0)))
        ep = run_episode(recorder or env, policy, theta, mean, std, limit, env_seed)
        rows.append([e, env_seed, ep.ret, ep.length])
        if recorder:
            try:
                write_video(Path(args.video), recorder.frames, env.metadata.get("render_fps", 30))
                print(f"video: {args.video}, {len(recorder.frames)} frames of episode 0 (return {ep.ret:.1f})")
            except OSError as exc:
                failure = _write_failure(args.video, exc)
        if comm.rank == 0:
            progress(k + 1)
    return np.asarray(rows, np.float64).reshape(-1, 4), failure


def _write_failure(name: str, exc: OSError) -> str:
    return f"{name}: cannot write: {describe(exc)}; {fix_for(exc)}, then run es-mpi eval again"


def eval_command(args) -> int:
    """Exit 0 after printing the statistics on rank 0, 2 for bad input, 4 when the CSV or video cannot be
    written (one line, printed once)."""
    if args.video:
        # Headless offscreen rendering; must be set before mujoco is first imported.
        os.environ.setdefault("MUJOCO_GL", "egl")
    comm = get_comm()
    header, got = load_on_root(comm, lambda: _load(args), ("theta", "mean", "std", "ref_batch"))
    if "error" not in header:
        try:
            rows, failure = _evaluate(comm, header, got, args)
        except ConfigError as exc:
            header = {"error": str(exc)}
    if "error" in header:
        if comm.rank == 0:
            print(f"es-mpi: error: {header['error']}", file=sys.stderr)
        return 2
    rows = np.concatenate(comm.gather_blocks(rows.ravel())).reshape(-1, 4)
    if comm.rank != 0:
        return 0
    rows = rows[np.argsort(rows[:, 0])]
    returns = rows[:, 2]
    print(f"eval {args.run_dir}: {header['job']['env']['id']}, checkpoint generation {header['generation']} "
          f"({header['timesteps']:,} timesteps), {len(rows)} episodes on {comm.size} rank(s)")
    print(f"return mean {returns.mean():.1f} std {returns.std():.1f} min {returns.min():.1f} "
          f"max {returns.max():.1f} | length mean {rows[:, 3].mean():.1f}")
    if args.csv and not failure:
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["episode", "env_seed", "return", "length"])
                writer.writerows([int(e), int(s), repr(float(r)), int(n)] for e, s, r, n in rows)
        except OSError as exc:
            failure = _write_failure(args.csv, exc)
    if failure:
        print(f"es-mpi: error: {failure}", file=sys.stderr)
        return EXIT_STORAGE
    return 0
