"""Atari on one core: the CNN policy's forward pass against the emulator step it drives, and the env
steps per second of a short Pong training run.

An agent step is `frame_skip` emulator frames plus the preprocessing (max-pool, grayscale, 84x84 resize,
frame stack); the policy forward is one `act` (im2col convolutions, dense layers, argmax) on one
observation. Both are timed in this process, alternating in blocks, several times; the medians count.
The issue's target: forward <= emulator step. Also timed: `bind` (the VBN statistics of one perturbed
network on the reference batch, once per episode) and the bare emulator (frames only, no preprocessing).
Prints a table and writes JSON (default bench/out/atari.json).

    python bench/atari.py [--job jobs/pong.yaml] [--repeats 5] [--block 500] [--train-generations 3]
"""

from __future__ import annotations

from es_mpi.parallel.threads import pin_blas_threads

pin_blas_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from es_mpi.engine.context import Context, build_context  # noqa: E402
from es_mpi.engine.loop import Rows, train  # noqa: E402
from es_mpi.engine.signals import StopFlag  # noqa: E402
from es_mpi.envs.make import make_env  # noqa: E402
from es_mpi.parallel.comm import LocalComm  # noqa: E402
from es_mpi.policies.make import make_policy  # noqa: E402
from es_mpi.policies.reference_batch import collect_reference_batch  # noqa: E402
from es_mpi.runs.job import load_job  # noqa: E402
from es_mpi.runs.state import initial_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def per_call_ms(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e3


def micro(env, policy, theta: np.ndarray, repeats: int, block: int) -> dict:
    """Median milliseconds per call of env.step, policy.act, bare emulation and bind."""
    layers = policy.bind(theta)
    obs, _ = env.reset(seed=0)
    frames = []
    for i in range(block):  # observations of real play for the forward pass
        obs, _, terminated, _, _ = env.step(policy.act(layers, obs))
        frames.append(obs)
        if terminated:
            obs, _ = env.reset(seed=i)
    n_actions, skip, ale = env.action_space.n, env.frame_skip, env.ale
    raw_action = env.actions[1 % n_actions]

    def step(i):
        _, _, terminated, _, _ = env.step(i % n_actions)
        if terminated:
            env.reset(seed=i)

    def emulate(i):
        for _ in range(skip):
            ale.act(raw_action)
        if ale.game_over():
            env.reset(seed=i)

    times = {"env_step": [], "policy_act": [], "emulator_only": [], "bind": []}
    for r in range(repeats):
        env.reset(seed=r)
        times["env_step"].append(per_call_ms(step, block))
        times["policy_act"].append(per_call_ms(lambda i: policy.act(layers, frames[i % len(frames)]), block))
        env.reset(seed=r)
        times["emulator_only"].append(per_call_ms(emulate, block))
        times["bind"].append(per_call_ms(lambda i: policy.bind(theta), 3))
    return {k: statistics.median(v) for k, v in times.items()} | {"samples_ms": times}


def training_rate(ctx: Context, ref: np.ndarray) -> dict:
    """Env steps per second (training and evaluation episodes) over whole generations, one process."""
    state = replace(initial_state(ctx.strategy), ref_batch=ref)
    writer = Rows()
    rows = writer.rows
    t0 = time.perf_counter()
    train(ctx, state, writer, StopFlag())
    wall = time.perf_counter() - t0
    steps = sum(r["steps_per_s"] * r["generation_s"] for r in rows)
    return {"generations": len(rows), "steps": round(steps), "wall_s": wall, "steps_per_s": steps / wall,
            "mean_episode_length": statistics.mean(r["length_mean"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", default=str(ROOT / "jobs" / "pong.yaml"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--block", type=int, default=500, help="calls per timed block")
    ap.add_argument("--train-generations", type=int, default=3)
    ap.add_argument("--train-pairs", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "atari.json"))
    args = ap.parse_args()

    job = load_job(args.job, [f"es.pairs={args.train_pairs}", "es.noise_table_size=10000000",
                              f"run.generations={args.train_generations}", "run.eval_every=0"])
    env, limit = make_env(job.env, args.job)
    t0 = time.perf_counter()
    ref = collect_reference_batch(env, job.policy.ref_batch, job.run.seed)
    collect_s = time.perf_counter() - t0
    policy = make_policy(job.policy, env, ref)
    ctx = build_context(job, LocalComm(), env, limit, policy)
    theta = ctx.strategy.bases(ctx.strategy.init())[0]  # the initial parameters
    m = micro(env, policy, theta, args.repeats, args.block)
    run = training_rate(ctx, ref)

    ratio = m["policy_act"] / m["env_step"]
    print(f"{job.env.id} on one core ({platform.processor() or platform.machine()}), "
          f"{policy.num_params:,} parameters, frame skip {job.env.atari.frame_skip}")
    print(f"  emulator step (agent step: {job.env.atari.frame_skip} frames + preprocessing) "
          f"{m['env_step']:7.3f} ms  ({1e3 / m['env_step']:6,.0f} steps/s)")
    print(f"    of which bare emulation                                 {m['emulator_only']:7.3f} ms")
    print(f"  policy forward (one observation, act)                     {m['policy_act']:7.3f} ms  "
          f"({ratio:.2f} x the emulator step: {'OK' if ratio <= 1 else 'SLOWER'})")
    print(f"  VBN bind (reference batch of {len(ref)}, once per episode)        {m['bind']:7.1f} ms")
    print(f"  reference batch collection (once per run)                 {collect_s * 1e3:7.0f} ms")
    print(f"  training run: {run['steps']:,} steps in {run['generations']} generations of {job.es.pairs} pairs, "
          f"{run['steps_per_s']:,.0f} steps/s (mean episode {run['mean_episode_length']:.0f} steps)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "env_id": job.env.id, "num_params": policy.num_params, "machine": platform.machine(),
        "processor": platform.processor(), "numpy": np.__version__, "per_core_ms": m,
        "forward_over_step": ratio, "ref_batch_collect_s": collect_s, "training": run,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
