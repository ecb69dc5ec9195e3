"""Optimisers as pure functions over an explicit state, so a checkpoint is just the state's arrays.

Both minimise: they take the gradient of the loss (the trainer passes -es_gradient + l2 * theta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OptimizerState:
    """`step` counts updates; `m` and `v` are Adam's moments (SGD uses `m` as its velocity, `v` unused)."""

    step: int
    m: np.ndarray
    v: np.ndarray


def init_state(dim: int) -> OptimizerState:
    return OptimizerState(0, np.zeros(dim, dtype=np.float32), np.zeros(dim, dtype=np.float32))


def adam_step(
    theta: np.ndarray,
    grad: np.ndarray,
    state: OptimizerState,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> tuple[np.ndarray, OptimizerState]:
    """One Adam update (Kingma and Ba 2015, bias correction folded into the step size)."""
    t = state.step + 1
    m = np.float32(beta1) * state.m + np.float32(1.0 - beta1) * grad
    v = np.float32(beta2) * state.v + np.float32(1.0 - beta2) * (grad * grad)
    a = np.float32(lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t))
    new_theta = theta - a * m / (np.sqrt(v) + np.float32(epsilon))
    return new_theta.astype(np.float32), OptimizerState(t, m, v)


def sgd_step(
    theta: np.ndarray, grad: np.ndarray, state: OptimizerState, lr: float, momentum: float = 0.9
) -> tuple[np.ndarray, OptimizerState]:
    """SGD with momentum as in the reference code: velocity is an exponential average of gradients."""
    m = np.float32(momentum) * state.m + np.float32(1.0 - momentum) * grad
    new_theta = theta - np.float32(lr) * m
    return new_theta.astype(np.float32), OptimizerState(state.step + 1, m, state.v)
