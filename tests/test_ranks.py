import numpy as np
import pytest

from es_mpi.core.shaping import centered_ranks


def test_ranks_map_linearly_to_half_interval():
    u = centered_ranks(np.array([3.0, -1.0, 10.0, 0.5, 2.0]))
    assert np.allclose(u, [0.25, -0.5, 0.5, -0.25, 0.0])
    assert u.dtype == np.float32


def test_ties_share_the_mean_rank():
    u = centered_ranks(np.array([1.0, 5.0, 5.0, 5.0, 9.0]))
    # positions 1, 2, 3 tie -> rank 2 for all three -> 2/4 - 0.5 = 0
    assert np.allclose(u, [-0.5, 0.0, 0.0, 0.0, 0.5])


def test_shape_is_kept_for_pairs():
    r = np.array([[1.0, 4.0], [3.0, 2.0]])
    u = centered_ranks(r)
    assert u.shape == (2, 2)
    assert np.allclose(u, [[-0.5, 0.5], [1 / 6, -1 / 6]])


def test_invariant_to_monotone_transform_of_returns():
    r = np.random.default_rng(0).normal(size=(50, 2))
    assert np.array_equal(centered_ranks(r), centered_ranks(np.exp(3 * r) + 100))


def test_all_equal_returns_give_zero_weights():
    assert np.array_equal(centered_ranks(np.full((4, 2), 7.0)), np.zeros((4, 2), np.float32))


def test_nan_is_refused():
    with pytest.raises(ValueError):
        centered_ranks(np.array([1.0, np.nan]))
