"""The Atari policy: Mnih et al. 2016's small CNN with virtual batch normalisation, in numpy float32.

    obs (84, 84, C) uint8, scaled to [0, 1]
    conv 16 filters 8x8 stride 4 -> VBN -> relu        (20, 20, 16)
    conv 32 filters 4x4 stride 2 -> VBN -> relu        (9, 9, 32)
    dense 256                    -> VBN -> relu
    dense n_actions (linear)     -> argmax             greedy, deterministic

Convolutions are im2col: a strided view of the input holds every receptive field, one copy lays them
out as rows, one matrix product applies all filters. Activations are channels-last (H, W, C), so one
kernel row of a receptive field (kw x C numbers) is contiguous in memory and the view can merge it into
one axis, which makes the copy fast; filters are stored as (F, kh, kw, C) to match.

Virtual batch normalisation (Salimans et al. 2016, used by the ES paper for Atari): `bind(theta)` runs
the run's fixed reference batch through the network given by theta and records, for every normalised
layer, the mean and variance of its pre-activations over the reference batch (over positions too for
conv layers). Acting normalises with those statistics, so an action depends only on (theta, reference
batch, observation), never on the other observations of the episode. The statistics are folded into the
weights (w * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps)), so acting costs a plain
forward pass.

theta layout: conv1 W (16, 8, 8, C), gamma (16), beta (16); conv2 W (32, 4, 4, 16), gamma, beta;
dense W (2592, 256) rows in (h, w, c) order, gamma (256), beta (256); out W (256, A), b (A). The
layers before a normalisation have no bias: the normalisation would subtract it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

EPS = np.float32(1e-3)  # variance guard, as tf.contrib batch_norm in the public ES Atari code
CONVS = ((16, 8, 4), (32, 4, 2))  # filters, kernel, stride (Mnih et al. 2016)
HIDDEN = 256
CHUNK = 16  # reference observations per im2col block in bind


def conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def im2col(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Rows of receptive fields, (N * oh * ow, kernel * kernel * C) in (kh, kw, C) order, from a
    C-contiguous channels-last batch x (N, H, W, C). The windows are a strided view (each kernel row's
    kw x C numbers are contiguous, so they form one axis); the reshape makes the one copy."""
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    oh, ow = conv_out(h, kernel, stride), conv_out(w, kernel, stride)
    sn, sh, sw, sc = x.strides
    win = as_strided(x, (n, oh, ow, kernel, kernel * c), (sn, sh * stride, sw * stride, sh, sc), writeable=False)
    return win.reshape(n * oh * ow, kernel * kernel * c)


@dataclass(frozen=True, eq=False)
class CnnPolicy:
    obs_shape: tuple[int, int, int]  # (height, width, frames)
    act_dim: int  # number of discrete actions
    ref_batch: np.ndarray | None = None  # uint8 (B, *obs_shape), fixed for the run
    obs_dim: int = 1  # no observation statistics for images (obs_norm is false for cnn jobs)
    _layout: list = field(init=False, repr=False)  # (name, shape) per piece of theta
    _grids: list = field(init=False, repr=False)  # (height, width) after each conv layer

    def __post_init__(self) -> None:
        h, w, c = self.obs_shape
        layout, grids = [], []
        for i, (filters, kernel, stride) in enumerate(CONVS):
            layout += [(f"conv{i + 1}.w", (filters, kernel, kernel, c)), (f"conv{i + 1}.gamma", (filters,)),
                       (f"conv{i + 1}.beta", (filters,))]
            c, h, w = filters, conv_out(h, kernel, stride), conv_out(w, kernel, stride)
            grids.append((h, w))
        layout += [("dense.w", (h * w * c, HIDDEN)), ("dense.gamma", (HIDDEN,)), ("dense.beta", (HIDDEN,)),
                   ("out.w", (HIDDEN, self.act_dim)), ("out.b", (self.act_dim,))]
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "_grids", grids)

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self._layout)

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Views into theta by name (see the layout in the module docstring)."""
        out, pos = {}, 0
        for name, shape in self._layout:
            n = int(np.prod(shape))
            out[name] = theta[pos : pos + n].reshape(shape)
            pos += n
        return out

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        """Every filter's and unit's weights with norm 1 (the reference code's normalised columns); gamma 1,
        beta and output bias 0. Unlike the MLP's 0.01, the output layer starts at norm 1 too: the argmax
        does not care about its scale, and a tiny output layer would leave the first generations'
        actions to the perturbation alone (the public ES Atari code's Xavier init gives norms ~1 too)."""
        parts = []
        for name, shape in self._layout:
            if not name.endswith(".w"):
                parts.append(np.full(shape, 1.0 if name.endswith("gamma") else 0.0, np.float32))
                continue
            w = rng.standard_normal(shape).astype(np.float32)
            if len(shape) == 4:  # one filter per leading index
                w /= np.sqrt(np.square(w).sum(axis=(1, 2, 3), keepdims=True))
            else:  # one unit per column
                w /= np.sqrt(np.square(w).sum(axis=0, keepdims=True))
            parts.append(w.ravel())
        return np.concatenate(parts).astype(np.float32)

    def bind(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer (W as a (fan_in, fan_out) matrix, bias) with theta's VBN statistics on the reference
        batch folded in; the input scaling 1/255 is folded into the first layer."""
        if self.ref_batch is None or len(self.ref_batch) == 0:
            raise ValueError("CnnPolicy.bind needs the run's reference batch: make_policy(..., ref_batch)")
        p = self.unpack(theta)
        x = self.ref_batch.astype(np.float32)
        n = x.shape[0]
        layers = []
        for i, (_, kernel, stride) in enumerate(CONVS):
            name = f"conv{i + 1}"
            w = p[name + ".w"].reshape(p[name + ".w"].shape[0], -1).T  # (C*k*k, F)
            if i == 0:
                w = w * np.float32(1 / 255)
            # In chunks of observations: the receptive-field rows of a whole batch would not fit in cache.
            z = np.concatenate([im2col(x[k : k + CHUNK], kernel, stride) @ w for k in range(0, n, CHUNK)])
            s, shift = vbn_scale_shift(z, p[name + ".gamma"], p[name + ".beta"])
            layers.append(((w * s).astype(np.float32), shift))
            x = relu_affine(z, s, shift).reshape(n, *self._grids[i], -1)
        z = x.reshape(n, -1) @ p["dense.w"]
        s, shift = vbn_scale_shift(z, p["dense.gamma"], p["dense.beta"])
        layers.append(((p["dense.w"] * s).astype(np.float32), shift))
        layers.append((p["out.w"], p["out.b"]))
        return layers

    @property
    def noise_dim(self) -> int:
        """Width of one step's action noise, added to the scores (cnn jobs use none: greedy actions)."""
        return self.act_dim

    def act(self, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray, noise: np.ndarray | None = None) -> int:
        """Greedy action index for one uint8 observation (H, W, C)."""
        scores = self.scores(layers, obs[None])[0]
        return int(np.argmax(scores if noise is None else scores + noise))

    def scores(self, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray) -> np.ndarray:
        """Action scores (N, act_dim) for a batch of observations (N, H, W, C)."""
        x = obs.astype(np.float32)
        n = x.shape[0]
        for i, (_, kernel, stride) in enumerate(CONVS):
            w, b = layers[i]
            h = im2col(x, kernel, stride) @ w
            h += b
            x = np.maximum(h, 0, out=h).reshape(n, *self._grids[i], -1)
        w, b = layers[2]
        h = x.reshape(n, -1) @ w
        h += b
        np.maximum(h, 0, out=h)
        w, b = layers[3]
        out = h @ w
        out += b
        return out


def vbn_scale_shift(z: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, beta - mean * s) with s = gamma / sqrt(var + eps), from the statistics of the reference
    batch's pre-activations z (rows: samples, and positions for conv layers; columns: channels)."""
    mean = z.mean(axis=0, dtype=np.float32)
    var = np.square(z - mean).mean(axis=0, dtype=np.float32)
    s = (gamma / np.sqrt(var + EPS)).astype(np.float32)
    return s, (beta - mean * s).astype(np.float32)


def relu_affine(z: np.ndarray, s: np.ndarray, shift: np.ndarray) -> np.ndarray:
    out = z * s
    out += shift
    return np.maximum(out, 0, out=out)


def make_cnn_policy(env, ref_batch: np.ndarray | None = None) -> CnnPolicy:
    return CnnPolicy(tuple(env.observation_space.shape), int(env.action_space.n), ref_batch)
