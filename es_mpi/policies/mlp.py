"""The MuJoCo policy: an MLP from normalised observations to actions, parameters in one flat vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0, out=x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
}


@dataclass(frozen=True)
class MlpPolicy:
    """Layer sizes obs_dim -> hidden... -> outputs; `bins` is None for continuous actions.

    With bins, the network scores `bins` values per action dimension and the argmax bin is mapped onto
    [low, high] (the paper's discretised actions for hopping and swimming).
    """

    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...]
    activation: str
    low: np.ndarray
    high: np.ndarray
    bins: int | None = None

    @property
    def sizes(self) -> list[int]:
        out = self.act_dim * (self.bins or 1)
        return [self.obs_dim, *self.hidden, out]

    @property
    def num_params(self) -> int:
        s = self.sizes
        return sum(a * b + b for a, b in zip(s[:-1], s[1:]))

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        """Column-normalised weights (norm 1 per unit for hidden layers, 0.01 for the output), zero biases."""
        parts = []
        s = self.sizes
        for i, (n_in, n_out) in enumerate(zip(s[:-1], s[1:])):
            scale = 0.01 if i == len(s) - 2 else 1.0
            w = rng.standard_normal((n_in, n_out)).astype(np.float32)
            w *= scale / np.sqrt(np.square(w).sum(axis=0, keepdims=True))
            parts += [w.ravel(), np.zeros(n_out, dtype=np.float32)]
        return np.concatenate(parts).astype(np.float32)

    def bind(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """What `act` needs for parameters `theta`, prepared once per episode: here views (W, b) into
        `theta`, so a step of the policy does no copying."""
        out, pos, s = [], 0, self.sizes
        for n_in, n_out in zip(s[:-1], s[1:]):
            w = theta[pos : pos + n_in * n_out].reshape(n_in, n_out)
            pos += n_in * n_out
            out.append((w, theta[pos : pos + n_out]))
            pos += n_out
        return out

    def act(self, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray) -> np.ndarray:
        """Actions for normalised float32 observations of shape (obs_dim,) or (batch, obs_dim).

        Written with in-place ufuncs: it runs once per env step, where numpy's per-call overhead is
        a large part of the cost for small networks.
        """
        x = obs
        hidden = ACTIVATIONS[self.activation]
        for w, b in layers[:-1]:
            x = np.dot(x, w)
            x += b
            x = hidden(x)
        w, b = layers[-1]
        x = np.dot(x, w)
        x += b
        if self.bins is None:
            np.maximum(x, self.low, out=x)
            return np.minimum(x, self.high, out=x)
        scores = x.reshape(*x.shape[:-1], self.act_dim, self.bins)
        step = (self.high - self.low) / np.float32(self.bins - 1)
        return self.low + step * np.argmax(scores, axis=-1).astype(np.float32)
