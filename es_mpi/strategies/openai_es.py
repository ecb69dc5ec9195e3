"""OpenAI-ES (Salimans et al. 2017): antithetic pairs around theta, centered ranks, the weighted noise sum
as gradient, weight decay and Adam (or SGD with momentum), observation statistics and episode caps.

Its settings are the job's `es` and `optimizer` sections (which predate strategies), so its own section
holds only `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from es_mpi.core import caps, seeds
from es_mpi.core.noise import sample_offsets
from es_mpi.core.obs_stats import ObsStats, normaliser
from es_mpi.core.optimizers import OptimizerState, adam_step, init_state, sgd_step
from es_mpi.core.shaping import centered_ranks
from es_mpi.runs.schema import key
from es_mpi.strategies.base import (
    OBS_STATS_ARRAYS,
    NoiseSum,
    Plan,
    Results,
    Saved,
    Strategy,
    StrategyConfig,
    episodes,
    evaluation,
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
        "theta": ("1", "policy parameters (float32, flat, layer by layer: W then b)"),
        "optimizer/m": ("1", "Adam first moment, or SGD velocity"),
        "optimizer/v": ("1", "Adam second moment (unused by SGD)"),
        **OBS_STATS_ARRAYS,
    }
    columns = {
        "episode_cap": ("i8", "steps", "step limit of this generation's training episodes"),
        "theta_norm": ("f8", "1", "L2 norm of the parameters after the update"),
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
        pairs = antithetic_pairs(self.job, generation, self.num_params, state.episode_cap)
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
        obs = state.obs
        for delta in results.stats:
            obs = obs.add(delta)
        lengths = results.lengths[plan.train].reshape(-1, 2)
        cap = caps.next_cap(job, state.episode_cap, lengths, self.env_limit)
        metrics = {"episode_cap": state.episode_cap, "theta_norm": float(np.linalg.norm(theta.astype(np.float64))),
                   "grad_norm": float(np.linalg.norm(grad.astype(np.float64)))}
        return EsState(theta, opt, obs, cap), metrics

    def save(self, state: EsState) -> Saved:
        arrays = {"theta": state.theta, "optimizer/m": state.opt.m, "optimizer/v": state.opt.v,
                  "obs_stats/sum": state.obs.total, "obs_stats/sumsq": state.obs.total_sq}
        scalars = {"optimizer/step": state.opt.step, "obs_stats/count": state.obs.count,
                   "episode_cap": state.episode_cap}
        return Saved(arrays, scalars)

    def load(self, saved: Saved) -> EsState:
        a, s = saved.arrays, saved.scalars
        return EsState(a["theta"], OptimizerState(int(s["optimizer/step"]), a["optimizer/m"], a["optimizer/v"]),
                       ObsStats(float(s["obs_stats/count"]), a["obs_stats/sum"], a["obs_stats/sumsq"]),
                       int(s["episode_cap"]))


def antithetic_pairs(job: Job, generation: int, num_params: int, cap: int, base: int = 0) -> Plan:
    """The `es.pairs` pairs of a generation around parameter vector `base`: episode 2j + side plays
    base + sigma eps_j (side 0) or base - sigma eps_j (side 1). A pair shares its env seed and action-noise
    stream (common random numbers); a pair feeds the observation statistics with probability
    policy.obs_stat_fraction."""
    n, seed, g = job.es.pairs, job.run.seed, generation
    offsets = sample_offsets(seeds.stream(seed, g, seeds.OFFSETS), n, job.es.noise_table_size, num_params)
    take = job.policy.obs_norm & (seeds.stream(seed, g, seeds.OBS_STATS).random(n) < job.policy.obs_stat_fraction)
    pair = np.repeat(np.arange(n), 2)
    sigma = np.float32(job.es.sigma)
    env_seeds = np.array([seeds.derive_seed(seed, g, j, seeds.ENV) for j in range(n)], np.int64)
    return episodes(2 * n, base=base, offset=offsets[pair], scale=np.tile([sigma, -sigma], n),
                    env_seed=env_seeds[pair], cap=cap, noise_key=pair, stats=take[pair])


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
