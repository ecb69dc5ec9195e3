"""The novelty archive: behaviour vectors in the order they were added, and the novelty of new ones.

Novelty (Lehman and Stanley 2011; Conti et al. 2018) is the mean Euclidean distance from a behaviour vector
to its k nearest neighbours in the archive. Every rank holds the same archive and computes the same
novelties: the distances are exact elementwise float64 arithmetic (no matrix-product expansion, whose
rounding depends on the BLAS), and the k smallest are summed in sorted order.
"""

from __future__ import annotations

import numpy as np

# Distances are computed for this many (query, entry) pairs at a time, bounding the temporary arrays.
BLOCK_PAIRS = 1 << 21


def novelty(queries: np.ndarray, archive: np.ndarray, k: int) -> np.ndarray:
    """Mean distance from each row of `queries` (n, w) to its min(k, len(archive)) nearest rows of `archive`
    (a, w), float64 (n,). An empty archive makes every query infinitely novel."""
    queries = np.asarray(queries, np.float64)
    archive = np.asarray(archive, np.float64)
    n, a = len(queries), len(archive)
    if a == 0:
        return np.full(n, np.inf)
    k = min(k, a)
    columns = np.ascontiguousarray(archive.T)
    out = np.empty(n)
    rows = max(1, BLOCK_PAIRS // a)
    squared, diff = np.empty((min(rows, n), a)), np.empty((min(rows, n), a))
    for lo in range(0, n, rows):
        block = queries[lo : lo + rows]
        sq, d = squared[: len(block)], diff[: len(block)]
        sq.fill(0.0)
        for j in range(columns.shape[0]):  # one coordinate at a time: a fixed order of additions
            np.subtract(block[:, j, None], columns[j], out=d)
            np.multiply(d, d, out=d)
            sq += d
        nearest = np.partition(sq, k - 1, axis=1)[:, :k] if k < a else sq
        out[lo : lo + rows] = np.sqrt(np.sort(nearest, axis=1)).mean(axis=1)
    return out
