"""Measured inputs and a stated model for the parallel efficiency of a paper-scale Humanoid run.

A 2-core machine cannot run 1,440 ranks, so this script measures the three things a generation is made of
and projects the rest with a model whose every term is printed:

1. the per-generation collective (`MpiComm.gather_blocks`, the trainer's exact call) with the trainer's real
   payload (one 4-float row per episode of 5,000 pairs and 15 evaluation episodes), under `mpiexec -n p`
   for p = 2..32 (oversubscribed: upper bounds), fitted as latency = a + b*log2(p);
2. the update at paper scale (centered ranks, `es_gradient` over 5,000 noise slices of the 159,505-parameter
   Humanoid 256x256 MLP, Adam), in full and on the 1/18 coordinate slice a node's ranks would each do;
3. real Humanoid-v5 episode CPU times (perturbed initial parameters, as early in training; and a
   late-training proxy of full 1,000-step episodes), from which Monte-Carlo simulations give the
   straggler wait under four assignments: static pairs (baseline), node-dynamic episodes, cluster-wide
   dynamic episodes one at a time, and es-mpi's default across nodes (cluster-wide dynamic episodes in
   lockstep slots, handed over in flight to waiting ranks of any node), the last event by event.

Model: T(p) = T_work + T_eval + T_wait + T_comm + T_update, T_work = N * mean pair time / p,
E(p) = T_work / T(p).
Prints tables, writes JSON (bench/out/scaling.json) and the README section (bench/out/README-scaling-section.md);
--quick writes bench/out/scaling-quick.json and bench/out/scaling-section-quick.md instead.

    python bench/scaling.py [--quick]
"""

from __future__ import annotations

import os

from es_mpi.parallel.threads import pin_blas_threads  # noqa: E402

pin_blas_threads()

import argparse  # noqa: E402
import functools  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from es_mpi.core import seeds  # noqa: E402
from es_mpi.core.gradient import es_gradient, weighted_noise_sum  # noqa: E402
from es_mpi.core.noise import fill_noise, sample_offsets  # noqa: E402
from es_mpi.core.obs_stats import ObsStats  # noqa: E402
from es_mpi.core.optimizers import adam_step, init_state  # noqa: E402
from es_mpi.core.shaping import centered_ranks  # noqa: E402
from es_mpi.engine.loop import DEFAULT_SLOTS as SLOTS  # noqa: E402
from es_mpi.engine.loop import HEADER, ROW  # noqa: E402
from es_mpi.envs.lockstep import POLL_EVERY  # noqa: E402
from es_mpi.parallel.comm import ClusterHandover  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAIRS = 5000  # jobs/humanoid.yaml es.pairs
EVAL_EPISODES = 15  # jobs/humanoid.yaml run.eval_episodes (every generation)
STAT_FRACTION = 0.01  # jobs/humanoid.yaml policy.obs_stat_fraction
OBS_DIM = 348  # Humanoid-v5
NODE_RANKS = 18  # ranks per node in the paper's 80 x 18 layout; the update is split this many ways
TARGET_P = (18, 144, 720, 1440)
SWEEP_PAIRS = (5000, 10000, 20000, 40000)  # pairs per generation tried at 1,440 ranks (es-mpi's default)
GATHER_P = (2, 4, 8, 16, 32)
BANDWIDTH_BPS = 10e9  # assumed network: 10 Gb/s per node
NODE_MEMORY_BPS = 100e9  # assumed memory bandwidth of one node, for the update's floor
NODE_GRAB_LATENCY_S = 1e-6  # assumed cost of one grab from a node-shared-memory counter
EVENT_REPS_DIVISOR = 5  # the hand-over's event simulation is slower: a fifth of the repetitions
TASKS = EVAL_EPISODES + 2 * PAIRS  # es-mpi's task list: evaluation episodes first, then episode 2j+side
PAIR_ROW = 6  # result floats per pair when the unit of work is a pair (kind, index, 2 returns, 2 lengths)
STAT_WIDTH = 2 + 2 * OBS_DIM  # one observation-statistics row: index, count, sums, sums of squares
STATIC_PAIRS = "static pairs"
TODAY = "node-dynamic episodes (one node; ES_MPI_TASK_COUNTER=node)"
CLUSTER = "cluster-wide dynamic episodes, one at a time (ES_MPI_SLOTS=1)"
HANDOVER = "cluster-wide dynamic + hand-over of episodes in flight (default across nodes)"
SHARING = "ideal equal sharing (reference: every episode at once, free instant migration)"
FLOOR = "floor (reference: no schedule ends sooner)"
BALANCE = "hand-over also to ranks with fewer in flight (model only: not built)"
# (name, simulation mode, unit of work); the update is the node-split one in every variant.
VARIANTS = ((STATIC_PAIRS, "static-pairs", "pair"), (TODAY, "node-dynamic", "episode"),
            (CLUSTER, "dynamic", "episode"), (HANDOVER, "handover", "episode"))
# What-ifs at 1,440 ranks, costed like the default: a hand-over es-mpi does not have, the ideal of its
# approach, and the floor no schedule can beat.
REFERENCES = ((BALANCE, "balance", "episode"), (SHARING, "sharing", "episode"), (FLOOR, "floor", "episode"))
EVENT_MODES = ("handover", "balance")  # simulated event by event (handover_makespan)


# ---------------------------------------------------------------------------------------------------------
# 1. The collective, run inside `mpiexec -n p` (this same file with --gather-worker).


def rank_payload(rank: int, size: int, g: int, rng: np.random.Generator) -> np.ndarray:
    """What the trainer's rank `rank` hands to gather_blocks in generation `g` of the Humanoid job: the
    header, one 4-float row per episode it ran (evaluation or training) and one observation-statistics row
    per training episode of a pair drawn for statistics. Which rank runs which task is dynamic in es-mpi;
    the static rule (task t on rank t mod size) stands in for it, the gathered total is the same."""
    take = seeds.stream(0, g, seeds.OBS_STATS).random(PAIRS) < STAT_FRACTION
    mine = np.arange(rank, TASKS, size)
    train = mine[mine >= EVAL_EPISODES] - EVAL_EPISODES
    n_stat = int(take[train // 2].sum())
    rows = rng.random(len(mine) * ROW)
    stats = rng.random(n_stat * STAT_WIDTH)
    return np.concatenate([rng.random(HEADER), rows, stats])


def gather_worker(repeats: int, warmup: int) -> None:
    """Time `MpiComm.gather_blocks` per call (slowest rank of each call), header-only and realistic."""
    from mpi4py import MPI

    from es_mpi.parallel.comm import MpiComm

    comm = MpiComm(MPI.COMM_WORLD)
    rng = np.random.default_rng(comm.rank)
    out = {}
    for mode in ("header", "realistic"):
        times = np.empty(repeats)
        nbytes = 0
        for i in range(warmup + repeats):
            local = rng.random(HEADER) if mode == "header" else rank_payload(comm.rank, comm.size, i, rng)
            comm.comm.Barrier()
            t0 = time.perf_counter()
            blocks = comm.gather_blocks(local)
            dt = time.perf_counter() - t0
            if i >= warmup:
                times[i - warmup] = dt
                nbytes = 8 * sum(b.size for b in blocks)
        slowest = np.empty_like(times)
        comm.comm.Allreduce(times, slowest, op=MPI.MAX)
        out[mode] = {"median_s": float(np.median(slowest)), "times_s": slowest.tolist(), "gathered_bytes": nbytes}
    if comm.rank == 0:
        print(json.dumps({"p": comm.size, **out}))


def mpiexec_path() -> str:
    """The mpiexec next to this interpreter (the mpich wheel's), else the one on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if not found:
        raise SystemExit("scaling.py: no mpiexec found (install es-mpi with its mpich extra)")
    return found


def run_worker(ranks: int, args: list[str], env: dict | None = None) -> dict:
    """This file in a worker mode under `mpiexec -n ranks`; the JSON line it prints last."""
    cmd = [mpiexec_path(), "-n", str(ranks), sys.executable, __file__, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, **(env or {})})
    if res.returncode != 0:
        raise SystemExit(f"scaling.py: {args[0]} on {ranks} ranks failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure_gather(repeats: int, warmup: int) -> dict:
    """Launch one `mpiexec -n p` per p and fit latency = a + b*log2(p) on the realistic-payload medians."""
    runs = []
    for p in GATHER_P:
        run = run_worker(p, ["--gather-worker", "--repeats", str(repeats), "--warmup", str(warmup)])
        runs.append(run)
        print(f"  allgather p={p:>3}: header-only {run['header']['median_s'] * 1e3:8.3f} ms, "
              f"realistic {run['realistic']['median_s'] * 1e3:8.3f} ms "
              f"({run['realistic']['gathered_bytes'] / 1e3:,.0f} kB gathered)", flush=True)
    x = np.log2([r["p"] for r in runs])
    fits = {}
    for mode in ("header", "realistic"):
        y = np.array([r[mode]["median_s"] for r in runs])
        b, a = np.polyfit(x, y, 1)
        pred = a + b * x
        r2 = 1.0 - float(np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))
        fits[mode] = {"a_s": float(a), "b_s_per_log2p": float(b), "r2": r2}
    extra = [r["realistic"]["median_s"] - r["header"]["median_s"] for r in runs]
    return {"p": list(GATHER_P), "repeats": repeats, "runs": runs, "fit": fits,
            "payload_extra_s": extra, "oversubscribed_on_cpus": os.cpu_count()}


def grab_worker(seconds: float) -> None:
    """Under `mpiexec -n 2` with the global counter: rank 0 runs early Humanoid episodes as the trainer
    does, polling MPI every POLL_EVERY env steps (its progress hook, for MPI libraries whose atomics wait for
    the target's progress); rank 1 takes tasks from that counter with a random 0-20 ms pause between grabs,
    as if running episodes, and times each grab. Rank 1 prints the times as JSON."""
    from mpi4py import MPI

    from es_mpi.envs.make import make_env
    from es_mpi.envs.rollout import run_episode
    from es_mpi.parallel.comm import MpiComm
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import load_job

    comm = MpiComm(MPI.COMM_WORLD)
    deadline = time.perf_counter() + seconds
    if comm.rank == 0:
        job = load_job(ROOT / "jobs" / "humanoid.yaml", [])
        env, limit = make_env(job.env)
        policy = make_policy(job.policy, env)
        theta = policy.init_theta(np.random.default_rng(0))
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() < deadline:
            steps += run_episode(env, policy, theta, None, None, limit, steps, poll=comm.progress_hook()).length
        rate = np.array([steps / (time.perf_counter() - t0)])
    else:
        rate = np.zeros(1)
        rng = np.random.default_rng(1)
        tasks = comm.tasks(0, 100_000)  # far more than fit in the time
        next(tasks)  # each rank's first task is fixed: no grab
        grabs = []
        while time.perf_counter() < deadline - 0.05:
            time.sleep(float(rng.uniform(0, 0.02)))
            t0 = time.perf_counter()
            next(tasks)
            grabs.append(time.perf_counter() - t0)
    comm.barrier()
    comm.comm.Bcast(rate, root=0)  # a raw buffer: no pickle crosses ranks
    if comm.rank == 1:
        print(json.dumps({"grab_s": grabs, "median_s": float(np.median(grabs)),
                          "p90_s": float(np.percentile(grabs, 90)), "rank0_steps_per_s": float(rate[0])}))


def measure_grab(seconds: float) -> dict:
    """Launch grab_worker on 2 ranks (a core each here) with the cluster-wide counter."""
    out = run_worker(2, ["--grab-worker", "--seconds", str(seconds)], {"ES_MPI_TASK_COUNTER": "global"})
    print(f"  cluster-wide grab: median {out['median_s'] * 1e3:.2f} ms, 90th percentile "
          f"{out['p90_s'] * 1e3:.2f} ms over {len(out['grab_s'])} grabs (rank 0 at "
          f"{out['rank0_steps_per_s']:,.0f} Humanoid steps/s)", flush=True)
    return out


# ---------------------------------------------------------------------------------------------------------
# 2. The update at paper scale.


def timed(fn, repeats: int) -> list[float]:
    """CPU seconds of this process for `repeats` calls of fn(): single-threaded work on a dedicated core
    takes its CPU time, and CPU time does not grow when other jobs share this machine (wall time does)."""
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def measure_update(noise: np.ndarray, dim: int, repeats: int) -> dict:
    """Centered ranks, full es_gradient, its 1/18 coordinate slice and Adam for 5,000 pairs."""
    rng = np.random.default_rng(7)
    offsets = sample_offsets(rng, PAIRS, noise.size, dim)
    returns = rng.normal(size=(PAIRS, 2))
    shaped = centered_ranks(returns)
    weights = shaped[:, 0] - shaped[:, 1]
    theta = rng.standard_normal(dim).astype(np.float32)
    grad = es_gradient(noise, offsets, shaped, dim)
    opt = init_state(dim)
    width = math.ceil(dim / NODE_RANKS)
    slices = [(k * width, min(dim, (k + 1) * width)) for k in range(NODE_RANKS)]
    slice_times = []
    for i in range(repeats * 3):  # different slices: each rank of a node does one
        lo, hi = slices[(i * 7) % NODE_RANKS]
        slice_times += timed(lambda lo=lo, hi=hi: weighted_noise_sum(noise, offsets, weights, dim, lo, hi), 1)
    res = {
        "ranks_s": timed(lambda: centered_ranks(returns), 20),
        "full_gradient_s": timed(lambda: es_gradient(noise, offsets, shaped, dim), repeats),
        "slice_gradient_s": slice_times,
        "adam_s": timed(lambda: adam_step(theta, -grad + np.float32(0.005) * theta, opt, 0.01), 20),
    }
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"pairs": PAIRS, "dim": dim, "noise_entries": int(noise.size), "slice_of": NODE_RANKS,
            "slice_width": width, "samples": res, "median": med,
            "full_update_s": med["ranks_s"] + med["full_gradient_s"] + med["adam_s"],
            "split_update_s": med["ranks_s"] + med["slice_gradient_s"] + med["adam_s"],
            "full_over_18_s": med["full_gradient_s"] / NODE_RANKS}


# ---------------------------------------------------------------------------------------------------------
# 3. Episode times.


def measure_episodes(noise: np.ndarray, pairs: int, kwargs: str | None) -> dict:
    """CPU time and length of both episodes of `pairs` antithetic pairs at the initial parameters, run
    exactly as the trainer runs them (offsets, env seeds, action noise, caps, obs normalisation)."""
    from es_mpi.envs.make import make_env
    from es_mpi.envs.rollout import run_episode
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import load_job

    overrides = [f"env.kwargs={kwargs}"] if kwargs else []
    job = load_job(ROOT / "jobs" / "humanoid.yaml", overrides)
    env, limit = make_env(job.env)
    policy = make_policy(job.policy, env)
    dim, seed, g = policy.num_params, job.run.seed, 0
    theta = policy.init_theta(seeds.stream(seed, seeds.INIT))
    mean, std = ObsStats.empty(policy.obs_dim).mean_std()
    offsets = sample_offsets(seeds.stream(seed, g, seeds.OFFSETS), pairs, noise.size, dim)
    sigma = np.float32(job.es.sigma)
    times, walls, lengths = [], [], []
    for j in range(pairs):
        perturbation = sigma * noise[offsets[j] : offsets[j] + dim]
        env_seed = seeds.derive_seed(seed, g, j, seeds.ENV)
        for th in (theta + perturbation, theta - perturbation):
            t0, w0 = time.process_time(), time.perf_counter()
            ep = run_episode(env, policy, th, mean, std, limit, env_seed,
                             seeds.stream(seed, g, j, seeds.ACTION_NOISE), job.policy.action_noise)
            times.append(time.process_time() - t0)
            walls.append(time.perf_counter() - w0)
            lengths.append(ep.length)
    t = np.array(times).reshape(pairs, 2)
    steps = np.array(lengths).reshape(pairs, 2)
    return {"env_kwargs": kwargs or "{}", "cap": limit, "params": dim, "pairs": pairs,
            "episode_s": t.tolist(), "episode_wall_s": np.reshape(walls, (pairs, 2)).tolist(),
            "episode_len": steps.tolist(),
            "pair_s_mean": float(t.sum(1).mean()), "pair_s_median": float(np.median(t.sum(1))),
            "pair_s_cv": float(t.sum(1).std() / t.sum(1).mean()), "episode_len_mean": float(steps.mean()),
            "us_per_step": float(t.sum() / steps.sum() * 1e6)}


def mixed_late(late: dict, pairs: int, full_fraction: float, rng: np.random.Generator) -> dict:
    """A synthetic late-training mix: an episode reaches the 1,000-step cap with probability `full_fraction`,
    else falls after U(100, 999) steps; its time is its length times a measured late per-step time."""
    per_step = np.array(late["episode_s"]).ravel() / np.array(late["episode_len"]).ravel()
    length = np.where(rng.random((pairs, 2)) < full_fraction, 1000, rng.integers(100, 1000, (pairs, 2)))
    t = length * rng.choice(per_step, (pairs, 2))
    return {"synthetic": True, "full_fraction": full_fraction, "pairs": pairs, "episode_s": t.tolist(),
            "episode_len": length.tolist(), "pair_s_mean": float(t.sum(1).mean()),
            "pair_s_median": float(np.median(t.sum(1))), "pair_s_cv": float(t.sum(1).std() / t.sum(1).mean()),
            "episode_len_mean": float(length.mean()), "us_per_step": float(t.sum() / length.sum() * 1e6)}


# ---------------------------------------------------------------------------------------------------------
# The model.


def task_nodes(p: int, pairs: int = PAIRS) -> np.ndarray:
    """The node owning each task of es-mpi's task list under `MpiComm.tasks` (node counter): task t belongs
    to the node of rank t mod p (nodes of NODE_RANKS consecutive ranks)."""
    return (np.arange(EVAL_EPISODES + 2 * pairs) % p) // NODE_RANKS


def makespans(episodes: np.ndarray, p: int, reps: int, mode: str, rng: np.random.Generator,
              pairs: int = PAIRS, costs: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Monte-Carlo generation makespans of `pairs` pairs drawn (with replacement) from measured (pairs, 2)
    episode times, plus EVAL_EPISODES evaluation episodes drawn from the same episode times.

    `static-pairs`: tasks are the evaluation episodes then the pairs, task t on rank t mod p;
    `node-dynamic`: tasks are the evaluation episodes then episode 2j+side of every pair; a node owns the
    tasks of `task_nodes` and its ranks take the next one, in task order, when free (`MpiComm.tasks` with
    its node-shared counter); `dynamic`: the same task list, the next task to the first free rank anywhere
    in the cluster; `handover`: es-mpi's default, event by event (`handover_makespan`, with `costs` =
    (seconds per env step, seconds to move one episode)); `balance`: the same with `balance`; `sharing`
    and `floor`: the references `sharing_makespan` and `floor_makespan`."""
    out = np.empty(reps)
    ranks = min(NODE_RANKS, p)
    node = task_nodes(p, pairs)
    order = np.argsort(node, kind="stable")  # each node's tasks, in task order
    cuts = np.cumsum(np.bincount(node))[:-1]
    for r in range(reps):
        drawn = episodes[rng.integers(0, len(episodes), pairs)]
        evals = episodes.ravel()[rng.integers(0, episodes.size, EVAL_EPISODES)]
        if mode == "static-pairs":
            tasks = np.concatenate([evals, drawn.sum(1)])
            out[r] = np.bincount(np.arange(tasks.size) % p, weights=tasks, minlength=p).max()
            continue
        tasks = np.concatenate([evals, drawn.ravel()])
        if mode == "dynamic":
            out[r] = list_schedule(tasks, p)
        elif mode == "sharing":
            out[r] = sharing_makespan(tasks, p)
        elif mode == "floor":
            out[r] = floor_makespan(tasks, p)
        elif mode in EVENT_MODES:
            out[r] = handover_makespan(tasks, p, *costs, rng, balance=mode == "balance")
        else:
            out[r] = max(list_schedule(part, ranks) for part in np.split(tasks[order], cuts))
    return out


def handover_makespan(tasks: np.ndarray, p: int, step_s: float, move_s: float, rng: np.random.Generator,
                      balance: bool = False) -> float:
    """Makespan of es-mpi's default, simulated event by event. A rank holds up to SLOTS episodes in
    lockstep, each advancing at 1/k of a core with k in flight (Humanoid's batch steps no faster than
    one episode at a time: bench/batched.py), and refills a free slot from the cluster-wide counter while
    it holds fewer than its share of the tasks left (the first SLOTS * p tasks go out round-robin: at
    1,440 ranks every task starts at once). A rank left with nothing waits; every rank holding two or more
    episodes would give it its youngest at its next poll point (every POLL_EVERY lockstep steps: k *
    POLL_EVERY * step_s apart, the phase uniform) after seeing the waiting count (cached up to
    ClusterHandover.CACHE_S, the age uniform); the first to do so gives, and the episode arrives `move_s`
    later, then runs alone at a full core. The generation ends when the last episode does, plus the
    waiting ranks' check (WAIT_CACHE_S + BACKOFF_S). Each rank keeps a virtual clock advancing at 1/k;
    an episode ends when its rank's clock reaches the episode's finish value.

    With `balance` (a what-if, not es-mpi's code), a rank whose count falls to k asks too, and any rank
    holding k + 2 or more gives: episodes then also move to ranks still running some, into their batch."""
    k = np.zeros(p, np.int64)
    clock, synced = [0.0] * p, [0.0] * p
    flight: list[list[tuple[float, float]]] = [[] for _ in range(p)]  # (finish, start) clock values per episode
    version, events = [0] * p, []  # (time, 1, version, rank, 0): an episode ends; (time, 0, 0, to, from): a move
    asking = np.zeros(p, bool)  # a move to the rank is on its way (with `balance`: one request at a time)
    now, taken, end = 0.0, 0, 0.0

    def sync(r: int) -> None:
        clock[r] += (now - synced[r]) / max(k[r], 1)
        synced[r] = now

    def arm(r: int) -> None:
        """(Re)schedule the end of rank r's next episode; older entries for r become stale."""
        version[r] += 1
        if flight[r]:
            finish = min(f for f, _ in flight[r])
            heapq.heappush(events, (now + (finish - clock[r]) * k[r], 1, version[r], r, 0))

    def add(r: int, work: float, ran: float = 0.0) -> None:
        flight[r].append((clock[r] + work, clock[r] - ran))
        k[r] += 1

    def wait(r: int) -> None:
        givers = np.flatnonzero(k >= k[r] + 2)
        asking[r] = bool(givers.size)
        if givers.size:
            delay = (rng.uniform(0, POLL_EVERY * k[givers] * step_s)
                     + rng.uniform(0, ClusterHandover.CACHE_S, givers.size))
            i = int(np.argmin(delay))
            heapq.heappush(events, (now + delay[i] + move_s, 0, 0, r, int(givers[i])))

    for i in range(min(tasks.size, SLOTS * p)):
        add(i % p, tasks[i])
        taken += 1
    for r in range(p):
        arm(r)
    while events:
        now, kind, ver, r, giver = heapq.heappop(events)
        if kind == 1:
            if ver != version[r]:
                continue
            sync(r)
            flight[r].remove(min(flight[r]))
            k[r] -= 1
            end = now
            while taken < tasks.size and k[r] < max(1, min(SLOTS, -(-(tasks.size - taken) // p))):
                add(r, tasks[taken])
                taken += 1
            arm(r)
            if (k[r] == 0 or balance) and not asking[r]:
                wait(r)
        elif k[giver] >= k[r] + 2:
            asking[r] = False
            sync(giver)
            sync(r)
            finish, start = max(flight[giver], key=lambda e: e[1])  # the youngest
            flight[giver].remove((finish, start))
            k[giver] -= 1
            add(r, finish - clock[giver], clock[giver] - start)
            arm(giver)
            arm(r)
            if balance:
                wait(r)
        else:
            wait(r)  # the giver ran out first: ask again
    return end + ClusterHandover.WAIT_CACHE_S + ClusterHandover.BACKOFF_S


def sharing_makespan(tasks: np.ndarray, p: int) -> float:
    """Makespan when every episode starts at once and the p cores are shared equally among the M still
    running, each at min(1, p/M) of a core, as if episodes moved between cores freely and at no cost: the
    ideal that starting every task at once and handing episodes in flight over approaches, without knowing
    which episodes will run long. Between two consecutive episode ends (sorted work w_i) the M left
    advance by w_i - w_(i-1) each."""
    work = np.sort(tasks)
    left = tasks.size - np.arange(tasks.size)
    return float((np.diff(work, prepend=0.0) * np.maximum(left / p, 1.0)).sum())


def floor_makespan(tasks: np.ndarray, p: int) -> float:
    """No schedule of these episodes on p cores ends sooner than the longest episode or the mean load (a
    scheduler that knew every length and could split cores freely would reach it: McNaughton's rule)."""
    return float(max(tasks.max(), tasks.sum() / p))


def list_schedule(units: np.ndarray, workers: int) -> float:
    """Makespan when each unit, in order, goes to the worker that is free first."""
    heap = [0.0] * workers
    for u in units.tolist():
        heapq.heapreplace(heap, heap[0] + u)
    return max(heap)


@functools.cache
def record_bytes() -> int:
    """Size of one Humanoid-v5 episode record handed between ranks (es_mpi.envs.handover)."""
    import gymnasium as gym

    from es_mpi.envs.handover import record_dtype

    env = gym.make("Humanoid-v5").unwrapped
    return record_dtype(env, env.observation_space.shape[0], env.action_space.shape[0]).itemsize


def move_time(atomic_s: float) -> float:
    """Seconds from a giver's decision to the record's arrival across nodes: claim, put and flush, set the
    flag (three remote operations at `atomic_s` each), plus the record at the assumed bandwidth."""
    return 3 * atomic_s + record_bytes() * 8 / BANDWIDTH_BPS


def comm_time(p: int, fit: dict, gathered_bytes: float) -> tuple[float, float]:
    """(latency from the log2 fit, payload time at the assumed bandwidth, counted once per node)."""
    latency = fit["a_s"] + fit["b_s_per_log2p"] * math.log2(p)
    return max(latency, 0.0), gathered_bytes * 8 / BANDWIDTH_BPS


def gathered_bytes(p: int, unit: str, pairs: int = PAIRS) -> float:
    """Bytes one generation's allgather collects: headers, result rows (one 6-float row per pair, or one
    4-float row per episode as es-mpi does) and observation-statistics rows (per pair, or per episode of
    the 1% of pairs drawn: twice as many)."""
    if unit == "pair":
        rows, stats = PAIR_ROW * (pairs + EVAL_EPISODES), STAT_FRACTION * pairs
    else:
        rows, stats = ROW * (EVAL_EPISODES + 2 * pairs), 2 * STAT_FRACTION * pairs
    return 8 * (HEADER * p + rows + stats * STAT_WIDTH)


def project(scenario: dict, gather: dict, update: dict, reps: int, rng: np.random.Generator,
            pairs: int = PAIRS, targets: tuple = TARGET_P, variants: tuple = VARIANTS) -> list[dict]:
    """Every term of T(p) for each target p and scheduling variant, with `pairs` pairs per generation (the
    weighted noise sum, measured for PAIRS pairs, scales with their number)."""
    episodes = np.array(scenario["episode_s"])
    mean_pair = float(episodes.sum(1).mean())
    fit = gather["fit"]["realistic"]
    med = update["median"]
    upd = med["ranks_s"] + med["slice_gradient_s"] * pairs / update["pairs"] + med["adam_s"]
    rows = []
    for p in targets:
        work = pairs * mean_pair / p
        evalw = EVAL_EPISODES * float(episodes.mean()) / p
        crn = int(rng.integers(2**32))  # common random numbers: every variant schedules the same draws
        for name, mode, unit in variants:
            n = max(1, reps // EVENT_REPS_DIVISOR) if mode in EVENT_MODES else reps
            costs = (scenario["us_per_step"] * 1e-6, move_time(gather["grab"]["median_s"]))
            makespan = float(makespans(episodes, p, n, mode, np.random.default_rng(crn), pairs, costs).mean())
            wait = max(makespan - work - evalw, 0.0)
            latency, payload = comm_time(p, fit, gathered_bytes(p, unit, pairs))
            units = (EVAL_EPISODES + (pairs if unit == "pair" else 2 * pairs)) / p
            grab = NODE_GRAB_LATENCY_S if mode == "node-dynamic" else (0.0 if mode == "static-pairs" else
                                                                        gather["grab"]["median_s"])
            dispatch = units * grab
            comm = latency + payload + dispatch
            total = work + evalw + wait + comm + upd
            rows.append({"p": p, "pairs": pairs, "variant": name, "T_work_s": work, "T_eval_s": evalw, "T_wait_s": wait,
                         "T_comm_s": comm, "comm_latency_s": latency, "comm_payload_s": payload,
                         "comm_dispatch_s": dispatch, "T_update_s": upd, "T_s": total, "E": work / total,
                         "E_no_comm": work / (total - comm)})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Output.


def table(rows: list[dict]) -> str:
    """Markdown table of projection rows (times in ms)."""
    head = ("| p | assignment | T_work ms | T_eval ms | T_wait ms | T_comm ms | T_update ms | T(p) ms | E(p) "
            "| E if T_comm=0 |")
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['p']:,} | {r['variant']} | {r['T_work_s'] * 1e3:,.1f} | {r['T_eval_s'] * 1e3:,.1f} | "
                     f"{r['T_wait_s'] * 1e3:,.1f} | "
                     f"{r['T_comm_s'] * 1e3:,.2f} | {r['T_update_s'] * 1e3:,.1f} | {r['T_s'] * 1e3:,.1f} | "
                     f"{r['E']:.1%} | {r['E_no_comm']:.1%} |")
    return "\n".join(lines)


def sweep_table(res: dict) -> str:
    """Markdown table: E at 1,440 ranks under es-mpi's default assignment against pairs per generation."""
    sweep = res["pairs_sweep"]
    names = list(sweep)
    lines = ["| pairs per generation | episodes per rank | " + " | ".join(f"E {n} (if T_comm=0)" for n in names) + " |",
             "|---:|---:|" + "---:|" * len(names)]
    for i, n in enumerate(SWEEP_PAIRS):
        cells = " | ".join(f"{sweep[k][i]['E']:.1%} ({sweep[k][i]['E_no_comm']:.1%})" for k in names)
        lines.append(f"| {n:,} | {(EVAL_EPISODES + 2 * n) / 1440:.1f} | {cells} |")
    return "\n".join(lines)


def reference_table(res: dict) -> str:
    """Markdown table: es-mpi's default at 1,440 ranks next to the what-ifs of REFERENCES, per scenario."""
    lines = ["| scenario | default: T_wait ms, E | hand-over also to ranks with fewer in flight (not built) | "
             "ideal equal sharing | floor |", "|---|---:|---:|---:|---:|"]
    for name in res["references"]:
        rows = [row_at_1440(res, name, v) for v in (HANDOVER, *(ref for ref, _, _ in REFERENCES))]
        lines.append(f"| {name} | " + " | ".join(f"{r['T_wait_s'] * 1e3:,.0f}, {r['E']:.1%}" for r in rows) + " |")
    return "\n".join(lines)


def row_at_1440(res: dict, scenario: str, variant: str) -> dict:
    """The row of `variant` (a projection variant or a reference) at 1,440 ranks in `scenario`."""
    rows = res["projection"][scenario] + res["references"][scenario]
    return next(r for r in rows if r["p"] == 1440 and r["variant"] == variant)


def markdown(res: dict) -> str:
    """The README section: machine, measurements, model, tables, verdict."""
    g, u, m = res["gather"], res["update"], res["meta"]
    fit = g["fit"]["realistic"]
    sc = res["scenarios"]
    gather_lines = "\n".join(
        f"| {r['p']} | {r['header']['median_s'] * 1e3:.3f} | {r['realistic']['median_s'] * 1e3:.3f} | "
        f"{r['realistic']['gathered_bytes'] / 1e3:,.0f} |" for r in g["runs"])
    scen_lines = "\n".join(
        f"| {name} | {s['pairs']} | {s['episode_len_mean']:.0f} | {s['us_per_step']:.0f} | "
        f"{s['pair_s_mean'] * 1e3:,.1f} | {s['pair_s_cv']:.2f} |" for name, s in sc.items())
    tables = "\n\n".join(f"**{name}**\n\n{table(res['projection'][name])}" for name in sc)
    at = {name: {r["variant"]: r for r in res["projection"][name] if r["p"] == 1440} for name in sc}
    verdict = "\n".join(
        f"- {name}: E(1,440) = " + ", ".join(f"{at[name][v]['E']:.1%} {v}" for v, _, _ in VARIANTS) + "."
        for name in sc)
    reprojected = (f"The model was recomputed from these measurements on {m['reprojected']} (`--reproject`). "
                   if m.get("reprojected") else "")
    return f"""## Scaling to a paper-scale Humanoid run

`python bench/scaling.py` (`--quick` for a 2-minute version) measures what one machine can and projects
the parallel efficiency of a Humanoid-v5 run (5,000 pairs per generation, 15 evaluation episodes every
generation, 256x256 MLP, {u['dim']:,} parameters) at 18, 144, 720 and 1,440 ranks. Figures below:
{m['date']}, {m['machine']}, {m['cpus']} cores, Python {m['python']}, numpy {m['numpy']}, {m['mpi']}, mode
`{m['mode']}`; load average (1, 5, 15 min) at start {m['loadavg_start']} and end {m['loadavg_end']}: other
jobs shared the machine, which inflates every measured wall time, the oversubscribed collectives most.
{reprojected}Raw numbers: `bench/out/scaling.json`.

### Model

One generation on p ranks takes T(p) = T_work + T_eval + T_wait + T_comm + T_update, and
E(p) = T_work / T(p):

- T_work = N x (mean pair time) / p, N = 5,000, pair time = both episodes' CPU time, measured here.
- T_eval = 15 x (mean episode time) / p: the evaluation episodes' share if they were spread perfectly
  (drawn from the same measured episode times; they are not training work, so not in T_work).
- T_wait = E[makespan] - T_work - T_eval: a Monte-Carlo event simulation ({res['mc_reps']} repetitions)
  draws N pairs and 15 evaluation episodes from the measured times and schedules them
  - `{STATIC_PAIRS}` (baseline): the unit of work is a pair; tasks are the evaluation episodes then the
    pairs, task t on rank t mod p;
  - `{TODAY}`: the unit is one episode; tasks are the 15 evaluation episodes then episode 2j+side of
    every pair (10,015 in all). Task t belongs to the node of rank t mod p (static across nodes: at 1,440
    ranks 126 tasks, 7 per rank, for most nodes and 108 for the last; the 15 evaluation episodes are
    among node 0's);
    within a node, ranks take the node's next task from a node-shared atomic counter when free
    (`MpiComm.tasks`);
  - `{CLUSTER}`: one counter on rank 0 for the whole cluster; the same task list,
    the next task to the first free rank anywhere in the cluster, one episode in flight per rank;
  - `{HANDOVER}`: what es-mpi does by default, simulated event by event
    ({max(1, res['mc_reps'] // EVENT_REPS_DIVISOR)} repetitions): a rank holds up to {SLOTS} episodes in
    lockstep, each advancing at 1/k of a core with k in flight (Humanoid's batch steps no faster than one
    episode at a time: bench/batched.py), and at most its share of the tasks left (at 1,440 ranks, 7: every
    task starts at once). A rank that runs out of work waits; every rank holding two or more episodes would
    hand it its youngest at its next poll point (every {POLL_EVERY} lockstep steps, so k x {POLL_EVERY} x the
    measured time per step apart, at a uniform phase) once its node's cached count of waiting ranks shows
    it (up to {ClusterHandover.CACHE_S * 1e3:.0f} ms old); the first to get there gives, from any node, and the
    record ({record_bytes():,} bytes) arrives after three remote operations at the measured grab latency
    plus its bytes at the assumed bandwidth; the receiver runs it alone at a full core. The generation
    ends {(ClusterHandover.WAIT_CACHE_S + ClusterHandover.BACKOFF_S) * 1e3:.0f} ms after its last episode
    (the waiting ranks' check).
- T_comm = allgather latency a + b log2(p) fitted below + gathered bytes / 10 Gb/s (assumed network, bytes
  counted once per node) + one grab per task, not overlapped: {g['grab']['median_s'] * 1e3:.2f} ms
  cluster-wide (measured below: a fetch-and-add on rank 0's counter while rank 0 runs Humanoid episodes),
  or an assumed {NODE_GRAB_LATENCY_S * 1e6:.0f} us from node-shared memory. The
  fitted latency comes from oversubscribed runs and is an upper bound; the last column shows E without it.
- T_update, the same in every variant = centered ranks + the weighted noise sum over the 1/18 coordinate
  slice each of a node's 18 ranks computes (measured; es-mpi splits the sum this way through a
  node-shared buffer; the full sum / 18 would be {u['full_over_18_s'] * 1e3:.1f} ms, the slice is slower
  because of per-pair call overhead) + Adam on all parameters. For scale: the full sum on one rank takes
  {u['median']['full_gradient_s'] * 1e3:,.0f} ms.

### Measurements

`MpiComm.gather_blocks` (the trainer's Allgather + Allgatherv) with the trainer's real per-rank payload
(header; one row of 4 floats per episode: kind, index, return, length; an observation-statistics row of
{STAT_WIDTH} floats for each episode of the 1% of pairs drawn for statistics), median of {g['repeats']} calls
(slowest rank per call), one `mpiexec -n p` per p on {g['oversubscribed_on_cpus']} cores. Above 2 ranks the
machine is oversubscribed, so these are upper bounds: they measure the OS scheduler as much as MPI.

| p | header only, ms | realistic, ms | gathered, kB |
|---:|---:|---:|---:|
{gather_lines}

Fit (realistic payload): latency = {fit['a_s'] * 1e3:.3f} ms + {fit['b_s_per_log2p'] * 1e3:.3f} ms x log2(p)
(R^2 = {fit['r2']:.3f}); at 1,440 ranks {(fit['a_s'] + fit['b_s_per_log2p'] * math.log2(1440)) * 1e3:.1f} ms.

Cluster-wide grab (`MpiComm.tasks` with `ES_MPI_TASK_COUNTER=global`, 2 ranks with a core each): rank 0
runs Humanoid episodes at {g['grab']['rank0_steps_per_s']:,.0f} steps/s, polling MPI every 8 steps as the
trainer does, while rank 1 takes tasks with 0-20 ms pauses: median {g['grab']['median_s'] * 1e3:.2f} ms,
90th percentile {g['grab']['p90_s'] * 1e3:.2f} ms over {len(g['grab']['grab_s'])} grabs. Both ranks share
a machine here; across nodes a grab adds the network's round trip.

Update, medians: centered ranks {u['median']['ranks_s'] * 1e3:.2f} ms, full weighted noise sum
{u['median']['full_gradient_s'] * 1e3:,.0f} ms, 1/18 slice {u['median']['slice_gradient_s'] * 1e3:.1f} ms,
Adam {u['median']['adam_s'] * 1e3:.2f} ms (noise table of {u['noise_entries'] / 1e6:.0f}M entries, random
offsets).

Episodes (initial parameters perturbed by 0.02 eps, action noise 0.01, as the trainer runs them). Episode
and update times are CPU seconds of the (single-threaded) process, which equal wall seconds on a dedicated
core and are not inflated by other jobs on this shared machine; wall times are in the JSON too:

| scenario | pairs | mean length | us/step | mean pair ms | pair time CV |
|---|---:|---:|---:|---:|---:|
{scen_lines}

`early` is real: the initial policy falls after about 20 steps. `late-proxy` is real CPU time of full
1,000-step episodes, obtained with `terminate_when_unhealthy: false` (a policy that really survives is not at
hand; the fallen body's contacts make a step slower than a walking one's, so this overstates T_work a
little, which flatters E). `late-mixed` is synthetic: {int(res['mixed_full_fraction'] * 100)}% of episodes
reach the cap, the rest fall after U(100, 999) steps, at measured late per-step times.

### Projection

{tables}

{verdict}

At 1,440 ranks, es-mpi's default next to what-ifs costed the same way (the same grabs, collective and
update): `{BALANCE}` is the default's event simulation ({max(1, res['mc_reps'] // EVENT_REPS_DIVISOR)}
repetitions) in which a rank whose count of episodes in flight falls to k also asks, and any rank holding
k + 2 or more gives it one, which joins its batch (es-mpi hands episodes only to ranks that have none).
`{SHARING}` ({res['mc_reps']} repetitions) shares the cores equally among all episodes still running,
each at min(1, p/M) of a core with M running, as if episodes moved freely and instantly: what starting
every episode at once and handing episodes over approaches without knowing which will run long.
`{FLOOR}`: a generation lasts at least its longest episode and the mean load, max(longest, total / p),
reachable only by a scheduler that knew every length in advance. Cells give T_wait in ms and E.

{reference_table(res)}

At 1,440 ranks with more pairs per generation, under es-mpi's default across nodes (the weighted noise sum
grows with the pairs; the collective's latency does not; a quarter of the repetitions):

{sweep_table(res)}

### What limits efficiency at 1,440 ranks, and what would change it

{textwrap.fill(res['conclusion'], 105)}
"""


def conclusion(res: dict) -> str:
    """Plain-language reading of the projection at 1,440 ranks, numbers filled in from this run."""
    row = functools.partial(row_at_1440, res)

    def e(name: str, variant: str, key: str = "E") -> str:
        return f"{row(name, variant)[key]:.0%}"

    def share(name: str, variant: str, key: str) -> str:
        r = row(name, variant)
        return f"{r[key] / r['T_s']:.1%}"

    def pairs_for_90(name: str) -> str:
        hit = [r["pairs"] for r in res["pairs_sweep"][name] if r["E"] >= 0.9]
        return f"{hit[0]:,}" if hit else f"more than {SWEEP_PAIRS[-1]:,}"

    early = row("early", HANDOVER)
    gb = PAIRS * res["update"]["dim"] * 4 / 1e9
    met = [name for name in ("late-proxy", "late-mixed") if row(name, HANDOVER)["E"] >= 0.9]
    verdict_90 = {0: "not met", 1: f"met only in {met[0] if met else ''}", 2: "met in both late scenarios"}[len(met)]
    return (
        f"At 1,440 ranks a rank runs about {TASKS / 1440:.1f} episodes per generation. Late in training, es-mpi's "
        "default across nodes (cluster-wide counter, lockstep slots and the hand-over of episodes in "
        f"flight to waiting ranks of any node) reaches E = {e('late-proxy', HANDOVER)} / {e('late-mixed', HANDOVER)} "
        f"(late-proxy / late-mixed; {e('late-proxy', HANDOVER, 'E_no_comm')} / "
        f"{e('late-mixed', HANDOVER, 'E_no_comm')} without the oversubscribed T_comm upper bound) in this "
        "model, against "
        f"{e('late-proxy', CLUSTER)} / {e('late-mixed', CLUSTER)} for one episode at a time per rank, "
        f"{e('late-proxy', STATIC_PAIRS)} / {e('late-mixed', STATIC_PAIRS)} for static pairs and "
        f"{e('late-proxy', TODAY)} / {e('late-mixed', TODAY)} for node-only dynamic assignment. One episode at "
        "a time, the straggler tail costs about one episode, whoever hands out the work "
        f"(T_wait = {share('late-proxy', CLUSTER, 'T_wait_s')} / {share('late-mixed', CLUSTER, 'T_wait_s')} "
        "of T(p)); with every episode started at once and episodes in flight handed to whichever rank waits, "
        "what remains is the end of the generation: the last episodes run alone on a core each, and "
        "episodes move only to ranks that have none, so a rank still holding several runs each at a fraction "
        "of a core while others run their last at a full core (T_wait = "
        f"{share('late-proxy', HANDOVER, 'T_wait_s')} / {share('late-mixed', HANDOVER, 'T_wait_s')}; the "
        "delays of polling and caching themselves cost little: the simulation without them differs by a "
        "few tenths of a point). Handing episodes also to ranks that still run some (into their batch; "
        f"not built) would reach {e('late-proxy', BALANCE)} / {e('late-mixed', BALANCE)} in the same "
        "simulation, and ideal equal sharing of the cores, with free and instant migration, "
        f"{e('late-proxy', SHARING)} / {e('late-mixed', SHARING)}: the ideal of es-mpi's approach "
        "(every episode started at once, the cores shared), which stays short of the floor because with every "
        "episode advancing at the same pace the longest ones still finish last, alone. Only a scheduler that "
        f"knew the lengths in advance could approach the floor, {e('late-proxy', FLOOR)} / "
        f"{e('late-mixed', FLOOR)}. With the paper's 5,000 "
        f"pairs the 90% target at 1,440 ranks is {verdict_90} by this model; the pairs sweep above shows the "
        f"pairs per generation that reach it: {pairs_for_90('late-proxy')} / {pairs_for_90('late-mixed')} "
        f"(late-proxy / late-mixed). T_comm is {share('late-proxy', HANDOVER, 'T_comm_s')} (an upper bound) "
        "and T_update "
        f"{share('late-proxy', HANDOVER, 'T_update_s')}. Early in training no scheduling helps: "
        f"{early['T_work_s'] * 1e3:.0f} ms of work per generation meets a {early['comm_latency_s'] * 1e3:.0f} ms "
        "collective (an upper bound, fitted on an oversubscribed 2-core machine and extrapolated from 32 to "
        f"1,440 ranks) and a {early['T_update_s'] * 1e3:.0f} ms update, so E is {e('early', HANDOVER)} "
        f"({e('early', HANDOVER, 'E_no_comm')} without T_comm). Whatever the code, the update reads {PAIRS:,} "
        f"noise slices of {res['update']['dim']:,} float32 per node ({gb:.1f} GB): at an assumed "
        f"{NODE_MEMORY_BPS / 1e9:.0f} GB/s per node that is at least {gb * 1e9 / NODE_MEMORY_BPS * 1e3:.0f} ms, "
        "so the 5% target for the update holds late in training and cannot hold this early. Not modelled: "
        "the evaluation episodes are the first tasks, drawn here from the training episodes' times; "
        "if they run longer (unperturbed policy, no action noise, no adaptive cap) they become the tail. None of "
        "these figures is a cluster measurement: the collective and the grab costs must be measured on the real "
        "network (`bench/scaling.py`'s worker mode under srun), and the late scenarios are proxies."
    )


def measure(quick: bool) -> tuple:
    """Everything this machine measures: (meta, config, collective and grab, update, early and late
    episodes, the late-mixed fraction, start time)."""
    cfg = {"gather_repeats": 40 if quick else 200, "update_repeats": 2 if quick else 5,
           "early_pairs": 40 if quick else 150, "late_pairs": 3 if quick else 40, "mc_reps": 50 if quick else 200,
           "noise_entries": 20_000_000 if quick else 50_000_000}
    mixed_full_fraction = 0.6
    from mpi4py import MPI

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{platform.node()} "
            f"({platform.processor() or platform.machine()})", "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "mpi": " ".join(MPI.Get_library_version().split()[:3]), "mode": "quick" if quick else "full",
            "loadavg_start": [round(x, 2) for x in os.getloadavg()], "config": cfg}
    t_start = time.perf_counter()
    print("1/3 allgather latency (oversubscribed: upper bounds)", flush=True)
    gather = measure_gather(cfg["gather_repeats"], 10)
    gather["grab"] = measure_grab(4.0 if quick else 15.0)
    print(f"2/3 update at paper scale (noise table {cfg['noise_entries']:,} entries)", flush=True)
    noise = np.empty(cfg["noise_entries"], np.float32)
    fill_noise(noise, 123)
    from es_mpi.policies.mlp import MlpPolicy

    dim = MlpPolicy(OBS_DIM, 17, (256, 256), "tanh", np.zeros(17), np.zeros(17)).num_params
    update = measure_update(noise, dim, cfg["update_repeats"])
    print(f"  full update {update['full_update_s'] * 1e3:,.0f} ms, "
          f"split (1/18) {update['split_update_s'] * 1e3:.1f} ms", flush=True)
    print("3/3 Humanoid-v5 episodes", flush=True)
    early = measure_episodes(noise, cfg["early_pairs"], None)
    print(f"  early: {early['pairs']} pairs, mean length {early['episode_len_mean']:.1f}, "
          f"pair {early['pair_s_mean'] * 1e3:.1f} ms", flush=True)
    late = measure_episodes(noise, cfg["late_pairs"], "{terminate_when_unhealthy: false}")
    print(f"  late-proxy: {late['pairs']} pairs, mean length {late['episode_len_mean']:.0f}, "
          f"pair {late['pair_s_mean'] * 1e3:.0f} ms", flush=True)
    del noise
    return meta, cfg, gather, update, early, late, mixed_full_fraction, t_start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and episodes (about 2 minutes)")
    ap.add_argument("--out", default=None, help="default bench/out/scaling.json (scaling-quick.json with --quick)")
    ap.add_argument("--markdown", default=None, help="default bench/out/README-scaling-section.md "
                    "(bench/out/scaling-section-quick.md with --quick)")
    ap.add_argument("--reproject", metavar="JSON", default=None, help="recompute the model from the measurements "
                    "saved in JSON (an earlier run's output) instead of measuring; the date stays the measurements'")
    ap.add_argument("--gather-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--grab-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=8.0, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gather_worker:
        gather_worker(args.repeats, args.warmup)
        return
    if args.grab_worker:
        grab_worker(args.seconds)
        return

    if args.reproject:
        saved = json.loads(Path(args.reproject).read_text())
        meta, gather, update = saved["meta"], saved["gather"], saved["update"]
        early, late, cfg = saved["scenarios"]["early"], saved["scenarios"]["late-proxy"], meta["config"]
        quick, mixed_full_fraction = meta["mode"] == "quick", saved["mixed_full_fraction"]
        meta["reprojected"] = time.strftime("%Y-%m-%d %H:%M:%S")
        t_start = time.perf_counter() - meta["wall_s"]
    else:
        quick = args.quick
        meta, cfg, gather, update, early, late, mixed_full_fraction, t_start = measure(quick)
    rng = np.random.default_rng(0)
    scenarios = {"early": early, "late-proxy": late, "late-mixed": mixed_late(late, 400, mixed_full_fraction, rng)}
    projection = {name: project(s, gather, update, cfg["mc_reps"], rng) for name, s in scenarios.items()}
    default = next(v for v in VARIANTS if v[0] == HANDOVER)
    sweep = {name: [project(s, gather, update, max(1, cfg["mc_reps"] // 4), rng, n, (1440,), (default,))[0]
                    for n in SWEEP_PAIRS] for name, s in scenarios.items()}
    references = {name: project(s, gather, update, cfg["mc_reps"], rng, PAIRS, (1440,), REFERENCES)
                  for name, s in scenarios.items()}

    res = {"meta": meta, "model": {
        "T": "T(p) = T_work + T_eval + T_wait + T_comm + T_update; E(p) = T_work / T(p)",
        "T_work": "N * mean pair time / p, N = 5000, pair time = sum of its two episodes (measured)",
        "T_eval": "15 evaluation episodes * mean episode time / p (drawn from the same episode times)",
        "T_wait": "Monte-Carlo mean makespan - T_work - T_eval; episodes drawn from the measured times",
        "T_comm": "a + b*log2(p) (fitted, oversubscribed: upper bound) + gathered bytes / bandwidth "
                  "(once per node) + grabs x grab latency",
        "T_update": "centered ranks + weighted noise sum on a 1/18 coordinate slice (measured) + Adam",
        "variants": {name: {"mode": mode, "unit": unit} for name, mode, unit in VARIANTS},
        "bandwidth_bps": BANDWIDTH_BPS, "grab_latency_s": gather["grab"]["median_s"],
        "node_grab_latency_s": NODE_GRAB_LATENCY_S, "node_ranks": NODE_RANKS, "pairs": PAIRS,
        "eval_episodes": EVAL_EPISODES, "target_p": list(TARGET_P)},
        "mc_reps": cfg["mc_reps"], "mixed_full_fraction": mixed_full_fraction,
        "gather": gather, "update": update, "scenarios": scenarios, "projection": projection,
        "pairs_sweep": sweep, "references": references}
    res["conclusion"] = conclusion(res)
    res["meta"]["wall_s"] = meta.get("wall_s", time.perf_counter() - t_start)
    if not args.reproject:
        res["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    fit = gather["fit"]["realistic"]
    print(f"\nallgather fit: {fit['a_s'] * 1e3:.3f} ms + {fit['b_s_per_log2p'] * 1e3:.3f} ms * log2(p), "
          f"R^2 {fit['r2']:.3f} (oversubscribed on {os.cpu_count()} cores: upper bound)")
    for name in scenarios:
        print(f"\n{name}\n{table(projection[name])}")
    print(f"\n{reference_table(res)}\n\n{sweep_table(res)}")
    print("\n" + res["conclusion"])
    out = Path(args.out or (ROOT / "bench" / "out" / ("scaling-quick.json" if quick else "scaling.json")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    md = Path(args.markdown or (ROOT / "bench" / ("out/scaling-section-quick.md" if quick else
                                                   "out/README-scaling-section.md")))
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(res))
    print(f"\nwrote {out} and {md} in {res['meta']['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
