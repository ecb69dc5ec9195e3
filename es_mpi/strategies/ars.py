"""Augmented Random Search (Mania, Guy and Recht 2018, arXiv 1803.07055, Algorithm 2).

Each generation tries N directions delta_k (noise-table offsets) at M + nu delta_k and M - nu delta_k, keeps
the b directions with the largest max(r+, r-), and steps

    M <- M + alpha / (b sigma_R) * sum_k (r+_k - r-_k) delta_k

sigma_R being the standard deviation of the 2b returns kept. The paper's four versions are settings of the
job: V1 without observation normalisation (policy.obs_norm false), V2 with the mean and standard deviation
of every state seen so far (policy.obs_norm true, policy.obs_stat_fraction 1), and the -t versions with
b < N (strategy.top). During training each step's reward is lowered by strategy.shift (the reference code's
--shift, which removes the survival bonus of the hopping and walking tasks); evaluation returns never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from es_mpi.core.obs_stats import ObsStats, normaliser
from es_mpi.runs.schema import key, non_negative, positive
from es_mpi.strategies.base import (
    OBS_STATS_ARRAYS,
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
    load_obs_stats,
    save_obs_stats,
)


@dataclass(frozen=True)
class Config(StrategyConfig):
    kind: Literal["ars"] = key("ars", help="Augmented Random Search (V1/V2 by policy.obs_norm, -t by top < directions)")
    directions: int = key(8, positive, "N: directions tried per generation (2 x N episodes)")
    top: int | None = key(None, positive, "b: best directions the step uses, by max(r+, r-) (null: all N)")
    step: float = key(0.02, positive, "alpha: step size")
    nu: float = key(0.03, positive, "nu: scale of the directions tried")
    shift: float = key(0.0, non_negative, "subtracted from every training step's reward (never in evaluation)")

    def problem(self, job) -> str | None:
        if self.top is not None and self.top > self.directions:
            return f"strategy.top (b) must be <= strategy.directions (N) {self.directions}, got {self.top}"
        return None


@dataclass(frozen=True)
class ArsState:
    theta: np.ndarray  # float32 policy parameters M, flat
    obs: ObsStats  # every state the statistics were given (V2)


class Ars(Strategy):
    kind = "ars"
    Config = Config
    arrays = {**THETA_ARRAY, **OBS_STATS_ARRAYS}
    columns = {
        "reward_std": ("f8", "return", "sigma_R: std of the 2b shifted returns the step used"),
        **THETA_NORM_COLUMN,
        "step_norm": ("f8", "1", "L2 norm of the update"),
    }

    def init(self) -> ArsState:
        """M_0 = 0 (Algorithm 2, line 1) and empty statistics (identity normalisation)."""
        theta = np.zeros(self.num_params, np.float32)
        return ArsState(theta, ObsStats.empty(self.policy.obs_dim))

    def plan(self, state: ArsState, generation: int) -> Plan:
        """Evaluation episodes first, then both sides of every direction: episode 2k + side plays
        M + nu delta_k (side 0) or M - nu delta_k (side 1), the pair sharing its env seed."""
        cfg = self.job.strategy
        train = antithetic_pairs(self.job, generation, self.num_params, cfg.directions, cfg.nu, self.env_limit)
        return Plan.join(evaluation(self.job, generation, self.env_limit), train)

    def bases(self, state: ArsState) -> list[np.ndarray]:
        return [state.theta]

    def normaliser(self, state: ArsState) -> tuple[np.ndarray | None, np.ndarray | None]:
        return normaliser(state.obs, self.job.policy.obs_norm)

    def update(self, state: ArsState, plan: Plan, results: Results, noise_sum: NoiseSum) -> tuple[ArsState, dict]:
        cfg = self.job.strategy
        train = plan.train
        shifted = results.returns[train] - cfg.shift * results.lengths[train]
        returns = shifted.reshape(-1, 2)
        b = cfg.top or cfg.directions
        # the b largest max(r+, r-); ties go to the lower direction index, so the choice is a function of
        # the returns alone
        best = np.sort(np.argsort(-returns.max(axis=1), kind="stable")[:b])
        kept = returns[best]
        sigma_r = float(kept.std())
        offsets = plan.offset[train][::2][best]
        if sigma_r > 0:
            weights = (kept[:, 0] - kept[:, 1]) * (cfg.step / (b * sigma_r))
            step = noise_sum(offsets, weights)
        else:  # every kept return equal: no direction is better, and the paper's step divides by zero
            step = np.zeros_like(state.theta)
        theta = state.theta + step
        metrics = {"reward_std": sigma_r, "theta_norm": l2_norm(theta), "step_norm": l2_norm(step)}
        return ArsState(theta, state.obs.add_all(results.stats)), metrics

    def save(self, state: ArsState) -> Saved:
        obs = save_obs_stats(state.obs)
        return Saved({"theta": state.theta, **obs.arrays}, obs.scalars)

    def load(self, saved: Saved) -> ArsState:
        return ArsState(saved.arrays["theta"], load_obs_stats(saved))
