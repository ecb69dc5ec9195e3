"""What the work of a generation costs on one core: the update at paper scale, and Humanoid-v5 episode
times run exactly as the trainer runs them (plus a synthetic late-training mix drawn from them).

Times are CPU seconds of this single-threaded process: on a dedicated core they equal wall seconds, and
they do not grow when other jobs share the machine (wall times, which do, are kept beside them).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from es_mpi.core import seeds
from es_mpi.core.noise import sample_offsets, weighted_noise_sum
from es_mpi.core.obs_stats import ObsStats
from es_mpi.core.optimizers import adam_step, init_state
from es_mpi.core.shaping import centered_ranks

from .figures import JOB, JOB_FILE, NODE_RANKS, PAIRS


def timed(fn, repeats: int) -> list[float]:
    """CPU seconds of this process for `repeats` calls of fn()."""
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def full_gradient(noise: np.ndarray, offsets: np.ndarray, shaped: np.ndarray, dim: int) -> np.ndarray:
    """The ES ascent direction over all coordinates on one rank, as the openai_es strategy computes it."""
    grad = weighted_noise_sum(noise, offsets, shaped[:, 0] - shaped[:, 1], dim)
    grad /= np.float32(shaped.size)
    return grad


def measure_update(noise: np.ndarray, dim: int, repeats: int) -> dict:
    """Centered ranks, the full gradient, its 1/NODE_RANKS coordinate slice and Adam for PAIRS pairs."""
    rng = np.random.default_rng(7)
    offsets = sample_offsets(rng, PAIRS, noise.size, dim)
    returns = rng.normal(size=(PAIRS, 2))
    shaped = centered_ranks(returns)
    weights = shaped[:, 0] - shaped[:, 1]
    theta = rng.standard_normal(dim).astype(np.float32)
    grad = full_gradient(noise, offsets, shaped, dim)
    opt, l2 = init_state(dim), np.float32(JOB.es.l2)
    width = math.ceil(dim / NODE_RANKS)
    slices = [(k * width, min(dim, (k + 1) * width)) for k in range(NODE_RANKS)]
    slice_times = []
    for i in range(repeats * 3):  # different slices: each rank of a node does one
        lo, hi = slices[(i * 7) % NODE_RANKS]
        slice_times += timed(lambda lo=lo, hi=hi: weighted_noise_sum(noise, offsets, weights, dim, lo, hi), 1)
    res = {
        "ranks_s": timed(lambda: centered_ranks(returns), 20),
        "full_gradient_s": timed(lambda: full_gradient(noise, offsets, shaped, dim), repeats),
        "slice_gradient_s": slice_times,
        "adam_s": timed(lambda: adam_step(theta, -grad + l2 * theta, opt, JOB.optimizer.lr), 20),
    }
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"pairs": PAIRS, "dim": dim, "noise_entries": int(noise.size), "slice_of": NODE_RANKS,
            "slice_width": width, "samples": res, "median": med,
            "full_update_s": med["ranks_s"] + med["full_gradient_s"] + med["adam_s"],
            "split_update_s": med["ranks_s"] + med["slice_gradient_s"] + med["adam_s"],
            "full_over_18_s": med["full_gradient_s"] / NODE_RANKS}


def episode_summary(t: np.ndarray, steps: np.ndarray) -> dict:
    """Pair-time and length statistics of (pairs, 2) episode CPU times `t` and lengths `steps`."""
    pair = t.sum(1)
    return {"pair_s_mean": float(pair.mean()), "pair_s_median": float(np.median(pair)),
            "pair_s_cv": float(pair.std() / pair.mean()), "episode_len_mean": float(steps.mean()),
            "us_per_step": float(t.sum() / steps.sum() * 1e6)}


def measure_episodes(noise: np.ndarray, pairs: int, kwargs: str | None) -> dict:
    """CPU time and length of both episodes of `pairs` antithetic pairs at the initial parameters, run
    exactly as the trainer runs them (offsets, env seeds, action noise, caps, obs normalisation)."""
    from es_mpi.envs.make import make_env
    from es_mpi.envs.rollout import run_episode
    from es_mpi.policies.make import make_policy
    from es_mpi.runs.job import load_job

    overrides = [f"env.kwargs={kwargs}"] if kwargs else []
    job = load_job(JOB_FILE, overrides)
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
            "episode_len": steps.tolist(), **episode_summary(t, steps)}


def mixed_late(late: dict, pairs: int, full_fraction: float, rng: np.random.Generator) -> dict:
    """A synthetic late-training mix: an episode reaches the 1,000-step cap with probability `full_fraction`,
    else falls after U(100, 999) steps; its time is its length times a measured late per-step time."""
    per_step = np.array(late["episode_s"]).ravel() / np.array(late["episode_len"]).ravel()
    length = np.where(rng.random((pairs, 2)) < full_fraction, 1000, rng.integers(100, 1000, (pairs, 2)))
    t = length * rng.choice(per_step, (pairs, 2))
    return {"synthetic": True, "full_fraction": full_fraction, "pairs": pairs, "episode_s": t.tolist(),
            "episode_len": length.tolist(), **episode_summary(t, length)}
