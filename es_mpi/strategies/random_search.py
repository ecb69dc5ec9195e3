"""Plain random search with a fixed step: the smallest strategy, kept to show (and test) that a method is
one module. Each generation tries `pairs` antithetic directions eps_j around theta and moves
theta <- theta + step * sum_j sign(R+_j - R-_j) eps_j / pairs; no optimiser state, no statistics, the
env's own episode limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from es_mpi.runs.schema import key, positive
from es_mpi.strategies.base import (
    THETA_ARRAY,
    THETA_NORM_COLUMN,
    NoiseSum,
    Plan,
    Results,
    Saved,
    Strategy,
    StrategyConfig,
    antithetic_pairs,
    evaluation,
    l2_norm,
)


@dataclass(frozen=True)
class Config(StrategyConfig):
    kind: Literal["random_search"] = key("random_search", help="plain random search with a fixed step")
    pairs: int = key(8, positive, "antithetic directions per generation (2 x pairs episodes)")
    sigma: float = key(0.05, positive, "scale of the directions tried")
    step: float = key(0.02, positive, "step along the sum of the better sides")


@dataclass(frozen=True)
class SearchState:
    theta: np.ndarray  # float32 policy parameters


class RandomSearch(Strategy):
    kind = "random_search"
    Config = Config
    arrays = THETA_ARRAY
    columns = THETA_NORM_COLUMN

    def init(self) -> SearchState:
        return SearchState(self.init_theta())

    def plan(self, state: SearchState, generation: int) -> Plan:
        cfg = self.job.strategy
        train = antithetic_pairs(self.job, generation, self.num_params, cfg.pairs, cfg.sigma, self.env_limit,
                                 noisy=False, statistics=False)
        return Plan.join(evaluation(self.job, generation, self.env_limit), train)

    def bases(self, state: SearchState) -> list[np.ndarray]:
        return [state.theta]

    def update(self, state: SearchState, plan: Plan, results: Results,
               noise_sum: NoiseSum) -> tuple[SearchState, dict]:
        cfg = self.job.strategy
        returns = results.returns[plan.train].reshape(-1, 2)
        direction = noise_sum(plan.offset[plan.train][::2], np.sign(returns[:, 0] - returns[:, 1]))
        theta = state.theta + np.float32(cfg.step / cfg.pairs) * direction
        return SearchState(theta), {"theta_norm": l2_norm(theta)}

    def save(self, state: SearchState) -> Saved:
        return Saved({"theta": state.theta}, {})

    def load(self, saved: Saved) -> SearchState:
        return SearchState(saved.arrays["theta"])
