"""The MLP policy: normalised flat observations to actions of any standard gymnasium action space, its
parameters in one flat vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0, out=x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
}


# How the outputs become an action, by the kind of action space.
BOX, DISCRETE, MULTI_DISCRETE, MULTI_BINARY = "box", "discrete", "multi_discrete", "multi_binary"


@dataclass(frozen=True)
class MlpPolicy:
    """Layer sizes obs_dim -> hidden... -> outputs, outputs by action `kind`:
    - box: one per action dimension, clipped to [low, high]; with `bins`, `bins` scores per dimension and
      the argmax bin mapped onto [low, high] (the paper's discretised actions for hopping and swimming);
    - discrete and multi_discrete: nvec[i] scores per dimension i, argmax, plus the space's start `low`;
    - multi_binary: one score per dimension, 1 where positive.
    Action noise (training only) is added to a box action, and to the scores of the other kinds.
    Without `bias` the layers are weights only: with no hidden layers, ARS's linear policy a = M x.
    """

    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...]
    activation: str
    low: np.ndarray
    high: np.ndarray
    bins: int | None = None
    kind: str = BOX
    nvec: tuple[int, ...] = ()
    bias: bool = True

    @property
    def outputs(self) -> int:
        if self.kind == BOX:
            return self.act_dim * (self.bins or 1)
        return sum(self.nvec) if self.nvec else self.act_dim

    @property
    def noise_dim(self) -> int:
        """Width of one step's action noise."""
        return self.act_dim if self.kind == BOX else self.outputs

    @property
    def sizes(self) -> list[int]:
        return [self.obs_dim, *self.hidden, self.outputs]

    @property
    def num_params(self) -> int:
        s = self.sizes
        return sum(a * b + (b if self.bias else 0) for a, b in zip(s[:-1], s[1:]))

    def init_theta(self, rng: np.random.Generator) -> np.ndarray:
        """Column-normalised weights (norm 1 per unit for hidden layers, 0.01 for the output), zero biases."""
        parts = []
        s = self.sizes
        for i, (n_in, n_out) in enumerate(zip(s[:-1], s[1:])):
            scale = 0.01 if i == len(s) - 2 else 1.0
            w = rng.standard_normal((n_in, n_out)).astype(np.float32)
            w *= scale / np.sqrt(np.square(w).sum(axis=0, keepdims=True))
            parts += [w.ravel(), np.zeros(n_out if self.bias else 0, dtype=np.float32)]
        return np.concatenate(parts).astype(np.float32)

    def bind(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """What `act` needs for parameters `theta`, prepared once per episode: here views (W, b) into
        `theta`, so a step of the policy does no copying (b None without biases)."""
        out, pos, s = [], 0, self.sizes
        for n_in, n_out in zip(s[:-1], s[1:]):
            w = theta[pos : pos + n_in * n_out].reshape(n_in, n_out)
            pos += n_in * n_out
            out.append((w, theta[pos : pos + n_out] if self.bias else None))
            pos += n_out if self.bias else 0
        return out

    def act(self, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray,
            noise: np.ndarray | None = None) -> np.ndarray:
        """Actions for normalised float32 observations of shape (obs_dim,) or, for box actions,
        (batch, obs_dim); `noise` (noise_dim floats) is this step's action noise, if any.

        Written with in-place ufuncs: it runs once per env step, where numpy's per-call overhead is
        a large part of the cost for small networks.
        """
        x = obs
        hidden = ACTIVATIONS[self.activation]
        for w, b in layers[:-1]:
            x = np.dot(x, w)
            if b is not None:
                x += b
            x = hidden(x)
        w, b = layers[-1]
        x = np.dot(x, w)
        if b is not None:
            x += b
        if self.kind != BOX:
            return self._categorical(x if noise is None else x + noise)
        if self.bins is None:
            np.maximum(x, self.low, out=x)
            action = np.minimum(x, self.high, out=x)
        else:
            scores = x.reshape(*x.shape[:-1], self.act_dim, self.bins)
            step = (self.high - self.low) / np.float32(self.bins - 1)
            action = self.low + step * np.argmax(scores, axis=-1).astype(np.float32)
        if noise is not None:
            action += noise
        return action

    def _categorical(self, scores: np.ndarray) -> np.ndarray | int:
        """The action of the discrete kinds from one observation's scores."""
        if self.kind == MULTI_BINARY:
            return (scores > 0).astype(np.int8)
        picks = [int(np.argmax(part)) for part in np.split(scores, np.cumsum(self.nvec)[:-1])]
        if self.kind == DISCRETE:
            return int(self.low[0]) + picks[0]
        return self.low.astype(np.int64) + np.array(picks, np.int64)
