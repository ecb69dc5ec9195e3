"""The shared noise table: one block of N(0, 1) float32 numbers every rank can rebuild from a seed, and
weighted sums over it.

A perturbation is an offset into the table, so ranks exchange offsets (integers), never vectors.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Blocks keep the peak memory of table creation at the table itself; PCG64 output does not
# depend on how the draw is split, so the table is the same for any block size.
_BLOCK = 1 << 24


def fill_noise(out: np.ndarray, seed: int) -> None:
    """Fill `out` (float32, 1-D) with standard normal numbers from `seed`, in place."""
    rng = np.random.Generator(np.random.PCG64(seed))
    for start in range(0, out.size, _BLOCK):
        rng.standard_normal(out=out[start : start + _BLOCK], dtype=np.float32)


def noise_fingerprint(table: np.ndarray) -> str:
    """A short hash of the table's head and tail: checkpoints store it to detect a different table."""
    head_tail = np.concatenate([table[:4096], table[-4096:]])
    return hashlib.sha256(head_tail.tobytes()).hexdigest()[:16]


def sample_offsets(rng: np.random.Generator, count: int, table_size: int, dim: int) -> np.ndarray:
    """`count` offsets drawn uniformly in [0, table_size - dim], as int64."""
    return rng.integers(0, table_size - dim + 1, size=count, dtype=np.int64)


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
