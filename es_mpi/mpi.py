"""The only module that talks MPI. Everything else takes a `Comm` and runs unchanged on one process.

No pickle crosses ranks: start-up messages are JSON text and raw numpy buffers. Within a node, ranks
share memory (MPI-3 shared windows) for the noise table, the gradient and the task counter.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_POLL_S = 1e-4


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
        self.node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.node_rank = self.node.Get_rank()
        self.node_size = self.node.Get_size()
        # node_of[r]: the world rank leading rank r's node, the same list on every rank.
        self.node_of = np.empty(self.size, dtype=np.int64)
        leader = np.array([self.rank], np.int64)
        self.node.Bcast(leader, root=0)
        comm.Allgather(leader, self.node_of)
        self._windows = []
        # Two counters used alternately by successive generations: a node's first rank resets the next
        # generation's counter while the other is in use, so no extra synchronisation is needed.
        self._counters = self.node_array(2, np.int64)
        self._counter_win = self._windows[-1]
        self._counter_win.Lock_all()

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
        dtype = np.dtype(dtype)
        nbytes = size * dtype.itemsize if self.node_rank == 0 else 0
        win = self.MPI.Win.Allocate_shared(nbytes, dtype.itemsize, comm=self.node)
        self._windows.append(win)
        buf, _ = win.Shared_query(0)
        arr = np.ndarray(buffer=buf, dtype=dtype, shape=(size,))
        if self.node_rank == 0:
            arr[...] = 0
            if fill:
                fill(arr)
        self.node.Barrier()
        return arr

    def node_slice(self, n: int) -> tuple[int, int]:
        return n * self.node_rank // self.node_size, n * (self.node_rank + 1) // self.node_size

    def node_barrier(self) -> None:
        self.node.Barrier()

    def barrier(self) -> None:
        _wait_politely(self.comm.Ibarrier())

    def tasks(self, generation: int, total: int, dynamic: bool = True) -> Iterator[int]:
        """Static: task t runs on rank t mod size. Dynamic: the tasks of this node's ranks under the static
        rule form the node's list, and its ranks take the next one whenever they are free, through an
        atomic counter in node-shared memory (no target progress needed, unlike cross-node RMA)."""
        if not dynamic:
            yield from range(self.rank, total, self.size)
            return
        mine = np.flatnonzero(self.node_of[np.arange(total) % self.size] == self.node_of[self.rank])
        slot = generation % 2
        if self.node_rank == 0:
            self._fetch_add(1 - slot, 0, self.MPI.REPLACE)
        while True:
            i = self._fetch_add(slot, 1, self.MPI.SUM)
            if i >= mine.size:
                return
            yield int(mine[i])

    def _fetch_add(self, slot: int, value: int, op) -> int:
        result = np.empty(1, np.int64)
        self._counter_win.Fetch_and_op(np.array([value], np.int64), result, 0, slot, op)
        self._counter_win.Flush(0)
        return int(result[0])

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def _wait_politely(request) -> None:
    """Wait for a non-blocking collective without spinning a core: a rank that finished its episodes
    early would otherwise busy-poll inside MPI and slow down ranks still working on shared cores. Costs
    at most the sleep interval per collective."""
    while not request.Test():
        time.sleep(_POLL_S)


def get_comm() -> LocalComm:
    """MPI's world when mpi4py and an MPI library are there (size 1 when launched alone), else LocalComm."""
    try:
        from mpi4py import MPI
    except ImportError:
        return LocalComm()
    return MpiComm(MPI.COMM_WORLD)
