import numpy as np

from es_mpi.policies.mlp import MlpPolicy


def policy(bins=None, hidden=(16, 8)):
    return MlpPolicy(5, 3, hidden, "tanh", np.full(3, -1, np.float32), np.full(3, 1, np.float32), bins)


def test_parameter_count_and_layer_views():
    p = policy()
    assert p.num_params == 5 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
    theta = p.init_theta(np.random.default_rng(0))
    layers = p.bind(theta)
    assert [w.shape for w, _ in layers] == [(5, 16), (16, 8), (8, 3)]
    assert np.shares_memory(layers[0][0], theta)


def test_initialisation_is_column_normalised():
    p = policy()
    layers = p.bind(p.init_theta(np.random.default_rng(1)))
    np.testing.assert_allclose(np.linalg.norm(layers[0][0], axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(layers[-1][0], axis=0), 0.01, rtol=1e-5)
    assert all(np.all(b == 0) for _, b in layers)


def test_forward_matches_explicit_computation_and_clips():
    p = policy()
    theta = p.init_theta(np.random.default_rng(2)) * 50
    obs = np.random.default_rng(3).normal(size=5).astype(np.float32)
    (w1, b1), (w2, b2), (w3, b3) = p.bind(theta)
    expected = np.clip(np.tanh(np.tanh(obs @ w1 + b1) @ w2 + b2) @ w3 + b3, -1, 1)
    np.testing.assert_allclose(p.act(p.bind(theta), obs), expected, rtol=1e-5)
    batch = np.stack([obs, obs])
    assert p.act(p.bind(theta), batch).shape == (2, 3)


def test_discrete_actions_pick_the_argmax_bin():
    p = policy(bins=5, hidden=())
    theta = np.zeros(p.num_params, np.float32)
    w, b = p.bind(theta)[0]
    b[:] = 0
    b.reshape(3, 5)[0, 4] = 1  # dim 0 -> top bin (+1)
    b.reshape(3, 5)[1, 0] = 1  # dim 1 -> bottom bin (-1)
    b.reshape(3, 5)[2, 2] = 1  # dim 2 -> middle (0)
    np.testing.assert_allclose(p.act(p.bind(theta), np.zeros(5, np.float32)), [1, -1, 0])


def test_forward_does_not_depend_on_memory_alignment():
    p = MlpPolicy(17, 6, (64, 64), "tanh", np.full(6, -1, np.float32), np.full(6, 1, np.float32))
    theta = p.init_theta(np.random.default_rng(4))
    obs = np.random.default_rng(5).normal(size=17).astype(np.float32)
    ref = p.act(p.bind(theta), obs)
    for shift in range(1, 8):
        moved = np.empty(theta.size + shift, np.float32)[shift:]
        moved[...] = theta
        assert np.array_equal(p.act(p.bind(moved), obs), ref)
