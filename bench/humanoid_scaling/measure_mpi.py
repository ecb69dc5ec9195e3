"""What MPI costs, measured under `mpiexec`: the per-generation collective at p = 2..32 ranks (fitted as
latency = a + b*log2(p)) and one grab from the cluster-wide task counter while its host runs episodes.

The workers run inside bench/scaling.py (its --gather-worker and --grab-worker modes), so that the same
script can be launched under srun on a real cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from es_mpi.core import seeds
from es_mpi.engine.message import HEADER, ROW

from .figures import EVAL_EPISODES, JOB, JOB_FILE, PAIRS, ROOT, STAT_FRACTION, STAT_WIDTH, TASKS

SCRIPT = ROOT / "bench" / "scaling.py"
GATHER_P = (2, 4, 8, 16, 32)


def rank_payload(rank: int, size: int, g: int, rng: np.random.Generator) -> np.ndarray:
    """What the trainer's rank `rank` hands to gather_blocks in generation `g` of the Humanoid job: the
    header, one row per episode it ran (evaluation or training) and one observation-statistics row
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
    """bench/scaling.py in a worker mode under `mpiexec -n ranks`; the JSON line it prints last."""
    cmd = [mpiexec_path(), "-n", str(ranks), sys.executable, str(SCRIPT), *args]
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

    comm = MpiComm(MPI.COMM_WORLD)
    deadline = time.perf_counter() + seconds
    if comm.rank == 0:
        env, limit = make_env(JOB.env, str(JOB_FILE))
        policy = make_policy(JOB.policy, env)
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
