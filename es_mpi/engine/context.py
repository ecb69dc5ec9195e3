"""What every rank builds once at start-up: the strategy, the node-shared noise table, the episode runner
and the hand-over of episodes in flight."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from es_mpi.core.noise import fill_noise, weighted_noise_sum
from es_mpi.envs import behaviour, handover, lockstep
from es_mpi.envs.make import wrapper_names
from es_mpi.envs.physics import unmodelled
from es_mpi.envs.rollout import run_one_by_one
from es_mpi.parallel.comm import LocalComm
from es_mpi.policies.make import Policy
from es_mpi.policies.mlp import BOX, MlpPolicy
from es_mpi.runs.job import ConfigError, Job
from es_mpi.strategies import STRATEGIES
from es_mpi.strategies.base import Strategy

SLOTS_VAR = "ES_MPI_SLOTS"
DEFAULT_SLOTS = 8  # lockstep simulations per rank when $ES_MPI_SLOTS is unset


@dataclass
class Context:
    job: Job
    comm: LocalComm
    env: object
    env_limit: int
    policy: Policy
    strategy: Strategy
    noise: np.ndarray  # node-shared, read-only after start-up
    sum_buffer: np.ndarray  # node-shared, each rank writes its slice of a weighted noise sum
    run_episodes: Callable  # (specs, mean, std, poll, limit, handover_round) -> episodes: lockstep or one by one
    path: str  # which runner, and why, for the start-up line
    dynamic: bool = True  # dynamic task assignment (results are the same either way)
    handover: object | None = None  # hand-over transport for episodes in flight (es_mpi.parallel)
    behaviour: Callable | None = None  # (env, last observation) -> BC vector; None: episodes return none
    behaviour_width: int = 0  # floats of that vector, beside return and length in a result row

    def noise_sum(self, offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """sum_j weights[j] * noise[offsets[j]:][:dim] (float32), each of the node's ranks computing a slice
        of the coordinates into shared memory; slices are bit-identical to the whole."""
        dim = self.policy.num_params
        lo, hi = self.comm.node_slice(dim)
        self.comm.node_barrier()  # a slower rank may still be copying the previous sum
        self.sum_buffer[lo:hi] = weighted_noise_sum(self.noise, offsets, weights, dim, lo, hi)
        self.comm.node_barrier()
        return self.sum_buffer.copy()


@dataclass
class NodeRows:
    """The engine's RowSplit: each of the node's ranks computes a slice of the rows into node-shared memory,
    grown (collectively: every rank asks for the same size) when a call needs more; rows do not depend on the
    split, so the result is the same bits on any number of ranks."""

    comm: LocalComm
    buffer: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __call__(self, rows: Callable[[int, int], np.ndarray], n: int, width: int) -> np.ndarray:
        if self.buffer.size < n * width:
            self.buffer = self.comm.node_array(max(n * width, 2 * self.buffer.size), np.float64)
        lo, hi = self.comm.node_slice(n)
        out = self.buffer[: n * width].reshape(n, width)
        self.comm.node_barrier()  # a slower rank may still be copying the previous result
        out[lo:hi] = np.asarray(rows(lo, hi), np.float64).reshape(hi - lo, width)
        self.comm.node_barrier()
        return out.copy()


def build_context(job: Job, comm: LocalComm, env, env_limit: int, policy: Policy, dynamic: bool = True,
                  slots: int | None = None, hand_over: bool = True) -> Context:
    """Allocate the node-shared noise table (filled once per node) and sum buffer, and pick the episode
    runner: `slots` MuJoCo simulations stepped in lockstep (mujoco.batch) where the task is supported,
    else one gymnasium episode at a time; both give bit-identical results. Under dynamic assignment, for
    the tasks the lockstep runner covers, ranks also hand episodes in flight to each other near a
    generation's end (whatever each rank's slots: the decision follows the job alone, so that all of them
    take part); `hand_over=False` turns that off (for benchmarks)."""
    noise = comm.node_array(job.es.noise_table_size, np.float32, lambda a: fill_noise(a, job.es.noise_seed))
    strategy = STRATEGIES[job.strategy.kind](job, policy, env_limit, noise, NodeRows(comm))
    bc_function = characterisation(job, env, strategy.behaviour_width)
    sum_buffer = comm.node_array(policy.num_params, np.float32)
    slots = default_slots() if slots is None else slots
    gap = lockstep_gap(job, env, policy)
    covered = not gap
    if slots > 1 and covered:
        run_episodes = lockstep.BatchedRunner(job.env.id, job.env.kwargs, policy, slots).run
        path = f"lockstep MuJoCo batches of {slots} per rank"
    else:
        run_episodes = partial(run_one_by_one, env, policy)
        if gap == "the env is wrapped":
            gap = f"the env is wrapped: {', '.join(wrapper_names(env))}"
        path = f"gymnasium, one episode at a time ({gap or f'{SLOTS_VAR}={slots}'})"
    transport = None
    if dynamic and covered and hand_over:
        transport = comm.handover(handover.record_dtype(env, policy.obs_dim, policy.act_dim))
    return Context(job, comm, env, env_limit, policy, strategy, noise, sum_buffer, run_episodes, path, dynamic,
                   transport, bc_function, strategy.behaviour_width)


def characterisation(job: Job, env, width: int) -> Callable | None:
    """(env, last observation) -> BC vector for a strategy that asks for `width` floats per episode (None
    for 0): the function its section's `behaviour` key names (es_mpi.envs.behaviour), tried on `env`."""
    if not width:
        return None
    name = job.strategy.behaviour
    function, own_width = behaviour.resolve(name)
    if own_width != width:
        raise ConfigError(f"strategy.behaviour {name!r} gives {own_width} values, the strategy expects {width}")
    behaviour.check(function, width, env, name, "job")
    return partial(behaviour.measure, function, width)


def lockstep_gap(job: Job, env, policy: Policy) -> str:
    """Why episodes cannot run in lockstep MuJoCo batches ('' when they can)."""
    gap = unmodelled(env, job.env.id, job.env.kwargs)
    if not gap and (not isinstance(policy, MlpPolicy) or policy.kind != BOX):
        return "the policy's actions are not a Box"
    return gap


def default_slots() -> int:
    """$ES_MPI_SLOTS (1: one gymnasium episode at a time), else 8: where measured, 8 lockstep
    simulations ran HalfCheetah 2.5x and Hopper 1.6x faster than one at a time."""
    text = os.environ.get(SLOTS_VAR, str(DEFAULT_SLOTS))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{SLOTS_VAR}={text!r}: give a whole number >= 1 (1 runs one episode at a time)")
    return int(text)
