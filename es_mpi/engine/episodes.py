"""A rank's share of a generation: recipes become episodes, run wherever the assignment puts them.

Tasks are a plan's episodes, handed out lazily whenever the runner has room for one more (dynamic
assignment), and an episode may end on another rank than the one that started it (es_mpi.envs.handover).
Which rank runs which does not matter: every number an episode produces depends only on its recipe.
"""

from __future__ import annotations

import numpy as np

from es_mpi.core import seeds
from es_mpi.engine.context import Context
from es_mpi.engine.message import ROW
from es_mpi.envs.handover import HandoverRound
from es_mpi.envs.rollout import EpisodeSpec
from es_mpi.strategies.base import Plan


def spec_maker(ctx: Context, state, plan: Plan, generation: int):
    """task -> EpisodeSpec: the recipe's parameters rebuilt from the strategy's vectors and the noise table."""
    bases = ctx.strategy.bases(state)
    dim, seed, action_noise = ctx.policy.num_params, ctx.job.run.seed, ctx.job.policy.action_noise

    def make_spec(task: int) -> EpisodeSpec:
        theta, offset = bases[plan.base[task]], int(plan.offset[task])
        if offset >= 0:
            theta = theta + plan.scale[task] * ctx.noise[offset : offset + dim]
        key = int(plan.noise_key[task])
        rng = seeds.stream(seed, generation, key, seeds.ACTION_NOISE) if key >= 0 else None
        return EpisodeSpec(theta, int(plan.env_seed[task]), int(plan.cap[task]), rng,
                           action_noise if rng is not None else 0.0, bool(plan.stats[task]), task, ctx.behaviour)

    return make_spec


def run_share(ctx: Context, state, plan: Plan, generation: int) -> tuple[np.ndarray, np.ndarray, HandoverRound | None]:
    """This rank's episode rows (index, return, length, behaviour vector if the strategy asks for one), its
    statistics rows (index, packed ObsStats), and its hand-over round (None: none)."""
    comm, total = ctx.comm, len(plan)
    make_spec = spec_maker(ctx, state, plan, generation)
    mean, std = ctx.strategy.normaliser(state)
    limit = comm.fair_share(generation, total) if ctx.dynamic else None
    round_ = None
    if ctx.handover is not None:
        ctx.handover.begin(generation)
        round_ = HandoverRound(ctx.handover, make_spec)
    specs = map(make_spec, comm.tasks(generation, total, ctx.dynamic))
    episodes = ctx.run_episodes(specs, mean, std, comm.progress_hook(), limit, round_)
    width = ROW + ctx.behaviour_width
    rows = np.asarray([[ep.task, ep.ret, ep.length, *(ep.behaviour if ctx.behaviour_width else ())]
                       for ep in episodes], np.float64).reshape(-1, width)
    stats = [np.concatenate([[ep.task], ep.stats.pack()]) for ep in episodes if ep.stats is not None]
    stat_width = 2 + 2 * ctx.policy.obs_dim
    return rows, np.asarray(stats, np.float64).reshape(-1, stat_width), round_
