"""The communicator: `LocalComm` (one process, no MPI) and `MpiComm` (mpi4py's COMM_WORLD plus a node
communicator), which everything else takes and calls, so the same code runs on one process and on many.

No pickle crosses ranks: start-up messages are JSON text and raw numpy buffers. The ranks of a node share
memory (MPI-3 shared windows, es_mpi.parallel.windows) for the noise table and the gradient; MpiComm also
hands out tasks (es_mpi.parallel.tasks) and episodes in flight (es_mpi.parallel.handover).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from es_mpi.parallel.handover import ClusterHandover, NodeHandover
from es_mpi.parallel.tasks import COUNTER_MODES, COUNTER_VAR, TaskCounters
from es_mpi.parallel.windows import Windows

_POLL_S = 1e-4
# Ranks per node as es-mpi sees it: each machine's ranks split into groups of this many consecutive ranks,
# each group with its own shared memory (and, with the node counters, its own counters and hand-over board).
# Unset: one node per machine. It lets the multi-node paths run (and be tested) on one machine.
NODE_RANKS_VAR = "ES_MPI_NODE_RANKS"


class LocalComm:
    """One process, no MPI: collectives are identities, 'shared' memory is private."""

    rank = 0
    size = 1
    node_rank = 0
    node_size = 1

    def bcast_json(self, obj: Any) -> Any:
        return json.loads(json.dumps(obj))

    def bcast_array(self, arr: np.ndarray | None) -> np.ndarray:
        return np.array(arr, copy=True)

    def gather_blocks(self, local: np.ndarray) -> list[np.ndarray]:
        return [np.array(local, dtype=np.float64, copy=True)]

    def gather_to_root(self, local: np.ndarray) -> np.ndarray | None:
        """Rows of equal-length float64 vectors, one per rank, on rank 0 only."""
        return np.array(local, dtype=np.float64, ndmin=2)

    def node_array(self, size: int, dtype: Any, fill: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """An array shared by the ranks of this node, filled once by `fill` on the node's first rank."""
        arr = np.zeros(size, dtype=dtype)
        if fill:
            fill(arr)
        return arr

    def node_slice(self, n: int) -> tuple[int, int]:
        """This rank's share [lo, hi) of n items of work split over the node's ranks."""
        return 0, n

    def node_barrier(self) -> None:
        pass

    def barrier(self) -> None:
        pass

    def tasks(self, generation: int, total: int, dynamic: bool = True) -> Iterator[int]:
        """The task indices this rank runs in `generation`; together the ranks run 0..total-1 once each."""
        return iter(range(total))

    def progress_hook(self) -> Callable[[], None] | None:
        """What a rank calls every few env steps so that others can reach its memory (None: nothing)."""
        return None

    def fair_share(self, generation: int, total: int) -> Callable[[], int] | None:
        """A callable giving how many episodes this rank may hold in flight now under dynamic assignment:
        its share of the tasks not yet taken, 0 once none is left (None: no limit, as with a single rank)."""
        return None

    def handover(self, dtype: np.dtype) -> NodeHandover | None:
        """The hand-over transport for episode records of `dtype` (None: no other rank to hand to)."""
        return None

    def abort(self, code: int) -> None:
        os._exit(code)


class MpiComm(LocalComm):
    """COMM_WORLD through mpi4py's buffer (upper-case) methods, plus a node communicator."""

    def __init__(self, comm) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        machine = comm.Split_type(MPI.COMM_TYPE_SHARED)
        group = node_ranks()
        self.node = machine.Split(machine.Get_rank() // group, machine.Get_rank()) if group else machine
        self.node_rank = self.node.Get_rank()
        self.node_size = self.node.Get_size()
        # node_of[r]: the world rank leading rank r's node, the same list on every rank.
        self.node_of = np.empty(self.size, dtype=np.int64)
        leader = np.array([self.rank], np.int64)
        self.node.Bcast(leader, root=0)
        comm.Allgather(leader, self.node_of)
        self.nodes = len(set(self.node_of.tolist()))
        self.windows = Windows(MPI, comm, self.node)
        self.counters = TaskCounters(self)

    def _bcast_bytes(self, data: bytes | None) -> bytes:
        n = np.array([len(data) if self.rank == 0 else 0], dtype=np.int64)
        self.comm.Bcast(n, root=0)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == 0 else np.empty(int(n[0]), np.uint8)
        self.comm.Bcast(buf, root=0)
        return buf.tobytes()

    def bcast_json(self, obj: Any) -> Any:
        return json.loads(self._bcast_bytes(json.dumps(obj).encode() if self.rank == 0 else None))

    def bcast_array(self, arr: np.ndarray | None) -> np.ndarray:
        head = self.bcast_json({"dtype": arr.dtype.str, "shape": arr.shape} if self.rank == 0 else None)
        out = np.ascontiguousarray(arr) if self.rank == 0 else np.empty(head["shape"], np.dtype(head["dtype"]))
        self.comm.Bcast(out, root=0)
        return out

    def gather_blocks(self, local: np.ndarray) -> list[np.ndarray]:
        """Allgather one float64 vector per rank (lengths may differ); returned in rank order."""
        local = np.ascontiguousarray(local, dtype=np.float64)
        counts = np.empty(self.size, dtype=np.int64)
        _wait_politely(self.comm.Iallgather(np.array([local.size], dtype=np.int64), counts))
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = np.empty(int(counts.sum()), dtype=np.float64)
        _wait_politely(self.comm.Iallgatherv(local, [out, counts.tolist(), displs.tolist(), self.MPI.DOUBLE]))
        return [out[d : d + c] for d, c in zip(displs, counts)]

    def gather_to_root(self, local: np.ndarray) -> np.ndarray | None:
        local = np.ascontiguousarray(local, dtype=np.float64)
        out = np.empty((self.size, local.size), np.float64) if self.rank == 0 else None
        self.comm.Gather(local, out, root=0)
        return out

    def node_array(self, size: int, dtype: Any, fill: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        return self.windows.node_array(size, dtype, fill)

    def node_slice(self, n: int) -> tuple[int, int]:
        return n * self.node_rank // self.node_size, n * (self.node_rank + 1) // self.node_size

    def node_barrier(self) -> None:
        self.node.Barrier()

    def barrier(self) -> None:
        _wait_politely(self.comm.Ibarrier())

    def tasks(self, generation: int, total: int, dynamic: bool = True) -> Iterator[int]:
        """Static: task t runs on rank t mod size. Dynamic: a free rank takes the next task from an atomic
        counter (es_mpi.parallel.tasks)."""
        if not dynamic:
            return iter(range(self.rank, total, self.size))
        return self.counters.tasks(generation, total)

    def progress_hook(self) -> Callable[[], None] | None:
        """Rank 0 hosts the global counters and, across nodes, the hand-over board."""
        return self.windows.progress if self.counters.mode == "global" and self.rank == 0 else None

    def fair_share(self, generation: int, total: int) -> Callable[[], int] | None:
        return self.counters.fair_share(generation, total)

    def handover(self, dtype: np.dtype) -> NodeHandover | None:
        """Across nodes with the global counters, the board on rank 0; else within the node, in node-shared
        memory (so that the `node` counters keep all one-sided traffic within nodes)."""
        if self.nodes > 1 and self.counters.mode == "global":
            return ClusterHandover(self, dtype)
        return NodeHandover(self, dtype) if self.node_size > 1 else None

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # The launcher kills every rank as soon as it hears of the abort, and may do so before it has
        # forwarded the lines this rank just wrote: give it a moment, or the error can vanish.
        time.sleep(0.5)
        self.comm.Abort(code)


def check_mpi_env() -> None:
    """Refuse a misspelt $ES_MPI_TASK_COUNTER or $ES_MPI_NODE_RANKS (bad input: exit 2 before any training)."""
    from es_mpi.runs.job import ConfigError

    asked = os.environ.get(COUNTER_VAR, "")
    if asked and asked not in COUNTER_MODES:
        raise ConfigError(f"{COUNTER_VAR}={asked!r}: use 'node' or 'global', or leave it unset")
    group = os.environ.get(NODE_RANKS_VAR, "")
    if group and (not group.isdigit() or int(group) < 1):
        raise ConfigError(f"{NODE_RANKS_VAR}={group!r}: give a whole number >= 1 of ranks per node, or leave it "
                          "unset (one node per machine)")


def node_ranks() -> int:
    """$ES_MPI_NODE_RANKS (the CLI refuses bad values before start-up), 0 when unset."""
    group = os.environ.get(NODE_RANKS_VAR, "")
    return int(group) if group.isdigit() else 0


def _wait_politely(request) -> None:
    """Wait for a non-blocking collective without spinning a core: a rank that finished its episodes
    early would otherwise busy-poll inside MPI and slow down ranks still working on shared cores. Costs
    at most the sleep interval per collective."""
    while not request.Test():
        time.sleep(_POLL_S)


def load_on_root(comm: LocalComm, load: Callable[[], tuple[dict, dict]],
                 names: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]]:
    """Rank 0 runs `load` (reading files is rank 0's job) and every rank gets its header and the named
    arrays; if `load` refused the input, every rank gets {"error": message} instead, so that all of them
    can exit with status 2 instead of waiting for each other."""
    from es_mpi.runs.job import ConfigError

    header, arrays = {}, {}
    if comm.rank == 0:
        try:
            header, arrays = load()
        except ConfigError as exc:
            header = {"error": str(exc)}
    header = comm.bcast_json(header)
    if "error" in header:
        return header, {}
    return header, {k: comm.bcast_array(arrays.get(k)) for k in names}


def get_comm() -> LocalComm:
    """MPI's world when mpi4py and an MPI library are there (size 1 when launched alone), else LocalComm."""
    try:
        from mpi4py import MPI
    except ImportError:
        return LocalComm()
    return MpiComm(MPI.COMM_WORLD)
