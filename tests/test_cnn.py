"""The numpy CNN: im2col convolutions against a slow direct convolution, the whole forward pass against a
slow network that normalises explicitly, and the semantics of virtual batch normalisation."""

import numpy as np
import pytest

from es_mpi.policies.cnn import CONVS, EPS, CnnPolicy, conv_out, im2col

OBS = (84, 84, 4)


def direct_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Slow reference: x (N, H, W, C), w (F, kh, kw, C) -> (N, oh, ow, F), one output number at a time,
    summed in float64."""
    n, h, wd, _ = x.shape
    f, k = w.shape[0], w.shape[1]
    oh, ow = conv_out(h, k, stride), conv_out(wd, k, stride)
    out = np.zeros((n, oh, ow, f))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                field = x[b, i * stride : i * stride + k, j * stride : j * stride + k, :].astype(np.float64)
                for c in range(f):
                    out[b, i, j, c] = np.sum(field * w[c])
    return out


def slow_forward(policy: CnnPolicy, theta: np.ndarray, ref: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Action scores computed the plain way: direct convolutions, batch statistics of the reference batch
    (computed by the same network) applied explicitly to the observations, float64 throughout."""
    p = {k: v.astype(np.float64) for k, v in policy.unpack(theta).items()}
    xs = [ref.astype(np.float64) / 255, obs.astype(np.float64) / 255]
    for i, (_, _, stride) in enumerate(CONVS):
        name = f"conv{i + 1}"
        zs = [direct_conv(x, p[name + ".w"], stride) for x in xs]
        mean, var = zs[0].mean(axis=(0, 1, 2)), zs[0].var(axis=(0, 1, 2))
        xs = [np.maximum((z - mean) / np.sqrt(var + EPS) * p[name + ".gamma"] + p[name + ".beta"], 0) for z in zs]
    zs = [x.reshape(x.shape[0], -1) @ p["dense.w"] for x in xs]
    mean, var = zs[0].mean(axis=0), zs[0].var(axis=0)
    hidden = np.maximum((zs[1] - mean) / np.sqrt(var + EPS) * p["dense.gamma"] + p["dense.beta"], 0)
    return hidden @ p["out.w"] + p["out.b"]


def random_frames(n: int, seed: int) -> np.ndarray:
    """Smooth-ish random frames (blocks of 4x4 pixels), so activations are not pure noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 21, 21, OBS[2]), dtype=np.uint8)
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)


def random_theta(policy: CnnPolicy, seed: int) -> np.ndarray:
    """Initial weights with non-trivial gamma and beta, so the test sees their effect."""
    theta = policy.init_theta(np.random.default_rng(seed))
    theta += np.random.default_rng(seed + 1).standard_normal(theta.size).astype(np.float32) * np.float32(0.02)
    return theta


@pytest.mark.parametrize(
    "shape, kernel, stride", [((2, 84, 84, 4), 8, 4), ((3, 20, 20, 16), 4, 2), ((1, 11, 9, 3), 3, 2)]
)
def test_im2col_convolution_matches_direct_convolution(shape, kernel, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((5, kernel, kernel, shape[3])).astype(np.float32)
    fast = im2col(x, kernel, stride) @ w.reshape(5, -1).T
    n, h, wd, _ = shape
    expected = direct_conv(x, w, stride).reshape(-1, 5)
    assert fast.dtype == np.float32
    assert fast.shape == (n * conv_out(h, kernel, stride) * conv_out(wd, kernel, stride), 5)
    np.testing.assert_allclose(fast, expected, rtol=1e-4, atol=1e-4)


def test_network_shape_and_parameter_count_follow_mnih_2016():
    policy = CnnPolicy(OBS, 6)
    # conv 16x8x8x4 (+ gamma, beta), conv 32x4x4x16 (+ gamma, beta), dense 9*9*32 x 256 (+ gamma, beta),
    # output 256 x 6 + 6.
    expected = 16 * 256 + 32 + 32 * 256 + 64 + 2592 * 256 + 512 + 256 * 6 + 6
    assert policy.num_params == expected
    theta = policy.init_theta(np.random.default_rng(0))
    assert theta.dtype == np.float32 and theta.size == expected
    assert np.array_equal(theta, policy.init_theta(np.random.default_rng(0)))


def test_forward_matches_slow_reference_with_explicit_normalisation():
    ref = random_frames(6, 1)
    policy = CnnPolicy(OBS, 6, ref)
    theta = random_theta(policy, 2)
    obs = random_frames(3, 3)
    layers = policy.bind(theta)
    fast = policy.scores(layers, obs)
    slow = slow_forward(policy, theta, ref, obs)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=2e-3, atol=2e-3 * np.abs(slow).max())
    assert [policy.act(layers, o) for o in obs] == list(np.argmax(slow, axis=1))


def test_an_action_depends_on_its_observation_alone():
    policy = CnnPolicy(OBS, 6, random_frames(8, 1))
    layers = policy.bind(random_theta(policy, 2))
    episode = random_frames(5, 4)
    alone = policy.scores(layers, episode[2:3])
    first = policy.act(layers, episode[2])
    for o in episode:  # acting on other observations leaves no trace
        policy.act(layers, o)
    assert policy.act(layers, episode[2]) == first
    np.testing.assert_allclose(policy.scores(layers, episode)[2], alone[0], rtol=1e-5, atol=1e-7)
    # Binding the same theta again gives the very same network.
    again = policy.bind(random_theta(policy, 2))
    assert all(np.array_equal(a, b) for la, lb in zip(layers, again) for a, b in zip(la, lb))


def test_changing_the_reference_batch_changes_the_output():
    theta = random_theta(CnnPolicy(OBS, 6), 2)
    obs = random_frames(4, 5)
    a = CnnPolicy(OBS, 6, random_frames(8, 1))
    b = CnnPolicy(OBS, 6, random_frames(8, 7))
    sa, sb = a.scores(a.bind(theta), obs), b.scores(b.bind(theta), obs)
    assert not np.allclose(sa, sb, rtol=1e-3, atol=1e-6)


def test_each_network_normalises_with_its_own_statistics():
    """With any theta, the first layer's normalised pre-activations over the reference batch have mean
    beta and standard deviation about gamma: the statistics come from the perturbed network itself."""
    ref = random_frames(8, 1)
    policy = CnnPolicy(OBS, 6, ref)
    rows = im2col(ref.astype(np.float32), 8, 4)
    for seed in (2, 3):
        theta = random_theta(policy, seed)
        theta[: 16 * 256] *= np.float32(seed * 10)  # a scale the normalisation must undo
        w, b = policy.bind(theta)[0]
        z = rows @ w + b
        p = policy.unpack(theta)
        np.testing.assert_allclose(z.mean(axis=0), p["conv1.beta"], atol=1e-3)
        np.testing.assert_allclose(z.std(axis=0), np.abs(p["conv1.gamma"]), rtol=2e-2)


def test_bind_without_a_reference_batch_is_refused():
    policy = CnnPolicy(OBS, 6)
    with pytest.raises(ValueError, match="reference batch"):
        policy.bind(policy.init_theta(np.random.default_rng(0)))
