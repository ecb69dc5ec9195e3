"""Fitness shaping: centered ranks make the update invariant to the scale of the rewards."""

from __future__ import annotations

import numpy as np


def centered_ranks(returns: np.ndarray) -> np.ndarray:
    """Ranks of `returns` (any shape) mapped linearly to [-0.5, 0.5]; tied values share their mean rank.

    The result is float32, with the same shape as `returns`. A single value maps to 0.
    """
    flat = np.asarray(returns, dtype=np.float64).ravel()
    n = flat.size
    if n == 0:
        return np.zeros(np.shape(returns), dtype=np.float32)
    if np.isnan(flat).any():
        raise ValueError("centered_ranks: returns contain NaN")
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    # Each run of equal values gets the mean of the positions it spans.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    if n > 1:
        ranks = ranks / (n - 1) - 0.5
    else:
        ranks[:] = 0.0
    return ranks.reshape(np.shape(returns)).astype(np.float32)
