import numpy as np
from helpers import make_noise

from es_mpi.core.gradient import es_gradient, weighted_noise_sum
from es_mpi.core.noise import sample_offsets
from es_mpi.core.shaping import centered_ranks


def test_gradient_matches_slow_explicit_formula():
    dim, n = 300, 40
    noise = make_noise(10_000, 0)
    offsets = sample_offsets(np.random.default_rng(2), n, noise.size, dim)
    shaped = centered_ranks(np.random.default_rng(3).normal(size=(n, 2)))
    slow = np.zeros(dim)
    for j in range(n):
        eps = noise[offsets[j] : offsets[j] + dim].astype(np.float64)
        slow += (float(shaped[j, 0]) - float(shaped[j, 1])) * eps
    slow /= 2 * n
    fast = es_gradient(noise, offsets, shaped, dim)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_gradient_points_toward_better_perturbations():
    dim = 50
    noise = make_noise(20_000, 1)
    offsets = sample_offsets(np.random.default_rng(0), 200, noise.size, dim)
    target = np.linspace(-1, 1, dim)
    eps = np.stack([noise[k : k + dim] for k in offsets])
    returns = np.stack([eps @ target, -(eps @ target)], axis=1)  # F(theta +- sigma eps) of a linear F
    g = es_gradient(noise, offsets, centered_ranks(returns), dim)
    assert np.dot(g, target) / (np.linalg.norm(g) * np.linalg.norm(target)) > 0.8


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
