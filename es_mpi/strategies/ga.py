"""The deep genetic algorithm of Such et al. 2017 (arXiv 1712.06567), seed-encoded.

An individual is its seed list: the index of its initialisation, then one noise-table offset per mutation,
theta = init(k) + sigma eps(o_1) + sigma eps(o_2) + ... added in that order. Generation 0 plays `population`
initialisations; every later generation plays population - 1 offspring, each a uniformly chosen parent
plus sigma eps(a fresh offset). Truncation selection keeps the best `parents`; the elite (vector 0, what
evaluation plays) is kept unchanged and is always a parent.

Elitism as in the paper (Sec. 3) and uber-research/deep-neuroevolution gpu_implementation/ga.py: the
`elite_candidates` best offspring, with the current elite in place of the last, are re-evaluated on
`elite_episodes` extra episodes each (counted as training), and the best mean becomes the elite. Here that
re-evaluation runs alongside the next generation's offspring, so one plan serves each generation and the
elite is chosen one generation after its candidates were found (a candidate is a parent meanwhile).

Only seed lists and returns define a generation: every rank rebuilds the vectors it needs from the shared
noise table, with a cache of recently built individuals, so that a child of a cached parent costs one
vector addition whatever its generation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from es_mpi.core import caps, seeds
from es_mpi.core.noise import sample_offsets
from es_mpi.runs.schema import key, positive
from es_mpi.strategies.base import (
    EPISODE_CAP_COLUMN,
    NoiseSum,
    Plan,
    Results,
    RowSplit,
    Saved,
    Strategy,
    StrategyConfig,
    all_rows,
    episodes,
    evaluation,
)

if TYPE_CHECKING:
    from es_mpi.policies.make import Policy
    from es_mpi.runs.job import Job

SeedList = tuple[int, ...]
PARENT_CHOICE = 1  # key of the stream that picks each offspring's parent, beside the offsets' stream


def _at_least_two(v: int) -> str | None:
    return None if v >= 2 else "must be >= 2"


@dataclass(frozen=True)
class Config(StrategyConfig):
    kind: Literal["ga"] = key("ga", help="the deep GA: truncation selection, Gaussian mutation, elitism")
    population: int = key(1000, _at_least_two, "N: individuals per generation (the elite and N - 1 offspring)")
    parents: int = key(20, positive, "T: truncation selection keeps the best T as parents (the elite among them)")
    sigma: float = key(0.002, positive, "mutation power: offspring = parent + sigma x noise")
    elite_candidates: int = key(10, positive, "offspring re-evaluated to choose the elite (the elite among them)")
    elite_episodes: int = key(30, positive, "extra episodes each elite candidate is re-evaluated on")

    def problem(self, job) -> str | None:
        if self.parents > self.population:
            return f"strategy.parents (T) must be <= strategy.population (N) {self.population}, got {self.parents}"
        if self.elite_candidates > self.population - 1:
            return (f"strategy.elite_candidates must be <= strategy.population - 1 ({self.population - 1}, the "
                    f"offspring per generation), got {self.elite_candidates}")
        if job.policy.obs_norm:
            return ("policy.obs_norm must be false with strategy.kind ga: an individual is its seed list, and "
                    "moving observation statistics would change what an unchanged elite does, got true")
        return None


@dataclass(frozen=True)
class GaState:
    elite: np.ndarray  # float32 parameters of the elite: vector 0, evaluated and saved as theta
    elite_seeds: SeedList
    elite_return: float  # mean return of the elite's re-evaluation (NaN before the first one)
    parents: tuple[SeedList, ...]  # generation 0: every initialisation
    candidates: tuple[SeedList, ...]  # to re-evaluate next generation (empty before generation 0)
    episode_cap: int


def pad(lists: Sequence[SeedList]) -> np.ndarray:
    """Seed lists as rows of an int64 array, padded with -1 (offsets and indices are >= 0)."""
    out = np.full((len(lists), max(map(len, lists))), -1, np.int64)
    for row, seeds_ in zip(out, lists):
        row[: len(seeds_)] = seeds_
    return out


def unpad(rows: np.ndarray) -> tuple[SeedList, ...]:
    return tuple(tuple(int(v) for v in row if v >= 0) for row in rows)


class Individuals(Sequence):
    """The vectors plan recipes refer to, built on first use: 0 the elite, then parents, then candidates."""

    def __init__(self, ga: Ga, state: GaState) -> None:
        self.ga, self.state = ga, state
        self.lists = (state.elite_seeds, *state.parents, *state.candidates)

    def __len__(self) -> int:
        return len(self.lists)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.state.elite if i == 0 else self.ga.rebuild(self.lists[i])


class Ga(Strategy):
    kind = "ga"
    Config = Config
    arrays = {
        "theta": ("1", "the elite's parameters (float32, flat, layer by layer: W then b)"),
        "population/seeds": ("1", "seed lists, -1 padded: row 0 the elite, then the parents, then the elite "
                             "candidates; a list is an initialisation index, then one noise offset per mutation"),
    }
    columns = {
        "best_return": ("f8", "return", "best offspring return of this generation (one episode each)"),
        "population_return": ("f8", "return", "mean offspring return of this generation"),
        "elite_return": ("f8", "return", "mean re-evaluation return of the elite chosen this generation"),
        "elite_mutations": ("i8", "1", "mutations in the elite's seed list (its length - 1)"),
        **EPISODE_CAP_COLUMN,
    }

    def __init__(self, job: Job, policy: Policy, env_limit: int, noise: np.ndarray | None = None,
                 split: RowSplit = all_rows) -> None:
        super().__init__(job, policy, env_limit, noise, split)
        cfg = job.strategy
        # a generation asks for every parent and candidate; their own parents are the previous generation's
        self._cache: OrderedDict[SeedList, np.ndarray] = OrderedDict()
        self._cache_size = 2 * (cfg.parents + cfg.elite_candidates + 1)

    def init(self) -> GaState:
        population = tuple((k,) for k in range(self.job.strategy.population))
        return GaState(self.rebuild((0,)), (0,), float("nan"), population, (), caps.first_cap(self.job, self.env_limit))

    def rebuild(self, seed_list: SeedList) -> np.ndarray:
        """theta of a seed list, from its longest cached prefix (or its initialisation) on."""
        cache = self._cache
        start = next((n for n in range(len(seed_list), 0, -1) if seed_list[:n] in cache), 0)
        if start:
            theta = cache[seed_list[:start]]
            cache.move_to_end(seed_list[:start])
        else:
            theta = self.policy.init_theta(seeds.stream(self.job.run.seed, seeds.INIT, seed_list[0]))
            start = 1
        if start < len(seed_list) and self.noise is None:
            raise RuntimeError("the GA rebuilds mutated individuals from the noise table, which this process lacks")
        sigma, dim = np.float32(self.job.strategy.sigma), self.num_params
        for offset in seed_list[start:]:
            # the same float32 operations as an episode's recipe (base + scale * eps), so an individual
            # rebuilt here is bit-identical to the one that was evaluated
            theta = theta + sigma * self.noise[offset : offset + dim]
        cache[seed_list] = theta
        cache.move_to_end(seed_list)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return theta

    def bases(self, state: GaState) -> Individuals:
        return Individuals(self, state)

    def plan(self, state: GaState, generation: int) -> Plan:
        """Evaluation episodes, then the offspring (generation 0: every initialisation, unmutated), then
        each elite candidate's re-evaluation episodes. Vector indices are those of Individuals."""
        cfg, job, g, seed = self.job.strategy, self.job, generation, self.job.run.seed
        first = 1  # Individuals index of the first parent
        if state.candidates:
            n = cfg.population - 1
            offsets = sample_offsets(seeds.stream(seed, g, seeds.OFFSETS), n, job.es.noise_table_size,
                                     self.num_params)
            pick = seeds.stream(seed, g, seeds.OFFSETS, PARENT_CHOICE).integers(0, len(state.parents), n)
            offspring = dict(base=first + pick, offset=offsets, scale=np.float32(cfg.sigma))
        else:
            n = len(state.parents)
            offspring = dict(base=first + np.arange(n))
        env_seeds = [seeds.derive_seed(seed, g, i, seeds.ENV) for i in range(n)]
        plans = [evaluation(job, g, self.env_limit),
                 episodes(n, **offspring, env_seed=env_seeds, cap=state.episode_cap, noise_key=np.arange(n))]
        k, e = len(state.candidates), cfg.elite_episodes
        if k:
            rerun = [seeds.derive_seed(seed, g, n + i, seeds.ENV) for i in range(k * e)]
            plans.append(episodes(k * e, base=first + len(state.parents) + np.repeat(np.arange(k), e),
                                  env_seed=rerun, cap=state.episode_cap, noise_key=n + np.arange(k * e)))
        return Plan.join(*plans)

    def update(self, state: GaState, plan: Plan, results: Results, noise_sum: NoiseSum) -> tuple[GaState, dict]:
        """The elite from the candidates' re-evaluation, then truncation selection of this generation's
        offspring (by their one episode each) into the next parents and candidates."""
        cfg = self.job.strategy
        train = plan.train
        returns, lengths = results.returns[train], results.lengths[train]
        offsets, bases = plan.offset[train], plan.base[train]
        n = cfg.population - 1 if state.candidates else len(state.parents)
        lists = self.bases(state).lists
        offspring = [lists[b] + ((int(o),) if o >= 0 else ()) for b, o in zip(bases[:n], offsets[:n])]
        # best first; equal returns keep plan order, so selection is a function of the returns alone
        order = np.argsort(-returns[:n], kind="stable")
        if state.candidates:
            scores = returns[n:].reshape(len(state.candidates), cfg.elite_episodes).mean(axis=1)
            winner = int(np.argmax(scores))  # ties keep the lowest index: the current elite
            elite_seeds, elite_return = state.candidates[winner], float(scores[winner])
            ranked = [offspring[i] for i in order]
        else:  # generation 0: the best initialisation is the elite until candidates are re-evaluated
            elite_seeds, elite_return = offspring[order[0]], float("nan")
            ranked = [offspring[i] for i in order[1:]]
        parents = (elite_seeds, *ranked[: cfg.parents - 1])
        candidates = (elite_seeds, *ranked[: cfg.elite_candidates - 1])
        # Every rank builds every vector the next generation may ask for, whichever episodes it ran, so
        # that each later one is a single step from a cached parent.
        for seed_list in (*candidates, *parents):
            self.rebuild(seed_list)
        elite = self.rebuild(elite_seeds)
        cap = caps.next_cap(self.job, state.episode_cap, lengths[:n], self.env_limit)
        metrics = {"best_return": float(returns[:n].max()), "population_return": float(returns[:n].mean()),
                   "elite_return": elite_return, "elite_mutations": len(elite_seeds) - 1,
                   "episode_cap": state.episode_cap}
        return GaState(elite, elite_seeds, elite_return, parents, candidates, cap), metrics

    def save(self, state: GaState) -> Saved:
        seeds_ = pad([state.elite_seeds, *state.parents, *state.candidates])
        scalars = {"population/parents": len(state.parents), "population/candidates": len(state.candidates),
                   "population/elite_return": state.elite_return, "episode_cap": state.episode_cap}
        return Saved({"theta": state.elite, "population/seeds": seeds_}, scalars)

    def load(self, saved: Saved) -> GaState:
        a, s = saved.arrays, saved.scalars
        lists = unpad(a["population/seeds"])
        p, c = int(s["population/parents"]), int(s["population/candidates"])
        if len(lists) != 1 + p + c:
            raise KeyError("population/seeds (its rows do not match population/parents and /candidates)")
        return GaState(a["theta"], lists[0], float(s["population/elite_return"]), lists[1 : 1 + p],
                       lists[1 + p :], int(s["episode_cap"]))
