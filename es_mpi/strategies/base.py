"""The seam between the engine and an algorithm.

A strategy lists a generation's episodes as recipes (a `Plan`): which of its parameter vectors, which
noise-table offset and scale, which env seed and cap. Any rank rebuilds an episode's parameters from its
recipe, so the engine ships indices, never vectors. The engine runs the episodes wherever it likes, gathers
their `Results` in plan order and hands them to `update`, a pure function of (state, plan, results) that
every rank computes identically and that tests call without MPI. A strategy owns its state and names its
arrays and scalars for the checkpoint, so a new algorithm adds no field to the engine or the checkpoint code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from es_mpi.core import seeds
from es_mpi.core.noise import sample_offsets
from es_mpi.core.obs_stats import ObsStats

if TYPE_CHECKING:
    from es_mpi.policies.make import Policy
    from es_mpi.runs.job import Job

# (offsets, weights) -> sum_j weights[j] * noise[offsets[j] : offsets[j] + dim] as float32, computed by the
# engine with the work split over a node's ranks.
NoiseSum = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (rows, n, width) -> the (n, width) float64 array whose rows [lo, hi) are rows(lo, hi): work whose rows do not
# depend on each other (novelty queries), which the engine splits over a node's ranks.
RowSplit = Callable[[Callable[[int, int], np.ndarray], int, int], np.ndarray]


def all_rows(rows: Callable[[int, int], np.ndarray], n: int, width: int) -> np.ndarray:
    """A RowSplit in one call: what a strategy uses without the engine (tests, evaluation)."""
    return np.asarray(rows(0, n), np.float64).reshape(n, width)


# Checkpoint arrays and metrics columns that several strategies share, described once.
THETA_ARRAY = {"theta": ("1", "policy parameters (float32, flat, layer by layer: W then b)")}
THETA_NORM_COLUMN = {"theta_norm": ("f8", "1", "L2 norm of the parameters after the update")}
EPISODE_CAP_COLUMN = {"episode_cap": ("i8", "steps", "step limit of this generation's training episodes")}
# How a strategy that keeps observation statistics (es_mpi.core.obs_stats) names their arrays in checkpoint.h5.
OBS_STATS_ARRAYS = {
    "obs_stats/sum": ("observation units", "sum of raw observations seen by the statistics"),
    "obs_stats/sumsq": ("observation units^2", "sum of squared raw observations"),
}


def save_obs_stats(obs: ObsStats) -> Saved:
    """Observation statistics under the names of OBS_STATS_ARRAYS (and their count as a scalar)."""
    return Saved({"obs_stats/sum": obs.total, "obs_stats/sumsq": obs.total_sq}, {"obs_stats/count": obs.count})


def load_obs_stats(saved: Saved) -> ObsStats:
    a = saved.arrays
    return ObsStats(float(saved.scalars["obs_stats/count"]), a["obs_stats/sum"], a["obs_stats/sumsq"])


def l2_norm(x: np.ndarray) -> float:
    """|x| in float64, for metrics columns."""
    return float(np.linalg.norm(x.astype(np.float64)))


@dataclass(frozen=True)
class StrategyConfig:
    """A strategy's job section (`strategy:` in a job file); subclasses add the strategy's own keys."""

    def problem(self, job: Job) -> str | None:
        """What is wrong with this section given the rest of the job (keys that tie together), as the end of
        a one-line error ('strategy.top must be <= strategy.directions, got ...'), or None."""
        return None


@dataclass(frozen=True)
class Plan:
    """One generation's episodes: episode i plays parameters bases[base[i]] + scale[i] * eps, eps the noise
    table at offset[i] (offset -1: the base vector itself), from env seed env_seed[i] for at most cap[i]
    steps. noise_key[i] >= 0 adds Gaussian action noise from stream (run seed, generation, noise_key[i]);
    stats[i] feeds the observation statistics; train[i] is False for evaluation episodes, which count in
    no training budget."""

    base: np.ndarray  # int64
    offset: np.ndarray  # int64
    scale: np.ndarray  # float32
    env_seed: np.ndarray  # int64
    cap: np.ndarray  # int64
    noise_key: np.ndarray  # int64
    stats: np.ndarray  # bool
    train: np.ndarray  # bool

    def __len__(self) -> int:
        return self.base.size

    @staticmethod
    def join(*plans: Plan) -> Plan:
        return Plan(*(np.concatenate([getattr(p, f) for p in plans]) for f in Plan.__dataclass_fields__))


def episodes(count: int, *, base: Any = 0, offset: Any = -1, scale: Any = 0.0, env_seed: Any, cap: Any,
             noise_key: Any = -1, stats: Any = False, train: bool = True) -> Plan:
    """A Plan of `count` episodes; each field a scalar (the same for all) or an array of `count`."""
    def column(value: Any, dtype: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype), (count,)).copy()

    return Plan(column(base, np.int64), column(offset, np.int64), column(scale, np.float32),
                column(env_seed, np.int64), column(cap, np.int64), column(noise_key, np.int64),
                column(stats, bool), column(train, bool))


def evaluation(job: Job, generation: int, cap: int) -> Plan:
    """The noiseless episodes of parameter vector 0 in generation 0 and every run.eval_every-th after
    (independent of the budget, so a run extended on resume records what a longer-planned run records)."""
    every = job.run.eval_every
    count = job.run.eval_episodes if every > 0 and generation % every == 0 else 0
    env_seeds = [seeds.derive_seed(job.run.seed, generation, e, seeds.EVAL) for e in range(count)]
    return episodes(count, env_seed=env_seeds, cap=cap, train=False)


def antithetic_pairs(job: Job, generation: int, num_params: int, pairs: int, scale: float, cap: int, base: int = 0,
                     noisy: bool = True, statistics: bool = True) -> Plan:
    """`pairs` antithetic pairs of a generation around parameter vector `base`: episode 2j + side plays
    base + scale eps_j (side 0) or base - scale eps_j (side 1), both from the same env seed and, when `noisy`,
    the same action-noise stream (common random numbers); with `statistics`, a pair feeds the observation
    statistics with probability policy.obs_stat_fraction (when policy.obs_norm is on)."""
    seed, g = job.run.seed, generation
    offsets = sample_offsets(seeds.stream(seed, g, seeds.OFFSETS), pairs, job.es.noise_table_size, num_params)
    take = statistics & job.policy.obs_norm & (
        seeds.stream(seed, g, seeds.OBS_STATS).random(pairs) < job.policy.obs_stat_fraction)
    pair = np.repeat(np.arange(pairs), 2)
    scale = np.float32(scale)
    env_seeds = np.array([seeds.derive_seed(seed, g, j, seeds.ENV) for j in range(pairs)], np.int64)
    return episodes(2 * pairs, base=base, offset=offsets[pair], scale=np.tile([scale, -scale], pairs),
                    env_seed=env_seeds[pair], cap=cap, noise_key=pair if noisy else -1, stats=take[pair])


@dataclass(frozen=True)
class Results:
    """Every episode of a plan, in plan order: return, length, behaviour vector (width
    Strategy.behaviour_width), and the observation statistics of the episodes that collected them, in
    plan order."""

    returns: np.ndarray  # float64
    lengths: np.ndarray  # int64
    behaviour: np.ndarray  # float64, (episodes, width)
    stats: list[ObsStats]


@dataclass(frozen=True)
class Saved:
    """A strategy state as named arrays and scalars. A name 'group/item' is stored in checkpoint.h5 as a
    dataset in a group, or for a scalar as an attribute of the group; names without '/' at the root."""

    arrays: dict[str, np.ndarray]
    scalars: dict[str, int | float]


class Strategy(ABC):
    """An algorithm. Subclasses set `kind` and `Config`, describe their arrays and metrics columns, and
    implement the methods below; all of them are deterministic functions of their arguments."""

    kind: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]]
    # checkpoint array name -> (units, description)
    arrays: ClassVar[dict[str, tuple[str, str]]] = {}
    # metrics.h5 columns the update's metrics fill: name -> (dtype, units, description)
    columns: ClassVar[dict[str, tuple[str, str, str]]] = {}
    # floats per episode beside return and length (a behaviour descriptor); 0: none
    behaviour_width: ClassVar[int] = 0

    def __init__(self, job: Job, policy: Policy, env_limit: int, noise: np.ndarray | None = None,
                 split: RowSplit = all_rows) -> None:
        # noise: the shared noise table, read-only, for strategies that rebuild vectors from offsets
        # themselves (the GA's seed lists); None where no table is built (start-up on rank 0, eval).
        # split: the engine's RowSplit over a node's ranks.
        self.job, self.policy, self.env_limit, self.noise, self.split = job, policy, env_limit, noise, split
        self.num_params = policy.num_params

    def init_theta(self) -> np.ndarray:
        """The policy's initial parameters from the run seed."""
        return self.policy.init_theta(seeds.stream(self.job.run.seed, seeds.INIT))

    @abstractmethod
    def init(self) -> Any:
        """The state of a new run."""

    @abstractmethod
    def plan(self, state: Any, generation: int) -> Plan:
        """The episodes of `generation`."""

    @abstractmethod
    def bases(self, state: Any) -> Sequence[np.ndarray]:
        """The parameter vectors recipes refer to; vector 0 is what evaluation and users' code run."""

    def normaliser(self, state: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(mean, std) that episodes normalise observations with, or (None, None)."""
        return None, None

    @abstractmethod
    def update(self, state: Any, plan: Plan, results: Results, noise_sum: NoiseSum) -> tuple[Any, dict]:
        """The next state and this generation's values of `columns`."""

    @abstractmethod
    def save(self, state: Any) -> Saved:
        """The state as named arrays and scalars, for the checkpoint and the start-up broadcast."""

    @abstractmethod
    def load(self, saved: Saved) -> Any:
        """The state `save` gave; raises KeyError when a name is missing (a foreign or corrupt file)."""
