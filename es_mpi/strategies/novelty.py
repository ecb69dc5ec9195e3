"""NS-ES, NSR-ES and NSRA-ES (Conti et al. 2018, arXiv 1712.06560): OpenAI-ES steps that follow novelty,
or novelty and reward, taken by a meta-population of agents.

Each of `agents` (M) agents has its own parameters and Adam state; observation statistics are shared. An
archive holds behaviour vectors (BCs, es_mpi.envs.behaviour); the novelty of a BC is its mean distance to its
k nearest archive entries (es_mpi.core.archive). A generation:

  1. picks one agent with probability proportional to the novelty of its latest BC (the run's seeds draw
     the choice, so every rank picks the same one);
  2. plays antithetic pairs around it, as OpenAI-ES does, each episode returning its BC;
  3. shapes each episode's weight as w x centered rank of return + (1 - w) x centered rank of novelty
     against the archive (NS-ES: w = 0; NSR-ES: w = 1/2, the mean of the two ranks; NSRA-ES: w adapts,
     raised by `weight_step` when the best return improves, lowered after `patience` generations without
     improvement), and takes an Adam step of that agent with the weighted noise sum;
  4. plays the updated agent without noise for `behaviour_episodes` episodes and adds their mean BC to the
     archive, as the paper and uber-research/deep-neuroevolution (es_distributed/nses.py) do.

Step 4 runs alongside the next generation's pairs, so that one plan serves each generation: generation g
measures the agent updated in generation g - 1, adds its BC to the archive before the novelty of g's pairs
is computed, and judges NSRA's improvement on its return. The choice in step 1 therefore sees that agent's
previous BC. Generation 0 measures every initial agent (the archive starts with their BCs) and updates none.
Vector 0 (what evaluation and users' code run) is the agent whose latest measured return is the highest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from es_mpi.core import caps, seeds
from es_mpi.core.archive import novelty
from es_mpi.core.obs_stats import ObsStats, normaliser
from es_mpi.core.optimizers import OptimizerState
from es_mpi.core.shaping import centered_ranks
from es_mpi.envs.behaviour import problem, resolve
from es_mpi.runs.schema import is_fraction, key, positive
from es_mpi.strategies.base import (
    OBS_STATS_ARRAYS,
    NoiseSum,
    Plan,
    Results,
    Saved,
    Strategy,
    StrategyConfig,
    all_rows,
    antithetic_pairs,
    episodes,
    evaluation,
    load_obs_stats,
    save_obs_stats,
)
from es_mpi.strategies.openai_es import es_step

AGENT_CHOICE = 2  # key of the stream that picks a generation's agent, beside the offsets' stream


@dataclass(frozen=True)
class Config(StrategyConfig):
    kind: Literal["ns_es"] = key("ns_es", help="NS-ES: ES steps that follow novelty alone, by a meta-population")
    agents: int = key(5, positive, "M: agents of the meta-population, each with its own parameters and Adam state")
    k: int = key(10, positive, "nearest archive neighbours whose mean distance is a BC's novelty")
    behaviour: str = key("xy", problem, "behaviour characterisation: xy (final x-y of the agent's root, "
                         "MuJoCo and mazes), ram (final Atari RAM) or module:function (with a `width` attribute)")
    behaviour_episodes: int = key(5, positive, "noiseless episodes of an updated agent whose mean BC joins "
                                  "the archive")

    def problem(self, job) -> str | None:
        if job.policy.kind == "cnn":
            return f"policy.kind cnn is not supported with strategy.kind {self.kind}: use mlp or linear"
        return None


@dataclass(frozen=True)
class NsrConfig(Config):
    kind: Literal["nsr_es"] = key("nsr_es", help="NSR-ES: ES steps that follow the mean of the reward and "
                                  "novelty ranks")


@dataclass(frozen=True)
class NsraConfig(Config):
    kind: Literal["nsra_es"] = key("nsra_es", help="NSRA-ES: ES steps that follow reward and novelty ranks "
                                   "weighted by an adapting w")
    weight_start: float = key(1.0, is_fraction, "NSRA: initial weight w of the reward rank (1 - w: novelty)")
    weight_step: float = key(0.05, is_fraction, "NSRA: delta, w's change on improvement (+) or stagnation (-)")
    patience: int = key(10, positive, "NSRA: generations without a better return before w is lowered")


@dataclass(frozen=True)
class NoveltyState:
    thetas: np.ndarray  # (M, dim) float32
    moments: np.ndarray  # (2, M, dim) float32: Adam's m and v (SGD: velocity, unused)
    steps: np.ndarray  # (M,) int64 optimiser steps per agent
    obs: ObsStats  # shared by the agents
    agent_bc: np.ndarray  # (M, width) float64: each agent's latest measured BC
    agent_return: np.ndarray  # (M,) float64: mean return of those episodes (NaN before the first)
    archive: np.ndarray  # (size, width) float64
    archive_generation: np.ndarray  # (size,) int64: generation whose measurement added the entry
    archive_agent: np.ndarray  # (size,) int64: agent it measured
    pending: int  # agent updated last generation, measured in this one (-1: none)
    weight: float  # NSRA's w
    best_return: float  # NSRA: best measured return so far
    stagnation: int  # NSRA: generations since best_return improved
    episode_cap: int
    generation: int  # generations completed (numbers the archive entries)

    def best_agent(self) -> int:
        returns = self.agent_return
        return 0 if np.isnan(returns).all() else int(np.nanargmax(returns))


class NsEs(Strategy):
    kind = "ns_es"
    Config = Config
    arrays = {
        "theta": ("1", "parameters of the agent with the best latest measured return (float32, flat)"),
        "agents/theta": ("1", "each agent's parameters (agents x parameters, float32)"),
        "agents/moments": ("1", "each agent's Adam first and second moments (2 x agents x parameters)"),
        "agents/steps": ("1", "optimiser steps taken by each agent"),
        "agents/behaviour": ("BC units", "each agent's latest measured behaviour vector"),
        "agents/return": ("return", "mean return of the episodes that measured it (NaN: not yet)"),
        "archive/behaviour": ("BC units", "novelty archive: behaviour vectors in the order added"),
        "archive/generation": ("1", "generation whose measurement added each archive entry"),
        "archive/agent": ("1", "agent whose measurement each archive entry is"),
        **OBS_STATS_ARRAYS,
    }
    columns = {
        "agent": ("i8", "1", "agent updated this generation (-1: generation 0, which measures every agent)"),
        "archive_size": ("i8", "1", "novelty archive entries after this generation"),
        "reward_weight": ("f8", "1", "w: weight of the reward rank in the update (1 - w: novelty)"),
        "novelty_mean": ("f8", "BC units", "mean novelty of this generation's perturbed episodes"),
        "measured_return": ("f8", "return", "mean return of the noiseless episodes measuring an agent's BC"),
        "novelty_s": ("f8", "s", "time of the update spent on the archive and nearest neighbours"),
        "episode_cap": ("i8", "steps", "step limit of this generation's perturbed episodes"),
    }

    def __init__(self, job, policy, env_limit, noise=None, split=all_rows) -> None:
        super().__init__(job, policy, env_limit, noise, split)
        self.behaviour_width = resolve(job.strategy.behaviour)[1]

    def init(self) -> NoveltyState:
        cfg, w = self.job.strategy, self.behaviour_width
        m = cfg.agents
        thetas = np.stack([self.policy.init_theta(seeds.stream(self.job.run.seed, seeds.INIT, a)) for a in range(m)])
        weight = cfg.weight_start if isinstance(cfg, NsraConfig) else 0.0
        return NoveltyState(thetas, np.zeros((2, *thetas.shape), np.float32), np.zeros(m, np.int64),
                            ObsStats.empty(self.policy.obs_dim), np.zeros((m, w)), np.full(m, np.nan),
                            np.zeros((0, w)), np.zeros(0, np.int64), np.zeros(0, np.int64), -1, weight, -np.inf, 0,
                            caps.first_cap(self.job, self.env_limit), 0)

    def bases(self, state: NoveltyState) -> list[np.ndarray]:
        """Vector 0 the best agent, then agent a at index 1 + a."""
        return [state.thetas[state.best_agent()], *state.thetas]

    def normaliser(self, state: NoveltyState) -> tuple[np.ndarray | None, np.ndarray | None]:
        return normaliser(state.obs, self.job.policy.obs_norm)

    def choose(self, state: NoveltyState, generation: int) -> int:
        """The agent to update: probability proportional to its latest BC's novelty against the archive."""
        scores = novelty(state.agent_bc, state.archive, self.job.strategy.k)
        total = scores.sum()
        p = scores / total if np.isfinite(total) and total > 0 else np.full(len(scores), 1 / len(scores))
        u = seeds.stream(self.job.run.seed, generation, seeds.OFFSETS, AGENT_CHOICE).random()
        return int(min(np.searchsorted(np.cumsum(p), u, side="right"), len(p) - 1))

    def plan(self, state: NoveltyState, generation: int) -> Plan:
        """Evaluation episodes, then the measuring episodes (generation 0: of every agent; later: of the agent
        updated last generation), then the chosen agent's pairs (none in generation 0): episode 2j + side
        plays agent + sigma eps_j (side 0) or agent - sigma eps_j (side 1), as OpenAI-ES's pairs."""
        job, g, cfg = self.job, generation, self.job.strategy
        n, seed, e = job.es.pairs, job.run.seed, cfg.behaviour_episodes
        everyone = np.arange(cfg.agents)
        measured = everyone if state.generation == 0 else everyone[everyone == state.pending]
        count = len(measured) * e
        measure = episodes(count, base=1 + np.repeat(measured, e), cap=self.env_limit,
                           env_seed=[seeds.derive_seed(seed, g, 2 * n + i, seeds.ENV) for i in range(count)])
        plans = [evaluation(job, g, self.env_limit), measure]
        if state.generation > 0:
            plans.append(antithetic_pairs(job, g, self.num_params, job.es.pairs, job.es.sigma, state.episode_cap,
                                          1 + self.choose(state, g)))
        return Plan.join(*plans)

    def update(self, state: NoveltyState, plan: Plan, results: Results,
               noise_sum: NoiseSum) -> tuple[NoveltyState, dict]:
        job, cfg = self.job, self.job.strategy
        start = time.perf_counter()
        measuring, perturbed = plan.train & (plan.offset < 0), plan.train & (plan.offset >= 0)
        measured = plan.base[measuring][:: cfg.behaviour_episodes] - 1
        width = self.behaviour_width
        bcs = results.behaviour[measuring].reshape(len(measured), cfg.behaviour_episodes, width).mean(axis=1)
        returns = results.returns[measuring].reshape(len(measured), cfg.behaviour_episodes).mean(axis=1)
        agent_bc, agent_return = state.agent_bc.copy(), state.agent_return.copy()
        agent_bc[measured], agent_return[measured] = bcs, returns
        archive = np.concatenate([state.archive, bcs])
        archive_generation = np.r_[state.archive_generation, np.full(len(measured), state.generation)]
        archive_agent = np.r_[state.archive_agent, measured]
        weight, best, stagnation = self.adapt(state, float(returns.max())) if len(measured) else (
            state.weight, state.best_return, state.stagnation)
        novelty_s = time.perf_counter() - start
        new = NoveltyState(state.thetas, state.moments, state.steps, state.obs, agent_bc, agent_return, archive,
                           archive_generation, archive_agent, -1, weight, best, stagnation, state.episode_cap,
                           state.generation + 1)
        metrics = {"agent": -1, "archive_size": len(archive), "reward_weight": float("nan"),
                   "novelty_mean": float("nan"), "measured_return": float(returns.mean()) if len(measured) else np.nan,
                   "novelty_s": novelty_s, "episode_cap": state.episode_cap}
        if not perturbed.any():  # generation 0: the archive starts with every agent's BC
            return new, metrics
        agent = int(plan.base[perturbed][0]) - 1
        start = time.perf_counter()
        queries = results.behaviour[perturbed]
        nov = self.split(lambda lo, hi: novelty(queries[lo:hi], archive, cfg.k), len(queries), 1)[:, 0]
        novelty_s += time.perf_counter() - start
        w = self.reward_weight(weight)
        shaped = (np.float32(w) * centered_ranks(results.returns[perturbed].reshape(-1, 2))
                  + np.float32(1 - w) * centered_ranks(nov.reshape(-1, 2)))
        thetas, moments, steps = self.step(state, agent, plan.offset[perturbed][::2], shaped, noise_sum)
        obs = state.obs.add_all(results.stats)
        cap = caps.next_cap(job, state.episode_cap, results.lengths[perturbed].reshape(-1, 2), self.env_limit)
        new = NoveltyState(thetas, moments, steps, obs, agent_bc, agent_return, archive, archive_generation,
                           archive_agent, agent, weight, best, stagnation, cap, state.generation + 1)
        metrics.update(agent=agent, reward_weight=w, novelty_mean=float(nov.mean()), novelty_s=novelty_s)
        return new, metrics

    def reward_weight(self, weight: float) -> float:
        """w of the update given NSRA's adapting weight: NS-ES follows novelty alone."""
        return 0.0

    def adapt(self, state: NoveltyState, measured: float) -> tuple[float, float, int]:
        """NSRA's (weight, best return, generations without improvement) after a measured return; the other
        two carry them unchanged but for the best return."""
        if state.generation == 0 or measured > state.best_return:
            return state.weight, max(measured, state.best_return), 0
        return state.weight, state.best_return, state.stagnation + 1

    def step(self, state: NoveltyState, agent: int, offsets: np.ndarray, shaped: np.ndarray,
             noise_sum: NoiseSum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """OpenAI-ES's step of one agent: the noise sum of the shaped pair differences, weight decay, Adam."""
        opt = OptimizerState(int(state.steps[agent]), state.moments[0, agent], state.moments[1, agent])
        theta, opt, _ = es_step(self.job, state.thetas[agent], opt, offsets, shaped, noise_sum)
        thetas, moments, steps = state.thetas.copy(), state.moments.copy(), state.steps.copy()
        thetas[agent], moments[0, agent], moments[1, agent], steps[agent] = theta, opt.m, opt.v, opt.step
        return thetas, moments, steps

    def save(self, state: NoveltyState) -> Saved:
        obs = save_obs_stats(state.obs)
        arrays = {"theta": state.thetas[state.best_agent()], "agents/theta": state.thetas,
                  "agents/moments": state.moments, "agents/steps": state.steps, "agents/behaviour": state.agent_bc,
                  "agents/return": state.agent_return, "archive/behaviour": state.archive,
                  "archive/generation": state.archive_generation, "archive/agent": state.archive_agent,
                  **obs.arrays}
        scalars = {**obs.scalars, "episode_cap": state.episode_cap,
                   "agents/pending": state.pending, "agents/generation": state.generation,
                   "agents/weight": state.weight, "agents/best_return": state.best_return,
                   "agents/stagnation": state.stagnation}
        return Saved(arrays, scalars)

    def load(self, saved: Saved) -> NoveltyState:
        a, s = saved.arrays, saved.scalars
        if a["agents/theta"].shape[0] != self.job.strategy.agents:
            raise KeyError(f"agents/theta (it holds {a['agents/theta'].shape[0]} agents, the job "
                           f"{self.job.strategy.agents})")
        return NoveltyState(a["agents/theta"], a["agents/moments"], a["agents/steps"], load_obs_stats(saved),
                            a["agents/behaviour"], a["agents/return"], a["archive/behaviour"],
                            a["archive/generation"], a["archive/agent"], int(s["agents/pending"]),
                            float(s["agents/weight"]), float(s["agents/best_return"]), int(s["agents/stagnation"]),
                            int(s["episode_cap"]), int(s["agents/generation"]))


class NsrEs(NsEs):
    kind = "nsr_es"
    Config = NsrConfig

    def reward_weight(self, weight: float) -> float:
        """The mean of the reward and novelty ranks."""
        return 0.5


class NsraEs(NsEs):
    kind = "nsra_es"
    Config = NsraConfig

    def reward_weight(self, weight: float) -> float:
        return weight

    def adapt(self, state: NoveltyState, measured: float) -> tuple[float, float, int]:
        """w rises by weight_step when the measured return beats the best so far, and falls by it after
        `patience` generations without that (the count then starts again), within [0, 1]."""
        cfg = self.job.strategy
        if state.generation == 0:
            return state.weight, measured, 0
        if measured > state.best_return:
            return min(1.0, state.weight + cfg.weight_step), measured, 0
        if state.stagnation + 1 >= cfg.patience:
            return max(0.0, state.weight - cfg.weight_step), state.best_return, 0
        return state.weight, state.best_return, state.stagnation + 1
