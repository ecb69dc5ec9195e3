"""Episodes: one policy, one env, one seed; the result depends on nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .obs_norm import ObsStats, accumulate, normalise
from .policy import MlpPolicy

_NOISE_BLOCK = 128
_POLL_EVERY = 8


@dataclass(frozen=True)
class Episode:
    ret: float
    length: int
    stats: ObsStats | None  # raw-observation statistics, when asked for


def run_episode(
    env,
    policy: MlpPolicy,
    theta: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    cap: int,
    env_seed: int,
    noise_rng: np.random.Generator | None = None,
    noise_std: float = 0.0,
    collect_stats: bool = False,
    poll: Callable[[], object] | None = None,
) -> Episode:
    """Run until termination or `cap` steps; Gaussian action noise only when `noise_rng` is given.
    Observations are normalised by (mean, std) unless mean is None. `poll`, if given, is called every
    few steps (rank 0 serving the task counter to other ranks)."""
    bound = policy.bind(theta)
    obs, _ = env.reset(seed=env_seed)
    seen = [] if collect_stats else None
    total, steps = 0.0, 0
    noisy = noise_rng is not None and noise_std > 0
    while steps < cap:
        if poll is not None and steps % _POLL_EVERY == 0:
            poll()
        if noisy and steps % _NOISE_BLOCK == 0:
            # Drawn in blocks, scaled once: the stream's values do not depend on the block size.
            noise = noise_rng.standard_normal((_NOISE_BLOCK, policy.act_dim), dtype=np.float32)
            noise *= np.float32(noise_std)
        if seen is not None:
            seen.append(obs)
        action = policy.act(bound, obs if mean is None else normalise(obs, mean, std))
        if noisy:
            action += noise[steps % _NOISE_BLOCK]
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            break
    stats = accumulate(np.asarray(seen)) if seen else None
    return Episode(float(total), steps, stats)
