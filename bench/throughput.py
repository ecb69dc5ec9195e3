"""Env steps per second of a real training run against a plain gymnasium loop with the same policy.

The plain loop replays exactly the episodes the training run played (same perturbed parameters, env
seeds, observation normalisation, action noise and caps) through `gym.make` with its default wrappers,
and the benchmark checks that it gets the same returns: the difference in speed is then the cost of the
ES machinery alone (noise, gather, update, statistics, loop), not of different trajectories. Both run in
this process on one core, alternating, several times; the figure that counts is the ratio of the medians
measured in the same run. Prints a table and writes JSON (default bench/out/throughput.json).

    python bench/throughput.py [--envs HalfCheetah-v5 Humanoid-v5 Hopper-v5] [--repeats 3] [--steps 20000]
    python bench/throughput.py --envs --jobs jobs/ars_halfcheetah.yaml   # any job file, e.g. ARS's linear policy
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
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from es_mpi.core.obs_stats import normalise  # noqa: E402
from es_mpi.engine.context import Context, build_context  # noqa: E402
from es_mpi.engine.loop import Rows, train  # noqa: E402
from es_mpi.engine.signals import StopFlag  # noqa: E402
from es_mpi.envs.make import make_env  # noqa: E402
from es_mpi.parallel.comm import LocalComm  # noqa: E402
from es_mpi.policies.make import make_policy  # noqa: E402
from es_mpi.runs.job import load_job  # noqa: E402
from es_mpi.runs.state import initial_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"HalfCheetah-v5": "halfcheetah.yaml", "Humanoid-v5": "humanoid.yaml", "Hopper-v5": "hopper.yaml",
        "Walker2d-v5": "walker2d.yaml", "Swimmer-v5": "swimmer.yaml", "Ant-v5": "ant.yaml",
        "InvertedPendulum-v5": "inverted_pendulum.yaml", "InvertedDoublePendulum-v5": "inverted_double_pendulum.yaml"}
# The default set; --envs takes any of JOBS (the eight tasks the lockstep runner models).
DEFAULT_ENVS = ["HalfCheetah-v5", "Humanoid-v5", "Hopper-v5"]


def training_rate(ctx: Context, generations: int) -> tuple[float, list[dict]]:
    """Steps/s (training and evaluation episodes) over whole generations of `train`, start-up excluded."""
    writer = Rows()
    rows = writer.rows
    state = initial_state(ctx.strategy)
    budget = replace(ctx.job, run=replace(ctx.job.run, generations=generations, checkpoint_every=10**9))
    t0 = time.perf_counter()
    _, state = train(replace(ctx, job=budget), state, writer, StopFlag())
    wall = time.perf_counter() - t0
    steps = sum(r["steps_per_s"] * r["generation_s"] for r in rows)
    return steps / wall, rows


def record_episodes(ctx: Context, generations: int) -> list[dict]:
    """The arguments and results of every episode a training run plays (an untimed pass)."""
    played = []

    def recording(specs, mean, std, poll=None, limit=None, exchange=None):  # one process: no exchange
        taken = []

        def tap():
            for spec in specs:
                taken.append((spec, spec.noise_rng.bit_generator.state if spec.noise_rng is not None else None))
                yield spec

        episodes = ctx.run_episodes(tap(), mean, std, poll, limit, exchange)
        for (spec, noise_state), ep in zip(taken, episodes):
            played.append({"theta": spec.theta.copy(), "mean": mean, "std": std, "cap": spec.cap,
                           "seed": spec.env_seed, "noise_state": noise_state, "noise_std": spec.noise_std,
                           "ret": ep.ret, "length": ep.length})
        return episodes

    training_rate(replace(ctx, run_episodes=recording), generations)
    return played


def plain_rate(env_id: str, policy, episodes: list[dict]) -> float:
    """Replay `episodes` the way a user's own loop would: gym.make with every default wrapper, one noise
    draw per step. Fails if any return differs from the training run's."""
    env = gym.make(env_id)
    steps = 0
    t0 = time.perf_counter()
    for ep in episodes:
        layers = policy.bind(ep["theta"])
        rng = None
        if ep["noise_state"] is not None and ep["noise_std"] > 0:
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = ep["noise_state"]
        obs, _ = env.reset(seed=ep["seed"])
        total, length = 0.0, 0
        while length < ep["cap"]:
            action = policy.act(layers, obs if ep["mean"] is None else normalise(obs, ep["mean"], ep["std"]))
            if rng is not None:
                action = action + np.float32(ep["noise_std"]) * rng.standard_normal(policy.act_dim, dtype=np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            length += 1
            if terminated or truncated:
                break
        steps += length
        if total != ep["ret"] or length != ep["length"]:
            raise AssertionError(f"replay differs from training: return {total} vs {ep['ret']}")
    return steps / (time.perf_counter() - t0)


def measure(job_file: Path, pairs: int, generations: int, repeats: int, slot_counts: list[int]) -> dict:
    """Training with each number of lockstep slots (1: one gymnasium episode at a time) against the
    plain replay, alternating within each repeat. `pairs` sets OpenAI-ES's es.pairs; other strategies
    keep their job's population."""
    job = load_job(job_file, [f"es.pairs={pairs}", "es.noise_table_size=20000000"])
    env_id = job.env.id
    env, limit = make_env(job.env)
    policy = make_policy(job.policy, env)
    contexts = {k: build_context(job, LocalComm(), env, limit, policy, slots=k) for k in slot_counts}
    episodes = record_episodes(contexts[slot_counts[0]], generations)
    train_rates: dict[int, list[float]] = {k: [] for k in slot_counts}
    plain_rates = []
    for _ in range(repeats):  # alternate, so that machine noise hits every side alike
        for k, ctx in contexts.items():
            train_rates[k].append(training_rate(ctx, generations)[0])
        plain_rates.append(plain_rate(env_id, policy, episodes))
    plain = statistics.median(plain_rates)
    return {
        "env": env_id, "job": job_file.name, "params": policy.num_params, "pairs": pairs,
        "generations": generations, "episodes": len(episodes), "steps": sum(e["length"] for e in episodes),
        "repeats": repeats, "plain_steps_per_s": plain_rates, "plain_median": plain,
        "training": {str(k): {"steps_per_s": r, "median": statistics.median(r),
                              "ratio": statistics.median(r) / plain} for k, r in train_rates.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="*", default=DEFAULT_ENVS, choices=sorted(JOBS))
    ap.add_argument("--jobs", nargs="+", default=[], help="job files to measure after --envs' jobs")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 8], help="lockstep simulations per rank")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "throughput.json"))
    args = ap.parse_args()
    jobs = [ROOT / "jobs" / JOBS[e] for e in args.envs] + [Path(j).resolve() for j in args.jobs]
    results = [measure(j, args.pairs, args.generations, args.repeats, args.slots) for j in jobs]
    print(f"{'job':<24} {'params':>8} {'plain gym steps/s':>18}  training steps/s (ratio) by slots")
    for r in results:
        cells = "  ".join(f"{k}: {t['median']:,.0f} ({t['ratio']:.3f})" for k, t in r["training"].items())
        print(f"{r['job']:<24} {r['params']:>8,} {r['plain_median']:>18,.0f}  {cells}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "mujoco": __import__("mujoco").__version__, "gymnasium": gym.__version__}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
