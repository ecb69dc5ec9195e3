"""Env steps per second of run_episode one episode at a time against BatchedRunner on the same episodes.

Per task, the paper's policy (jobs/*.yaml) with ES-sized perturbations of its initial parameters, the job's
action noise and observation normalisation, cap 1000. Both sides play the same episodes in this process on
one core, alternating, several times; every batched result is asserted equal to run_episode's. The figure
that counts is the ratio of the medians measured in the same run, per wall second and per CPU second of this
process (the batch runs on the calling thread only; on a shared machine CPU time is the steadier of the two).
Prints a table and writes JSON (default bench/out/batched.json).

    python bench/batched.py [--envs Hopper-v5] [--slots 1 4 8 16] [--repeats 3]
"""

from __future__ import annotations

from es_mpi.parallel.threads import pin_blas_threads

pin_blas_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from es_mpi.envs.lockstep import BatchedRunner, EpisodeSpec  # noqa: E402
from es_mpi.envs.rollout import Episode, run_episode  # noqa: E402
from es_mpi.policies.make import make_policy  # noqa: E402
from es_mpi.runs.job import load_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# job file and episodes per pass: Humanoid's early policies fall within a few dozen steps
JOBS = {"HalfCheetah-v5": ("halfcheetah.yaml", 16), "Hopper-v5": ("hopper.yaml", 32),
        "Humanoid-v5": ("humanoid.yaml", 96)}
CAP = 1000


def episodes(job, policy, count: int, seed: int = 0) -> list[tuple]:
    """(theta, env seed, noise seed) of `count` episodes: antithetic sigma-perturbations of initial weights."""
    rng = np.random.default_rng(seed)
    theta = policy.init_theta(rng)
    sigma = np.float32(job.es.sigma)
    out = []
    for _ in range(count // 2):
        eps = sigma * rng.standard_normal(policy.num_params, dtype=np.float32)
        env_seed, noise_seed = int(rng.integers(1 << 30)), int(rng.integers(1 << 30))
        out += [(theta + eps, env_seed, noise_seed), (theta - eps, env_seed, noise_seed)]
    return out


def specs(played: list[tuple], noise_std: float) -> list[EpisodeSpec]:
    """Fresh noise generators each pass, so both sides draw the same streams."""
    return [EpisodeSpec(t, s, CAP, np.random.default_rng(n), noise_std, False) for t, s, n in played]


def one_by_one(env, policy, todo: list[EpisodeSpec], mean, std) -> list[Episode]:
    return [run_episode(env, policy, e.theta, mean, std, CAP, e.env_seed, e.noise_rng, e.noise_std) for e in todo]


def timed(play, *args) -> tuple[float, float, list[Episode]]:
    """(steps per wall second, steps per CPU second, episodes) of play(*args)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = play(*args)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = sum(e.length for e in out)
    return steps / wall, steps / cpu, out


def measure(env_id: str, slots: list[int], repeats: int) -> dict:
    job_file, count = JOBS[env_id]
    job = load_job(ROOT / "jobs" / job_file, [])
    env = gym.make(env_id).unwrapped
    policy = make_policy(job.policy, env)
    played = episodes(job, policy, count)
    mean, std = np.zeros(policy.obs_dim, np.float32), np.ones(policy.obs_dim, np.float32)
    runners = {k: BatchedRunner(env_id, {}, policy, k) for k in slots}
    noise_std = job.policy.action_noise
    sides = ["one-by-one", *slots]
    rates: dict = {side: {"wall": [], "cpu": []} for side in sides}
    expected = None
    for _ in range(repeats):  # alternate, so that machine noise hits all sides alike
        for side in sides:
            todo = specs(played, noise_std)
            if side == "one-by-one":
                wall, cpu, expected = timed(one_by_one, env, policy, todo, mean, std)
            else:
                wall, cpu, got = timed(runners[side].run, todo, mean, std)
                if [(e.ret, e.length) for e in got] != [(e.ret, e.length) for e in expected]:
                    raise AssertionError(f"{env_id}: batched results with {side} slots differ from run_episode")
            rates[side]["wall"].append(wall)
            rates[side]["cpu"].append(cpu)
    med = {side: {kind: statistics.median(v) for kind, v in r.items()} for side, r in rates.items()}
    return {
        "env": env_id, "job": job_file, "params": policy.num_params, "episodes": count, "cap": CAP,
        "steps": sum(e.length for e in expected), "repeats": repeats, "equal": True,
        "one_by_one": {**rates["one-by-one"], "median_wall": med["one-by-one"]["wall"],
                       "median_cpu": med["one-by-one"]["cpu"]},
        "batched": {str(k): {**rates[k], "median_wall": med[k]["wall"], "median_cpu": med[k]["cpu"],
                             "ratio_wall": med[k]["wall"] / med["one-by-one"]["wall"],
                             "ratio_cpu": med[k]["cpu"] / med["one-by-one"]["cpu"]} for k in slots},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(JOBS), choices=list(JOBS))
    ap.add_argument("--slots", nargs="+", type=int, default=[1, 4, 8, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "batched.json"))
    args = ap.parse_args()
    results = []
    for env_id in args.envs:
        results.append(measure(env_id, args.slots, args.repeats))
        r = results[-1]
        for kind in ("wall", "cpu"):
            line = "  ".join(f"K={k}: {v['median_' + kind]:>7,.0f} ({v['ratio_' + kind]:.2f}x)"
                             for k, v in r["batched"].items())
            print(f"{env_id:<15} {r['steps']:>6,} steps, steps/{kind:<4} s | one-by-one "
                  f"{r['one_by_one']['median_' + kind]:>7,.0f} | {line}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version(),
            "numpy": np.__version__, "mujoco": __import__("mujoco").__version__, "gymnasium": gym.__version__}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
