"""Dynamic task assignment: the atomic counters from which a free rank takes its next task, and each rank's
fair share of the tasks not yet taken.

$ES_MPI_TASK_COUNTER says where the counters live: 'node' (node-shared memory, one pair per node) or
'global' (one pair on rank 0). Unset: 'node' when all ranks share a node, else 'global'.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from es_mpi.parallel.windows import fetch_and_op

if TYPE_CHECKING:
    from es_mpi.parallel.comm import MpiComm

COUNTER_VAR = "ES_MPI_TASK_COUNTER"
COUNTER_MODES = ("node", "global")


def task_counter_mode(nodes: int) -> str:
    """The counter $ES_MPI_TASK_COUNTER asks for (the CLI refuses other values before start-up), else
    'node' on one node and 'global' across several."""
    asked = os.environ.get(COUNTER_VAR, "")
    return asked if asked in COUNTER_MODES else ("node" if nodes == 1 else "global")


class TaskCounters:
    """Two counters, one per phase (generation % 2): successive generations use them alternately, and
    their host resets the next generation's counter while the other is in use, so no extra synchronisation
    is needed. With the `node` counters each node counts the tasks the static rule gives its ranks; with
    `global` rank 0 counts all tasks, and each rank's first task is its own rank number, so no rank waits
    for rank 0 to start."""

    def __init__(self, comm: MpiComm) -> None:
        self.MPI, self.rank, self.size, self.node_of = comm.MPI, comm.rank, comm.size, comm.node_of
        self.mode = task_counter_mode(comm.nodes)
        if self.mode == "node":
            _, self.win = comm.windows.shared_window(2, np.int64)
            self.host, self.sharers = comm.node_rank == 0, comm.node_size
        else:
            # Cross-node: rank 0 holds the counters; MPICH serves remote atomics only while the target is in
            # MPI, so rank 0 polls (MpiComm.progress_hook) during its episodes.
            self.win = comm.windows.world_window(2 if self.rank == 0 else 0, 8)
            self.host, self.sharers = self.rank == 0, self.size
        self.first_pending = False  # this rank's fixed first task (global counters) not yet taken

    def tasks(self, generation: int, total: int) -> Iterator[int]:
        """The tasks this rank takes in `generation`, one at a time as it gets free."""
        phase = generation % 2
        if self.host:
            self._fetch_add(1 - phase, 0, self.MPI.REPLACE)
        tasks, first = self._counted_tasks(total)
        if first and self.rank < total:
            self.first_pending = False
            yield self.rank
        while True:
            i = first + self._fetch_add(phase, 1, self.MPI.SUM)
            if i >= tasks.size:
                return
            yield int(tasks[i])

    def fair_share(self, generation: int, total: int) -> Callable[[], int]:
        """A callable giving this rank's share of the tasks not yet taken. It counts this rank's fixed first
        task (global counters) until it takes it: otherwise at 1,440 ranks and 10,015 tasks every rank would
        start 6 episodes instead of 7, and the 1,375 left over would run alone at the end while the ranks
        without one wait."""
        tasks, first = self._counted_tasks(total)
        self.first_pending = bool(first) and self.rank < total

        def share() -> int:
            left = tasks.size - first - self._fetch_add(generation % 2, 0, self.MPI.SUM)
            return max(0, -(-left // self.sharers)) + self.first_pending

        return share

    def _counted_tasks(self, total: int) -> tuple[np.ndarray, int]:
        """The tasks this rank's counter hands out, and how many of them go out before the counter: the
        node's share under the static rule (none before), or all tasks with each rank's first fixed."""
        if self.mode == "node":
            return np.flatnonzero(self.node_of[np.arange(total) % self.size] == self.node_of[self.rank]), 0
        return np.arange(total), self.size

    def _fetch_add(self, phase: int, value: int, op) -> int:
        return fetch_and_op(self.win, 0, phase, value, op)
