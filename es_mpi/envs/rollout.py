"""Episodes: one policy, one env, one seed; the result depends on nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from es_mpi.core.obs_stats import ObsStats, accumulate, normalise
from es_mpi.policies.mlp import MlpPolicy

# Action noise is drawn this many steps at a time (the lockstep runner draws the same blocks).
NOISE_BLOCK = 128
# Steps between calls of the progress hook.
POLL_EVERY = 8


@dataclass(frozen=True)
class EpisodeSpec:
    """The arguments of one `run_episode` call that vary between episodes."""

    theta: np.ndarray
    env_seed: int
    cap: int
    noise_rng: np.random.Generator | None = None
    noise_std: float = 0.0
    collect_stats: bool = False
    task: int = -1  # the engine's task number (which episode of the generation), -1 outside training
    # (env, last raw observation) -> the episode's behaviour vector, computed where it ends; None: none
    behaviour: Callable[[object, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Episode:
    ret: float
    length: int
    stats: ObsStats | None  # raw-observation statistics, when asked for
    task: int = -1  # the spec's task
    behaviour: np.ndarray | None = None  # the spec's behaviour function at the end (float64), when asked for


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
    return play(env, policy, EpisodeSpec(theta, env_seed, cap, noise_rng, noise_std, collect_stats), mean, std,
                poll)


def noise_block(spec: EpisodeSpec, width: int) -> np.ndarray:
    """The next NOISE_BLOCK steps of the episode's action noise, drawn and scaled at once: the stream's
    values do not depend on the block size."""
    block = spec.noise_rng.standard_normal((NOISE_BLOCK, width), dtype=np.float32)
    block *= np.float32(spec.noise_std)
    return block


def play(env, policy: MlpPolicy, spec: EpisodeSpec, mean: np.ndarray | None, std: np.ndarray | None,
         poll: Callable[[], object] | None = None) -> Episode:
    """run_episode for one spec."""
    obs, _ = env.reset(seed=spec.env_seed)
    return finish_episode(env, policy, spec, obs, mean, std, [] if spec.collect_stats else None, poll)


def finish_episode(env, policy: MlpPolicy, spec: EpisodeSpec, obs: np.ndarray, mean: np.ndarray | None,
                   std: np.ndarray | None, seen: list | None, poll: Callable[[], object] | None,
                   total: float = 0.0, steps: int = 0, noise: np.ndarray | None = None) -> Episode:
    """The rest of episode `spec` whose env holds the state after `steps` steps, `obs` being its
    observation: run_episode from a reset, the lockstep runner handing over its last episode, or an
    episode received from another rank (es_mpi.envs.handover). `seen` collects raw observations (None: no
    statistics); `noise` is the current action-noise block mid-block."""
    bound, cap = policy.bind(spec.theta), spec.cap
    noisy = spec.noise_rng is not None and spec.noise_std > 0
    while steps < cap:
        if poll is not None and steps % POLL_EVERY == 0:
            poll()
        if noisy and steps % NOISE_BLOCK == 0:
            noise = noise_block(spec, policy.noise_dim)
        if seen is not None:
            seen.append(obs)
        action = policy.act(bound, obs if mean is None else normalise(obs, mean, std),
                            noise[steps % NOISE_BLOCK] if noisy else None)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            break
    stats = accumulate(np.asarray(seen)) if seen else None
    bc = spec.behaviour(env, obs) if spec.behaviour is not None else None
    return Episode(float(total), steps, stats, spec.task, bc)


def run_one_by_one(env, policy: MlpPolicy, specs: Iterable[EpisodeSpec], mean: np.ndarray | None,
                   std: np.ndarray | None, poll: Callable[[], object] | None = None,
                   limit: Callable[[], int] | None = None, handover_round=None) -> list[Episode]:
    """play each spec in turn: the path for envs the lockstep runner does not cover (one episode in
    flight, so `limit` has nothing to cap and there is never one to hand over). With `handover_round`, the
    generation's es_mpi.envs.handover.HandoverRound, it then finishes episodes that other ranks hand over."""
    episodes = [play(env, policy, s, mean, std, poll) for s in specs]
    if handover_round is not None:
        episodes += handover_round.finish_received(env, policy, mean, std, poll)
    return episodes
