import numpy as np

from es_mpi.core.optimizers import adam_step, init_state, sgd_step


def test_adam_matches_hand_computed_steps():
    theta = np.array([1.0, -2.0], np.float32)
    state = init_state(2)
    g1 = np.array([0.5, -1.0], np.float32)
    theta, state = adam_step(theta, g1, state, lr=0.1)
    # step 1: m = 0.1 g, v = 0.001 g^2, a = 0.1 * sqrt(0.001) / 0.1 -> update = a * m / sqrt(v) = 0.1 * sign(g)
    np.testing.assert_allclose(theta, [0.9, -1.9], rtol=1e-6)
    g2 = np.array([0.5, 3.0], np.float32)
    theta, state = adam_step(theta, g2, state, lr=0.1)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    a = 0.1 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    expected = np.array([0.9, -1.9]) - a * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-5)
    assert state.step == 2 and theta.dtype == np.float32


def test_sgd_momentum_matches_hand_computed_steps():
    theta = np.array([1.0], np.float32)
    state = init_state(1)
    theta, state = sgd_step(theta, np.array([2.0], np.float32), state, lr=0.5, momentum=0.9)
    np.testing.assert_allclose(theta, [1.0 - 0.5 * 0.2], rtol=1e-6)
    theta, state = sgd_step(theta, np.array([2.0], np.float32), state, lr=0.5, momentum=0.9)
    np.testing.assert_allclose(theta, [0.9 - 0.5 * (0.9 * 0.2 + 0.2)], rtol=1e-6)


def test_adam_minimises_a_quadratic():
    theta, state = np.array([3.0, -4.0], np.float32), init_state(2)
    for _ in range(500):
        theta, state = adam_step(theta, 2 * theta, state, lr=0.05)
    assert np.abs(theta).max() < 0.05
