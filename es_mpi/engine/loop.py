"""The generation loop: evaluate this rank's pairs, gather scalars, apply the same update everywhere."""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from es_mpi.core import seeds
from es_mpi.core.gradient import es_gradient
from es_mpi.core.noise import fill_noise, sample_offsets
from es_mpi.core.obs_stats import ObsStats, normaliser
from es_mpi.core.optimizers import OptimizerState, adam_step, init_state, sgd_step
from es_mpi.core.shaping import centered_ranks
from es_mpi.envs import handover
from es_mpi.envs import lockstep as batched
from es_mpi.envs.rollout import EpisodeSpec, run_one_by_one
from es_mpi.parallel.comm import LocalComm, NodeHandover
from es_mpi.policies.mlp import MlpPolicy
from es_mpi.runs.job import ConfigError, Job
from es_mpi.runs.state import TrainState

# Row layout of one episode's result: kind, index, return, length. A training episode's index is
# 2 j + side for pair j (side 0: theta + sigma eps_j, side 1: theta - sigma eps_j).
TRAIN, EVAL = 0.0, 1.0
ROW = 4
SLOTS_VAR = "ES_MPI_SLOTS"
DEFAULT_SLOTS = 8  # lockstep simulations per rank when $ES_MPI_SLOTS is unset
# rollout seconds, theta checksum, stop signal number (0: none), result rows, statistics rows, seconds
# spent waiting for work to be handed over, episodes handed over
HEADER = 7


class TrainingError(RuntimeError):
    """A run-time fault the user must see: drifted replicas, non-finite returns."""


@dataclass
class Context:
    """What every rank builds once at start-up and never changes."""

    job: Job
    comm: LocalComm
    env: object
    env_limit: int
    policy: MlpPolicy
    noise: np.ndarray  # node-shared, read-only after start-up
    grad_buffer: np.ndarray  # node-shared, each rank writes its slice of the gradient
    run_episodes: Callable  # (specs, mean, std, poll, limit, exchange) -> episodes: batched or one by one
    dynamic: bool = True  # dynamic task assignment (results are the same either way)
    handover: NodeHandover | None = None  # hand-over of episodes in flight (within the node, or across nodes)


def build_context(job: Job, comm: LocalComm, env, env_limit: int, policy: MlpPolicy, dynamic: bool = True,
                  slots: int | None = None, hand_over: bool = True) -> Context:
    """Allocate the node-shared noise table (filled once per node) and gradient buffer, and pick the
    episode runner: `slots` MuJoCo simulations stepped in lockstep (mujoco.batch) where the task is
    supported, else one gymnasium episode at a time. Both give bit-identical results. Under dynamic
    assignment, for the tasks the batched runner covers, the ranks also hand episodes in flight to each
    other near a generation's end (whatever each rank's slots: the decision follows the job alone,
    so that all of them take part); `hand_over=False` turns that off (for benchmarks)."""
    noise = comm.node_array(job.es.noise_table_size, np.float32, lambda a: fill_noise(a, job.es.noise_seed))
    grad_buffer = comm.node_array(policy.num_params, np.float32)
    slots = default_slots() if slots is None else slots
    covered = isinstance(policy, MlpPolicy) and batched.supports(job.env.id, job.env.kwargs)
    if slots > 1 and covered:
        run_episodes = batched.BatchedRunner(job.env.id, job.env.kwargs, policy, slots).run
    else:
        run_episodes = partial(run_one_by_one, env, policy)
    board = None
    if dynamic and covered and hand_over:
        board = comm.handover(handover.record_dtype(env, policy.obs_dim, policy.act_dim))
    return Context(job, comm, env, env_limit, policy, noise, grad_buffer, run_episodes, dynamic, board)


def default_slots() -> int:
    """$ES_MPI_SLOTS (1: one gymnasium episode at a time), else 8: where measured, 8 lockstep
    simulations ran HalfCheetah 2.5x and Hopper 1.6x faster than one at a time."""
    text = os.environ.get(SLOTS_VAR, str(DEFAULT_SLOTS))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{SLOTS_VAR}={text!r}: give a whole number >= 1 (1 runs one episode at a time)")
    return int(text)


def initial_state(job: Job, policy: MlpPolicy, env_limit: int) -> TrainState:
    theta = policy.init_theta(seeds.stream(job.run.seed, seeds.INIT))
    cap = min(job.env.adaptive.start, env_limit) if job.env.episode_cap == "adaptive" else env_limit
    return TrainState(0, 0, 0, cap, 0.0, theta, init_state(theta.size), ObsStats.empty(policy.obs_dim))


def next_episode_cap(job: Job, cap: int, lengths: np.ndarray, env_limit: int) -> int:
    """The next generation's training episode cap. 'adaptive' (the reference code's adaptive:start,
    fraction,ratio) multiplies it by `ratio` once `fraction` of the episodes hit it; 'mean' sets it to a
    multiple of this generation's mean length, so that a few long episodes cannot hold up every rank
    (capped episodes count as their capped length, so the cap can still grow: if all hit it, it doubles)."""
    kind = job.env.episode_cap
    if kind == "adaptive" and np.mean(lengths == cap) >= job.env.adaptive.fraction:
        return min(int(cap * job.env.adaptive.ratio), env_limit)
    if kind == "mean":
        m = job.env.mean_cap
        return min(max(int(np.ceil(m.multiple * lengths.mean())), m.minimum), env_limit)
    return cap


def optimizer_step(job: Job, theta: np.ndarray, grad: np.ndarray, opt: OptimizerState):
    """Minimise -F + l2/2 |theta|^2: the ES ascent direction is negated and weight decay added."""
    loss_grad = -grad + np.float32(job.es.l2) * theta
    o = job.optimizer
    if o.kind == "adam":
        return adam_step(theta, loss_grad, opt, o.lr, o.beta1, o.beta2, o.epsilon)
    return sgd_step(theta, loss_grad, opt, o.lr, o.momentum)


def is_eval_generation(job: Job, g: int) -> bool:
    """Generation 0 and every eval_every-th after; independent of the budget, so that a run extended on
    resume records exactly the metrics of one that was planned longer."""
    every = job.run.eval_every
    return every > 0 and g % every == 0


def rollouts(ctx: Context, state: TrainState, g: int,
             offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, handover.HandoverRound | None]:
    """This rank's share of the generation: result rows, observation-statistics rows, and its exchange
    with the node's other ranks (None: none).

    Tasks are single episodes, the evaluation ones (long, so first) then both members of every pair;
    single episodes rather than pairs halve the unit of work, and so the wait for the last one. Which rank
    runs which does not matter: every number an episode produces depends only on (theta, pair, side,
    seeds). Both members of a pair share the env seed and the action-noise stream (common random numbers).
    Tasks are taken lazily, whenever the runner has room for one more episode; an episode may end on
    another rank than the one that started it (es_mpi.envs.handover).
    """
    job, comm, policy = ctx.job, ctx.comm, ctx.policy
    n, dim, seed = job.es.pairs, policy.num_params, job.run.seed
    n_eval = job.run.eval_episodes if is_eval_generation(job, g) else 0
    take_stats = job.policy.obs_norm & (seeds.stream(seed, g, seeds.OBS_STATS).random(n) < job.policy.obs_stat_fraction)
    sigma = np.float32(job.es.sigma)

    def make_spec(task: int) -> EpisodeSpec:
        if task < n_eval:
            return EpisodeSpec(state.theta, seeds.derive_seed(seed, g, task, seeds.EVAL), ctx.env_limit, task=task)
        j, side = divmod(task - n_eval, 2)
        perturbation = sigma * ctx.noise[offsets[j] : offsets[j] + dim]
        return EpisodeSpec(
            state.theta - perturbation if side else state.theta + perturbation,
            seeds.derive_seed(seed, g, j, seeds.ENV), state.episode_cap,
            seeds.stream(seed, g, j, seeds.ACTION_NOISE), job.policy.action_noise, bool(take_stats[j]), task,
        )

    mean, std = normaliser(state.obs, job.policy.obs_norm)
    limit = comm.fair_share(g, n_eval + 2 * n) if ctx.dynamic else None
    exchange = None
    if ctx.handover is not None:
        ctx.handover.begin(g)
        exchange = handover.HandoverRound(ctx.handover, make_spec)
    specs = map(make_spec, comm.tasks(g, n_eval + 2 * n, ctx.dynamic))
    episodes = ctx.run_episodes(specs, mean, std, comm.progress_hook(), limit, exchange)
    rows, stat_rows = [], []
    for ep in episodes:
        kind, index = (EVAL, ep.task) if ep.task < n_eval else (TRAIN, ep.task - n_eval)
        rows.append([kind, index, ep.ret, ep.length])
        if ep.stats is not None:
            stat_rows.append(np.concatenate([[index], ep.stats.pack()]))
    stat_width = 2 + 2 * policy.obs_dim
    return (np.asarray(rows, np.float64).reshape(-1, ROW), np.asarray(stat_rows, np.float64).reshape(-1, stat_width),
            exchange)


def theta_checksum(theta: np.ndarray) -> int:
    return zlib.crc32(theta.tobytes())


def generation(ctx: Context, state: TrainState, stop: int) -> tuple[TrainState, dict, int]:
    """Run generation `state.generation` on every rank; `stop` is the number of a signal this rank got
    (0: none). Returns the new state, its metrics row and the signal any rank got (0: none)."""
    job, comm, policy = ctx.job, ctx.comm, ctx.policy
    g, n = state.generation, job.es.pairs
    t_start = time.perf_counter()
    offsets = sample_offsets(seeds.stream(job.run.seed, g, seeds.OFFSETS), n, ctx.noise.size, policy.num_params)
    rows, stat_rows, exchange = rollouts(ctx, state, g, offsets)
    rollout_s = time.perf_counter() - t_start
    idle_s, given = (exchange.waited_s, exchange.given) if exchange is not None else (0.0, 0)
    header = [rollout_s, theta_checksum(state.theta), float(stop), len(rows), len(stat_rows), idle_s, given]
    blocks = comm.gather_blocks(np.concatenate([header, rows.ravel(), stat_rows.ravel()]))
    comm_s = time.perf_counter() - t_start - rollout_s

    t_update = time.perf_counter()
    heads = np.array([b[:HEADER] for b in blocks])
    if len(set(heads[:, 1].tolist())) != 1:
        raise TrainingError(
            f"generation {g}: parameter replicas drifted apart across ranks "
            f"(checksums {heads[:, 1].astype(int).tolist()})"
        )
    ends = [HEADER + int(h[3]) * ROW for h in heads]
    all_rows = np.concatenate([b[HEADER:end] for b, end in zip(blocks, ends)]).reshape(-1, ROW)
    stat_width = 2 + 2 * policy.obs_dim
    all_stats = np.concatenate([b[end:] for b, end in zip(blocks, ends)]).reshape(-1, stat_width)

    episodes = all_rows[all_rows[:, 0] == TRAIN]
    episodes = episodes[np.argsort(episodes[:, 1], kind="stable")]
    if not np.array_equal(episodes[:, 1], np.arange(2 * n)):
        raise TrainingError(f"generation {g}: gathered episodes are not both members of pairs 0..{n - 1} once")
    returns, lengths = episodes[:, 2].reshape(n, 2), episodes[:, 3].reshape(n, 2).astype(np.int64)
    bad = np.argwhere(~np.isfinite(returns))
    if bad.size:
        j, side = bad[0]
        raise TrainingError(
            f"generation {g}: pair {j} ({'+-'[side]} perturbation) returned {returns[j, side]}; "
            "the env or policy produced a non-finite number"
        )

    # The node's ranks each compute a slice of the coordinates into shared memory; slices are
    # bit-identical to the whole, so the split never changes the result.
    lo, hi = comm.node_slice(policy.num_params)
    ctx.grad_buffer[lo:hi] = es_gradient(ctx.noise, offsets, centered_ranks(returns), policy.num_params, lo, hi)
    comm.node_barrier()
    grad = ctx.grad_buffer.copy()
    theta, opt = optimizer_step(job, state.theta, grad, state.opt)

    obs = state.obs
    for row in all_stats[np.argsort(all_stats[:, 0], kind="stable")]:
        obs = obs.add(ObsStats.unpack(row[1:]))

    cap = next_episode_cap(job, state.episode_cap, lengths, ctx.env_limit)
    update_s = time.perf_counter() - t_update

    evals = all_rows[all_rows[:, 0] == EVAL]
    evals = evals[np.argsort(evals[:, 1], kind="stable")]
    gen_s = time.perf_counter() - t_start
    steps = int(lengths.sum())
    rank_rollout = heads[:, 0]
    # This rank's time waiting for the slowest, at the collective and, before it, for work handed over.
    wait = float(rank_rollout.max() - rollout_s)
    # Rank 0 gets every rank's split (rollout, wait, communication, update) for metrics.h5.
    mine = np.array([rollout_s - idle_s, wait + idle_s, max(comm_s - wait, 0.0), update_s])
    rank_times = comm.gather_to_root(mine)
    means = rank_times.mean(axis=0) if rank_times is not None else mine
    new_state = TrainState(
        g + 1, state.timesteps + steps, state.episodes + 2 * n, cap, state.wall_s + gen_s, theta, opt, obs,
        state.ref_batch,
    )
    row = {
        "generation": g,
        "timesteps": new_state.timesteps,
        "episodes": new_state.episodes,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "length_max": int(lengths.max()),
        "eval_return": float(evals[:, 2].mean()) if len(evals) else np.nan,
        "eval_length": float(evals[:, 3].mean()) if len(evals) else np.nan,
        "episode_cap": state.episode_cap,
        "theta_norm": float(np.linalg.norm(theta.astype(np.float64))),
        "grad_norm": float(np.linalg.norm(grad.astype(np.float64))),
        "wall_s": new_state.wall_s,
        "generation_s": gen_s,
        "rollout_s": float(means[0]),
        "wait_s": float(means[1]),
        "comm_s": float(means[2]),
        "update_s": float(means[3]),
        "steps_per_s": (steps + float(evals[:, 3].sum())) / gen_s,
        "ranks": comm.size,
        "handovers": int(heads[:, 6].sum()),
        "rank_times": rank_times,
    }
    return new_state, row, int(heads[:, 2].max())


def budget_left(job: Job, state: TrainState) -> bool:
    if state.generation >= job.run.generations:
        return False
    return job.run.timesteps is None or state.timesteps < job.run.timesteps


def progress_line(job: Job, row: dict) -> str:
    """One line of at most about 120 characters: progress, returns, evaluation, speed, time split."""
    ev = row["eval_return"]
    ev_text = f"{ev:9.1f}" if np.isfinite(ev) else " " * 9
    parts = {k: row[k + "_s"] for k in ("rollout", "wait", "comm", "update")}
    total = sum(parts.values()) or 1.0
    split = " ".join(f"{k} {v / total:3.0%}" for k, v in parts.items())
    return (
        f"gen {row['generation'] + 1:>4}/{job.run.generations} | mean {row['return_mean']:9.1f} "
        f"max {row['return_max']:9.1f} | eval {ev_text} | {row['timesteps']:>11,} steps "
        f"{row['steps_per_s']:7,.0f}/s | {row['generation_s']:5.1f}s {split}"
    )


def train(ctx: Context, state: TrainState, record, stop) -> tuple[int, TrainState]:
    """Run generations until the budget is spent (exit status 0) or a rank got a signal (3).

    `record(state, row, checkpoint)` is rank 0's writer (None elsewhere); `stop.signum` is the number of
    a signal this rank got (0: none). All ranks leave together, after rank 0's last checkpoint, so that a
    launcher that kills a job when one rank exits (srun --kill-on-bad-exit) cannot cut that write short.
    """
    every = ctx.job.run.checkpoint_every
    code = 0
    while budget_left(ctx.job, state):
        state, row, signum = generation(ctx, state, stop.signum)
        if record:
            row["stop_signal"] = signum
            record(state, row, signum or state.generation % every == 0 or not budget_left(ctx.job, state))
        if signum:
            code = 3
            break
    ctx.comm.barrier()
    return code, state
