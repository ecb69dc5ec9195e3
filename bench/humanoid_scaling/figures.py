"""Every figure the scaling study starts from, with where it comes from.

The Humanoid run is jobs/humanoid.yaml, read through the job schema so that its figures live in one place;
the sizes come from the Humanoid-v5 env that job makes; the layout is the paper's 1,440 ranks as 80 nodes
of 18; the network and memory figures are assumptions, stated as such.
"""

from __future__ import annotations

from pathlib import Path

from es_mpi.envs.handover import record_dtype
from es_mpi.envs.make import make_env
from es_mpi.policies.make import make_policy
from es_mpi.runs.job import load_job

ROOT = Path(__file__).resolve().parents[2]
JOB_FILE = ROOT / "jobs" / "humanoid.yaml"
JOB = load_job(JOB_FILE)
if JOB.run.eval_every != 1:
    raise SystemExit(f"{JOB_FILE}: the scaling model evaluates every generation, but run.eval_every is "
                     f"{JOB.run.eval_every}")

PAIRS = JOB.es.pairs
EVAL_EPISODES = JOB.run.eval_episodes  # every generation
STAT_FRACTION = JOB.policy.obs_stat_fraction
TASKS = EVAL_EPISODES + 2 * PAIRS  # es-mpi's task list: evaluation episodes first, then episode 2j+side


def _env_sizes() -> tuple[int, int, int]:
    """(observation size, parameters of the job's policy, bytes of one episode record handed between ranks
    by es_mpi.envs.handover) of the env the job makes."""
    env, _ = make_env(JOB.env, str(JOB_FILE))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    params = make_policy(JOB.policy, env, source=str(JOB_FILE)).num_params
    record = record_dtype(env, obs_dim, act_dim).itemsize
    env.close()
    return obs_dim, params, record


OBS_DIM, PARAMS, RECORD_BYTES = _env_sizes()
STAT_WIDTH = 2 + 2 * OBS_DIM  # one observation-statistics row: index, count, sums, sums of squares

NODE_RANKS = 18  # ranks per node in the paper's 80 x 18 layout; the update is split this many ways
FULL_SCALE = 1440  # the paper's rank count, the last of TARGET_P
TARGET_P = (18, 144, 720, FULL_SCALE)

BANDWIDTH_BPS = 10e9  # assumed network: 10 Gb/s per node
NODE_MEMORY_BPS = 100e9  # assumed memory bandwidth of one node, for the update's floor
NODE_GRAB_LATENCY_S = 1e-6  # assumed cost of one grab from a node-shared-memory counter
