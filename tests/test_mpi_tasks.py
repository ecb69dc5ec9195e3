"""Dynamic task assignment: every task runs exactly once per generation, under both counters."""

import os
import subprocess
import sys

import pytest
from helpers import ROOT, mpiexec

pytestmark = pytest.mark.mpi

SCRIPT = """
import numpy as np
from es_mpi.parallel.comm import get_comm

comm = get_comm()
for g in range(6):  # several generations: the two counters alternate and are reset in turn
    total = 5 + 7 * g
    # Before any task is taken a rank's share is its part of the counter's tasks plus its own first one
    # (global counter); once every task is out it is 0.
    share = comm.fair_share(g, total)
    comm.barrier()
    counted = total - (comm.size if comm.counters.mode == "global" else 0)
    sharers = comm.size if comm.counters.mode == "global" else comm.node_size
    assert share() == -(-counted // sharers) + (comm.counters.mode == "global"), (g, share())
    comm.barrier()
    mine = np.array(list(comm.tasks(g, total)), dtype=np.float64)
    comm.barrier()
    assert share() == 0
    every = np.concatenate(comm.gather_blocks(mine))
    assert sorted(every.tolist()) == list(range(total)), (g, sorted(every.tolist()))
    static = np.array(list(comm.tasks(g, total, dynamic=False)), dtype=np.float64)
    assert static.tolist() == list(range(comm.rank, total, comm.size))
if comm.rank == 0:
    print("tasks ok", comm.counters.mode)
"""


@pytest.mark.parametrize("counter", ["node", "global"])
def test_every_task_runs_exactly_once(tmp_path, counter):
    script = tmp_path / "tasks.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([mpiexec(), "-n", "3", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "ES_MPI_TASK_COUNTER": counter})
    assert proc.returncode == 0, proc.stderr
    assert f"tasks ok {counter}" in proc.stdout
