"""OpenAI-ES (Salimans et al. 2017): antithetic pairs around theta, centered ranks, the weighted noise sum
as gradient, weight decay and Adam (or SGD with momentum), observation statistics and episode caps.

Its settings are the job's `es` and `optimizer` sections (which predate strategies), so its own section
holds only `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from es_mpi.core import caps
from es_mpi.core.obs_stats import ObsStats, normaliser
from es_mpi.core.optimizers import OptimizerState, adam_step, init_state, sgd_step
from es_mpi.core.shaping import centered_ranks
from es_mpi.runs.schema import key
from es_mpi.strategies.base import (
    EPISODE_CAP_COLUMN,
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

if TYPE_CHECKING:
    from es_mpi.runs.job import Job


@dataclass(frozen=True)
class Config(StrategyConfig):
    kind: Literal["openai_es"] = key("openai_es", help="OpenAI-ES; settings in the es and optimizer sections")


@dataclass(frozen=True)
class EsState:
    theta: np.ndarray  # float32 policy parameters
    opt: OptimizerState
    obs: ObsStats
    episode_cap: int  # step limit of the next generation's training episodes


class OpenAiEs(Strategy):
    kind = "openai_es"
    Config = Config
    arrays = {
        **THETA_ARRAY,
        "optimizer/m": ("1", "Adam first moment, or SGD velocity"),
        "optimizer/v": ("1", "Adam second moment (unused by SGD)"),
        **OBS_STATS_ARRAYS,
    }
    columns = {
        **EPISODE_CAP_COLUMN,
        **THETA_NORM_COLUMN,
        "grad_norm": ("f8", "1", "L2 norm of the ES gradient estimate"),
    }

    def init(self) -> EsState:
        theta = self.init_theta()
        obs = ObsStats.empty(self.policy.obs_dim)
        return EsState(theta, init_state(theta.size), obs, caps.first_cap(self.job, self.env_limit))

    def plan(self, state: EsState, generation: int) -> Plan:
        """Evaluation episodes first (long, so started first), then both members of every pair: episode
        2j + side plays theta + sigma eps_j (side 0) or theta - sigma eps_j (side 1). A pair shares its env
        seed and action-noise stream (common random numbers)."""
        es = self.job.es
        pairs = antithetic_pairs(self.job, generation, self.num_params, es.pairs, es.sigma, state.episode_cap)
        return Plan.join(evaluation(self.job, generation, self.env_limit), pairs)

    def bases(self, state: EsState) -> list[np.ndarray]:
        return [state.theta]

    def normaliser(self, state: EsState) -> tuple[np.ndarray | None, np.ndarray | None]:
        return normaliser(state.obs, self.job.policy.obs_norm)

    def update(self, state: EsState, plan: Plan, results: Results, noise_sum: NoiseSum) -> tuple[EsState, dict]:
        """Minimise -F + l2/2 |theta|^2: the ES ascent direction sum_j (u+_j - u-_j) eps_j / (2n) is negated
        and weight decay added. As in the reference code the 1/sigma factor is left out (Adam absorbs it)."""
        job = self.job
        shaped = centered_ranks(results.returns[plan.train].reshape(-1, 2))
        theta, opt, grad = es_step(job, state.theta, state.opt, plan.offset[plan.train][::2], shaped, noise_sum)
        obs = state.obs.add_all(results.stats)
        lengths = results.lengths[plan.train].reshape(-1, 2)
        cap = caps.next_cap(job, state.episode_cap, lengths, self.env_limit)
        metrics = {"episode_cap": state.episode_cap, "theta_norm": l2_norm(theta), "grad_norm": l2_norm(grad)}
        return EsState(theta, opt, obs, cap), metrics

    def save(self, state: EsState) -> Saved:
        obs = save_obs_stats(state.obs)
        arrays = {"theta": state.theta, "optimizer/m": state.opt.m, "optimizer/v": state.opt.v, **obs.arrays}
        scalars = {"optimizer/step": state.opt.step, "episode_cap": state.episode_cap, **obs.scalars}
        return Saved(arrays, scalars)

    def load(self, saved: Saved) -> EsState:
        a, s = saved.arrays, saved.scalars
        return EsState(a["theta"], OptimizerState(int(s["optimizer/step"]), a["optimizer/m"], a["optimizer/v"]),
                       load_obs_stats(saved), int(s["episode_cap"]))


def es_step(job: Job, theta: np.ndarray, opt: OptimizerState, offsets: np.ndarray, shaped: np.ndarray,
            noise_sum: NoiseSum) -> tuple[np.ndarray, OptimizerState, np.ndarray]:
    """One OpenAI-ES step from the pairs' shaped fitness (pairs x 2): minimise -F + l2/2 |theta|^2 with the
    job's optimiser. Returns the new theta, optimiser state and the ascent direction."""
    grad = noise_sum(offsets, shaped[:, 0] - shaped[:, 1])
    grad /= np.float32(shaped.size)
    loss_grad = -grad + np.float32(job.es.l2) * theta
    o = job.optimizer
    if o.kind == "adam":
        theta, opt = adam_step(theta, loss_grad, opt, o.lr, o.beta1, o.beta2, o.epsilon)
    else:
        theta, opt = sgd_step(theta, loss_grad, opt, o.lr, o.momentum)
    return theta, opt, grad
