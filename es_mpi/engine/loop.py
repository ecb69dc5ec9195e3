"""The generation loop: every rank runs its share of the strategy's episodes, the ranks exchange scalars,
and every rank applies the strategy's update identically."""

from __future__ import annotations

import time
import zlib

import numpy as np

from es_mpi.core.obs_stats import ObsStats
from es_mpi.engine.context import Context
from es_mpi.engine.episodes import run_share
from es_mpi.engine.message import ROW, RankReport
from es_mpi.runs.job import Job
from es_mpi.runs.state import TrainState
from es_mpi.runs.storage import EXIT_STORAGE
from es_mpi.strategies.base import Plan, Results

# A rank's stop field when rank 0 can no longer write the run directory: above every signal number.
STORAGE_STOP = 1000


class TrainingError(RuntimeError):
    """A run-time fault the user must see: drifted replicas, non-finite returns."""


def generation(ctx: Context, state: TrainState, stop: int) -> tuple[TrainState, dict, int]:
    """Run generation `state.generation` on every rank; `stop` is the number of a signal this rank got
    (0: none). Returns the new state, its metrics row and the signal any rank got (0: none)."""
    g, strategy = state.generation, ctx.strategy
    t_start = time.perf_counter()
    plan = strategy.plan(state.strategy, g)
    rows, stats, round_ = run_share(ctx, state.strategy, plan, g)
    rollout_s = time.perf_counter() - t_start
    idle_s, given = (round_.waited_s, round_.given) if round_ is not None else (0.0, 0)
    mine = RankReport(rollout_s, checksum(ctx, state), stop, idle_s, given, rows, stats)
    reports = [RankReport.unpack(b, rows.shape[1], stats.shape[1]) for b in ctx.comm.gather_blocks(mine.pack())]
    comm_s = time.perf_counter() - t_start - rollout_s

    t_update = time.perf_counter()
    check_replicas(reports, g)
    results = collect(reports, plan, g)
    new_strategy, metrics = strategy.update(state.strategy, plan, results, ctx.noise_sum)
    update_s = time.perf_counter() - t_update

    gen_s = time.perf_counter() - t_start
    train = plan.train
    steps, episodes = int(results.lengths[train].sum()), int(train.sum())
    new_state = TrainState(g + 1, state.timesteps + steps, state.episodes + episodes, state.wall_s + gen_s,
                           new_strategy, state.ref_batch)
    # This rank's time waiting for the slowest, at the collective and, before it, for work handed over.
    wait = max(r.rollout_s for r in reports) - rollout_s
    times = np.array([rollout_s - idle_s, wait + idle_s, max(comm_s - wait, 0.0), update_s])
    row = {**metrics_row(ctx, state, new_state, plan, results, ctx.comm.gather_to_root(times), times, gen_s),
           "generation": g, "handovers": sum(r.handovers for r in reports), **metrics}
    return new_state, row, max(r.stop for r in reports)


def checksum(ctx: Context, state: TrainState) -> int:
    """crc32 of every array of the strategy state: replicas that drifted apart disagree."""
    crc = 0
    for _, array in sorted(ctx.strategy.save(state.strategy).arrays.items()):
        crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
    return crc


def check_replicas(reports: list[RankReport], g: int) -> None:
    sums = [r.checksum for r in reports]
    if len(set(sums)) != 1:
        raise TrainingError(f"generation {g}: parameter replicas drifted apart across ranks (checksums {sums})")


def collect(reports: list[RankReport], plan: Plan, g: int) -> Results:
    """Every rank's rows in plan order, checked to hold each episode once with a finite training return."""
    rows = np.concatenate([r.rows for r in reports])
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    if not np.array_equal(rows[:, 0], np.arange(len(plan))):
        raise TrainingError(f"generation {g}: the gathered episodes are not each of the plan's {len(plan)} once")
    returns, lengths = rows[:, 1], rows[:, 2].astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(returns) & plan.train)
    if bad.size:
        i = int(bad[0])
        raise TrainingError(
            f"generation {g}: episode {i} (noise offset {plan.offset[i]}, scale {plan.scale[i]:+g}) returned "
            f"{returns[i]}; the env or policy produced a non-finite number")
    stats = np.concatenate([r.stats for r in reports])
    stats = stats[np.argsort(stats[:, 0], kind="stable")]
    return Results(returns, lengths, rows[:, ROW:], [ObsStats.unpack(s[1:]) for s in stats])


def metrics_row(ctx: Context, before: TrainState, state: TrainState, plan: Plan, results: Results,
                rank_times: np.ndarray | None, times: np.ndarray, gen_s: float) -> dict:
    """The engine's columns of metrics.h5 (es_mpi.runs.metrics) for the generation from `before` to
    `state`; rank 0 has every rank's time split. Evaluation scores the parameters of `before`, so its
    x-axes are the steps and time `before` had spent."""
    returns, lengths = results.returns[plan.train], results.lengths[plan.train]
    evals = ~plan.train
    means = rank_times.mean(axis=0) if rank_times is not None else times
    return {
        "timesteps": state.timesteps,
        "episodes": state.episodes,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "length_max": int(lengths.max()),
        "eval_return": float(results.returns[evals].mean()) if evals.any() else np.nan,
        "eval_length": float(results.lengths[evals].mean()) if evals.any() else np.nan,
        "eval_timesteps": before.timesteps if evals.any() else -1,
        "eval_wall_s": before.wall_s if evals.any() else np.nan,
        "wall_s": state.wall_s,
        "generation_s": gen_s,
        "rollout_s": float(means[0]),
        "wait_s": float(means[1]),
        "comm_s": float(means[2]),
        "update_s": float(means[3]),
        "steps_per_s": float(lengths.sum() + results.lengths[evals].sum()) / gen_s,
        "ranks": ctx.comm.size,
        "rank_times": rank_times,
    }


def budget_left(job: Job, state: TrainState) -> bool:
    if state.generation >= job.run.generations:
        return False
    return job.run.timesteps is None or state.timesteps < job.run.timesteps


def progress_line(job: Job, row: dict) -> str:
    """One line of at most about 120 characters: the generation (0-based, as in metrics.h5) of the budget,
    returns, evaluation, speed, time split."""
    ev = row["eval_return"]
    ev_text = f"{ev:9.1f}" if np.isfinite(ev) else " " * 9
    parts = {k: row[k + "_s"] for k in ("rollout", "wait", "comm", "update")}
    total = sum(parts.values()) or 1.0
    split = " ".join(f"{k} {v / total:3.0%}" for k, v in parts.items())
    return (
        f"gen {row['generation']:>4}/{job.run.generations} | mean {row['return_mean']:9.1f} "
        f"max {row['return_max']:9.1f} | eval {ev_text} | {row['timesteps']:>11,} steps "
        f"{row['steps_per_s']:7,.0f}/s | {row['generation_s']:5.1f}s {split}"
    )


class Rows:
    """A writer for `train` that keeps the metrics rows in memory (benchmarks): it writes no file, so it
    never fails."""

    failed = 0

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def __call__(self, state: TrainState, row: dict, checkpoint: bool) -> None:
        self.rows.append(row)


def train(ctx: Context, state: TrainState, record, stop) -> tuple[int, TrainState]:
    """Run generations until the budget is spent (exit status 0), a rank got a signal (3) or rank 0 can no
    longer write the run directory (EXIT_STORAGE, es_mpi.runs.storage).

    `record(state, row, checkpoint)` is rank 0's writer (None elsewhere), whose `failed` is its exit status
    after a storage fault (0: none); `stop.signum` is the number of a signal this rank got (0: none). Rank 0
    tells the others of a storage fault in the next generation's exchange. All ranks leave together, after
    rank 0's last checkpoint, so that a launcher that kills a job when one rank exits (srun
    --kill-on-bad-exit) cannot cut that write short, and with rank 0's exit status.
    """
    every = ctx.job.run.checkpoint_every
    code = 0
    while budget_left(ctx.job, state):
        halt = STORAGE_STOP if record and record.failed else 0
        state, row, signum = generation(ctx, state, max(stop.signum, halt))
        if signum == STORAGE_STOP:
            code = EXIT_STORAGE
            break
        if record:
            row["stop_signal"] = signum
            record(state, row, signum or state.generation % every == 0 or not budget_left(ctx.job, state))
        if signum:
            code = 3
            break
    ctx.comm.barrier()
    return ctx.comm.bcast_json(record.failed or code if record else code), state
