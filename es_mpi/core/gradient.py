"""The ES gradient estimate from antithetic pairs, rebuilt from noise-table offsets."""

from __future__ import annotations

import numpy as np


def weighted_noise_sum(
    noise: np.ndarray, offsets: np.ndarray, weights: np.ndarray, dim: int, lo: int = 0, hi: int | None = None
) -> np.ndarray:
    """sum_j weights[j] * noise[offsets[j] + lo : offsets[j] + hi], accumulated in float32 in index order.

    Elementwise multiply-and-add (no BLAS reduction) makes every coordinate's result depend only on its
    own sequence of terms, so it is bit-identical on any process, for any memory alignment, and for any
    split of the coordinates [lo, hi) between workers.
    """
    hi = dim if hi is None else hi
    total = np.zeros(hi - lo, dtype=np.float32)
    term = np.empty_like(total)
    for offset, weight in zip(offsets.tolist(), np.asarray(weights, dtype=np.float32)):
        if weight == 0.0:
            continue
        np.multiply(noise[offset + lo : offset + hi], weight, out=term)
        total += term
    return total


def es_gradient(
    noise: np.ndarray, offsets: np.ndarray, shaped: np.ndarray, dim: int, lo: int = 0, hi: int | None = None
) -> np.ndarray:
    """Coordinates [lo, hi) of the ascent direction sum_j (u+_j - u-_j) eps_j / (2 n), from shaped
    fitness `shaped` of shape (n, 2).

    As in the reference implementation the 1/sigma factor is left out; Adam's step size absorbs it.
    """
    shaped = np.asarray(shaped, dtype=np.float32)
    weights = shaped[:, 0] - shaped[:, 1]
    grad = weighted_noise_sum(noise, offsets, weights, dim, lo, hi)
    grad /= np.float32(shaped.size)
    return grad
