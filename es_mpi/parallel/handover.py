"""The hand-over transport: how a rank with several episodes in flight hands one, as a record, to a rank that
has none (es_mpi.envs.handover decides what to hand over), within a node (NodeHandover) or across nodes
(ClusterHandover), so that a generation's last episodes do not share one core while others idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from es_mpi.parallel.windows import fetch_and_op

if TYPE_CHECKING:
    from es_mpi.parallel.comm import MpiComm


class NodeHandover:
    """The hand-over between the ranks of a node, in node-shared memory. One board per phase (generation
    % 2), used alternately like the task counters, and cleared by the host, the node's first rank, while
    the other is in use: the number of ranks that ran out of work, and a word per rank: 0 busy, 1 waiting,
    2 claimed by a sender, 3 record delivered; beside the boards, the records, one per rank. Every change of
    a word is an MPI atomic; reads are plain loads after Win.Sync.

    The generation ends for a rank when every rank waits and nothing is being delivered: only a busy rank
    gives, and a rank that receives plays that one episode alone and gives nothing."""

    BUSY, WAITING, CLAIMED, DELIVERED = range(4)
    # A waiting rank checks first after POLL_S, then backs off to BACKOFF_S: more often would take CPU from
    # ranks still working on shared cores, and an episode handed over runs for far longer than the delay.
    POLL_S = 1e-4
    BACKOFF_S = 1e-3

    def __init__(self, comm: MpiComm, dtype: np.dtype) -> None:
        self.MPI, self.me, self.n = comm.MPI, comm.node_rank, comm.node_size
        self.records, self.records_win = comm.windows.shared_window(self.n, dtype)
        self.board, self.board_win = comm.windows.shared_window(2 * (self.n + 1), np.int64)
        self.base = 0  # where this generation's board starts

    def begin(self, generation: int) -> None:
        """Use generation's board; the host clears the other one for the next generation."""
        self.base = (generation % 2) * (self.n + 1)
        if self.me == 0:
            for i in range(self.n + 1):
                self._board_op((self.n + 1 - self.base) + i, 0, self.MPI.REPLACE)

    def _board_op(self, index: int, value: int, op) -> int:
        return fetch_and_op(self.board_win, 0, index, value, op)

    def _claim(self, rank: int, expect: int, value: int) -> bool:
        result = np.empty(1, np.int64)
        self.board_win.Compare_and_swap(np.array([value], np.int64), np.array([expect], np.int64), result, 0,
                                        self.base + 1 + rank)
        self.board_win.Flush(0)
        return int(result[0]) == expect

    def _words(self) -> np.ndarray:
        self.board_win.Sync()
        return self.board[self.base + 1 : self.base + 1 + self.n]

    def _idle(self) -> int:
        """How many ranks wait (those claimed by a sender included)."""
        self.board_win.Sync()
        return int(self.board[self.base])

    def _receivers(self) -> list[int]:
        """The waiting ranks, in the order a sender tries them."""
        return [r for r in np.flatnonzero(self._words() == self.WAITING).tolist() if r != self.me]

    def _deliver(self, rank: int, fill: Callable[[np.void], None]) -> None:
        fill(self.records[rank])
        self.records_win.Sync()
        self._board_op(self.base + 1 + rank, self.DELIVERED, self.MPI.REPLACE)

    def _received(self) -> np.void | None:
        """A copy of the record delivered to this rank, if one is."""
        if self._words()[self.me] != self.DELIVERED:
            return None
        self.records_win.Sync()
        return self.records[self.me].copy()

    def wanted(self) -> bool:
        """Whether a rank waits for work."""
        return bool((self._words() == self.WAITING).any())

    def give(self, fill: Callable[[np.void], None]) -> bool:
        """Claim a waiting rank, `fill` its record and deliver it; False if none waits any more."""
        for rank in self._receivers():
            if self._claim(rank, self.WAITING, self.CLAIMED):
                self._deliver(rank, fill)
                return True
        return False

    def take(self, poll: Callable[[], object] | None) -> np.void | None:
        """Wait for a record (a copy) or for the end of the generation (None)."""
        self._board_op(self.base + 1 + self.me, self.WAITING, self.MPI.REPLACE)
        self._board_op(self.base, 1, self.MPI.SUM)
        pause = self.POLL_S
        while True:
            record = self._received()
            if record is not None:
                self._board_op(self.base + 1 + self.me, self.BUSY, self.MPI.REPLACE)
                self._board_op(self.base, -1, self.MPI.SUM)
                return record
            if self._idle() == self.n and self._claim(self.me, self.WAITING, self.BUSY):
                return None
            if poll is not None:
                poll()
            time.sleep(pause)
            pause = min(2 * pause, self.BACKOFF_S)


class ClusterHandover(NodeHandover):
    """The same hand-over across nodes, where no memory is shared: the board lives on world rank 0 (its
    host) and is reached by MPI atomics; each rank's record and a delivery flag live in its own memory,
    where a sender puts the record, then sets the flag, so that a waiting rank polls only local memory. The
    number of waiting ranks, which busy ranks ask at every poll point, is cached in node-shared memory and
    fetched from rank 0 by whichever rank of the node asks when the copy is older than CACHE_S
    (WAIT_CACHE_S for a waiting rank asking whether the generation is over): rank 0 then serves at most 100
    fetches a second per node (1,000 from nodes with waiting ranks), not one per rank and poll. A sender
    tries the ranks of its own node first."""

    CACHE_S = 0.01  # for a busy rank's question; a waiting rank's question about the end: WAIT_CACHE_S
    WAIT_CACHE_S = 0.001

    def __init__(self, comm: MpiComm, dtype: np.dtype) -> None:
        self.MPI, self.me, self.n, self.dtype = comm.MPI, comm.rank, comm.size, dtype
        self.board_win = comm.windows.world_window(2 * (self.n + 1) if self.me == 0 else 0, 8)
        # this rank's record: byte 0 the delivery flag (int64), from byte 8 the record itself
        self.records_win = comm.windows.world_window(1 + -(-dtype.itemsize // 8), 1)
        self.own = np.frombuffer(self.records_win.tomemory(), np.uint8)
        self.cache, self.cache_win = comm.windows.shared_window(2, np.int64)  # (generation << 32 | idle, ns)
        self.mates = np.flatnonzero(comm.node_of == comm.node_of[self.me])
        self.progress = comm.windows.progress
        self.base, self.generation = 0, 0

    def begin(self, generation: int) -> None:
        self.generation = generation
        super().begin(generation)

    def _words(self) -> np.ndarray:
        words = np.empty(self.n, np.int64)
        self.board_win.Get_accumulate(np.empty(self.n, np.int64), words, 0,
                                      (self.base + 1, self.n, self.MPI.INT64_T), self.MPI.NO_OP)
        self.board_win.Flush(0)
        return words

    def _idle(self, max_age: float = WAIT_CACHE_S) -> int:
        """The cached count, refreshed from the host when older than `max_age` or from another generation."""
        now = time.monotonic_ns()
        self.cache_win.Sync()
        packed, stamp = int(self.cache[0]), int(self.cache[1])
        if packed >> 32 == self.generation and now - stamp < max_age * 1e9:
            return packed & 0xFFFFFFFF
        return self._remember(self._board_op(self.base, 0, self.MPI.SUM), now)

    def _remember(self, idle: int, now: int) -> int:
        """Cache `idle` for this generation, as of `now` (ns), for the node's ranks."""
        self.cache[0], self.cache[1] = self.generation << 32 | idle, now
        self.cache_win.Sync()
        return idle

    def _receivers(self) -> list[int]:
        waiting = self._words() == self.WAITING
        waiting[self.me] = False
        waiting_mates = waiting[self.mates]
        waiting[self.mates] = False
        order = np.roll(np.arange(self.n), -self.me)  # senders elsewhere start at different ranks
        receivers = self.mates[waiting_mates].tolist() + order[waiting[order]].tolist()
        if not receivers:  # every waiting rank is claimed: ask the host again only after CACHE_S
            self._remember(0, time.monotonic_ns())
        return receivers

    def _deliver(self, rank: int, fill: Callable[[np.void], None]) -> None:
        record = np.zeros(1, self.dtype)
        fill(record[0])
        self.records_win.Put([record.view(np.uint8), self.MPI.BYTE], rank,
                             (8, self.dtype.itemsize, self.MPI.BYTE))
        self.records_win.Flush(rank)
        fetch_and_op(self.records_win, rank, 0, 1, self.MPI.REPLACE)

    def _received(self) -> np.void | None:
        self.progress()  # remote puts and atomics into this rank's memory may need it inside MPI
        self.records_win.Sync()
        if self.own[:8].view(np.int64)[0] == 0:
            return None
        record = self.own[8 : 8 + self.dtype.itemsize].copy().view(self.dtype)[0]
        fetch_and_op(self.records_win, self.me, 0, 0, self.MPI.REPLACE)
        return record

    def wanted(self) -> bool:
        return self._idle(self.CACHE_S) > 0
