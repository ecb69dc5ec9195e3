"""Weighted sums over the noise table: the same bits for any split of the coordinates or alignment."""

import numpy as np
from helpers import make_noise

from es_mpi.core.noise import sample_offsets, weighted_noise_sum


def test_coordinate_slices_are_bit_identical_to_the_whole():
    dim, n = 1000, 30
    noise = make_noise(50_000, 4)
    offsets = sample_offsets(np.random.default_rng(5), n, noise.size, dim)
    w = np.random.default_rng(6).normal(size=n).astype(np.float32)
    whole = weighted_noise_sum(noise, offsets, w, dim)
    parts = np.concatenate([weighted_noise_sum(noise, offsets, w, dim, lo, hi) for lo, hi in [(0, 333), (333, 1000)]])
    assert np.array_equal(whole, parts)


def test_result_does_not_depend_on_memory_alignment():
    dim, n = 999, 25
    noise = make_noise(30_000, 9)
    offsets = sample_offsets(np.random.default_rng(7), n, noise.size, dim)
    w = np.random.default_rng(8).normal(size=n).astype(np.float32)
    shifted = np.empty(noise.size + 3, np.float32)[3:]
    shifted[...] = noise
    assert np.array_equal(weighted_noise_sum(noise, offsets, w, dim), weighted_noise_sum(shifted, offsets, w, dim))
