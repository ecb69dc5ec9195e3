"""Training episode caps: the env's own limit, one that grows when episodes hit it, or a multiple of the
mean length (job.env.episode_cap); pure functions of the job and the last generation's lengths."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from es_mpi.runs.job import Job


def first_cap(job: Job, env_limit: int) -> int:
    """The cap of generation 0."""
    return min(job.env.adaptive.start, env_limit) if job.env.episode_cap == "adaptive" else env_limit


def next_cap(job: Job, cap: int, lengths: np.ndarray, env_limit: int) -> int:
    """The next generation's cap. 'adaptive' (the reference code's adaptive:start,fraction,ratio)
    multiplies it by `ratio` once `fraction` of the episodes hit it; 'mean' sets it to a multiple of this
    generation's mean length, so that a few long episodes cannot hold up every rank (capped episodes count
    as their capped length, so the cap can still grow: if all hit it, it doubles)."""
    kind = job.env.episode_cap
    if kind == "adaptive" and np.mean(lengths == cap) >= job.env.adaptive.fraction:
        return min(int(cap * job.env.adaptive.ratio), env_limit)
    if kind == "mean":
        m = job.env.mean_cap
        return min(max(int(np.ceil(m.multiple * lengths.mean())), m.minimum), env_limit)
    return cap
