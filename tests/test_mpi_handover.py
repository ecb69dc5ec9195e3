"""Episodes handed between real MPI ranks, of a node or across nodes: none lost, none run twice, results
unchanged."""

import os
import subprocess
import sys

import pytest
from helpers import ROOT, mpiexec

pytestmark = pytest.mark.mpi

SCRIPT = """
import sys
from dataclasses import replace

import gymnasium as gym
import numpy as np

sys.path.insert(0, "tests")
from test_batched import job_policy, reference, specs, to_spec

from es_mpi.envs import handover
from es_mpi.envs.lockstep import BatchedRunner
from es_mpi.parallel.comm import get_comm
from es_mpi.envs.rollout import run_one_by_one

comm = get_comm()
env_id = "Hopper-v5"
kwargs = {"terminate_when_unhealthy": False}
policy = job_policy(env_id, kwargs)
args = [a[:4] + (False,) for a in specs(policy, 6, seed=4)]
caps = [200, 180, 160, 140, 120, 100]
transport = comm.handover(handover.record_dtype(gym.make(env_id, **kwargs).unwrapped, policy.obs_dim, policy.act_dim))
for g in range(3):  # the two boards alternate and are cleared in turn
    transport.begin(g)
    makers = [lambda c=c, a=a, t=t: replace(to_spec(c, *a), task=t) for t, (c, a) in enumerate(zip(caps, args))]
    handover_round = handover.HandoverRound(transport, lambda task: makers[task]())
    comm.barrier()
    if comm.rank == 0:  # every task starts here, six in a batch; the other ranks start with none
        taken = []

        def lazily():
            for m in makers:
                taken.append(m)
                yield m()

        got = BatchedRunner(env_id, kwargs, policy, 8).run(lazily(), None, None,
                                                           limit=lambda: len(caps) - len(taken),
                                                           handover_round=handover_round)
    else:
        env = gym.make(env_id, **kwargs).unwrapped
        got = run_one_by_one(env, policy, [], None, None, handover_round=handover_round)
    mine = np.array([[e.task, e.ret, e.length, comm.rank] for e in got], np.float64).ravel()
    rows = np.concatenate(comm.gather_blocks(mine)).reshape(-1, 4)
    given = np.concatenate(comm.gather_blocks(np.array([handover_round.given], np.float64)))
    if comm.rank == 0:
        rows = rows[np.argsort(rows[:, 0])]
        assert rows[:, 0].tolist() == list(range(len(caps))), rows[:, 0]
        expected = [reference(env_id, kwargs, policy, [a], None, None, c)[0] for c, a in zip(caps, args)]
        assert rows[:, 1].tolist() == [e.ret for e in expected] and rows[:, 2].tolist() == caps
        moved = int((rows[:, 3] != 0).sum())
        assert moved == given.sum() >= 1 and given[1:].sum() == 0, (moved, given)
        print("generation", g, "moved", moved, "to ranks", sorted(set(rows[rows[:, 3] != 0, 3].astype(int).tolist())),
              type(transport).__name__)
"""


@pytest.mark.parametrize(("node_ranks", "transport"), [("", "NodeHandover"), ("1", "ClusterHandover"),
                                                    ("2", "ClusterHandover")])
def test_episodes_move_between_ranks(tmp_path, node_ranks, transport):
    """One node of three ranks; three nodes of one (every move crosses nodes); and nodes of two and one,
    where rank 0's node-mate is asked first and rank 2, alone on its node, must still get work."""
    script = tmp_path / "handover.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, ES_MPI_NODE_RANKS=node_ranks)
    proc = subprocess.run([mpiexec(), "-n", "3", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "moved" in line]
    assert len(lines) == 3 and all(line.endswith(transport) for line in lines), proc.stdout
    if node_ranks != "":
        assert any("2]" in line for line in lines), proc.stdout  # some episode crossed to the other node
