"""Running observation statistics as (count, sum, sum of squares): merging is plain addition.

Plain addition of float64 sums depends on order, so callers add per-pair contributions in pair order;
that keeps the statistics identical whatever the number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLIP = 5.0
# A small prior count and variance floor keep early normalisation tame (as in the reference code).
_PRIOR_COUNT = 1e-2
_MIN_VAR = 1e-2


@dataclass(frozen=True)
class ObsStats:
    count: float
    total: np.ndarray  # float64, per observation dimension
    total_sq: np.ndarray  # float64

    @staticmethod
    def empty(dim: int) -> ObsStats:
        return ObsStats(_PRIOR_COUNT, np.zeros(dim), np.full(dim, _PRIOR_COUNT))

    def pack(self) -> np.ndarray:
        """One float64 buffer [count, sums..., sums of squares...] for a single message."""
        return np.concatenate([[self.count], self.total, self.total_sq])

    @staticmethod
    def unpack(buf: np.ndarray) -> ObsStats:
        dim = (buf.size - 1) // 2
        return ObsStats(float(buf[0]), buf[1 : 1 + dim].copy(), buf[1 + dim :].copy())

    def add(self, delta: ObsStats) -> ObsStats:
        return ObsStats(self.count + delta.count, self.total + delta.total, self.total_sq + delta.total_sq)

    def add_all(self, deltas: list[ObsStats]) -> ObsStats:
        """These statistics plus each of `deltas`, added in their order (the order fixes the bits)."""
        stats = self
        for delta in deltas:
            stats = stats.add(delta)
        return stats

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 mean and std, the std floored so that constant features do not explode."""
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - mean * mean, _MIN_VAR)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def normaliser(stats: ObsStats, enabled: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(mean, std) for run_episode, or (None, None) when the job does not normalise observations."""
    return stats.mean_std() if enabled else (None, None)


def accumulate(observations: np.ndarray) -> ObsStats:
    """Statistics of a (steps, dim) block of observations, with zero prior."""
    obs = np.asarray(observations, dtype=np.float64)
    return ObsStats(float(obs.shape[0]), obs.sum(axis=0), np.square(obs).sum(axis=0))


def normalise(obs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 (obs - mean) / std clipped to [-CLIP, CLIP]; in-place ufuncs, as it runs every env step."""
    x = np.array(obs, dtype=np.float32)
    x -= mean
    x /= std
    np.maximum(x, -CLIP, out=x)
    np.minimum(x, CLIP, out=x)
    return x
