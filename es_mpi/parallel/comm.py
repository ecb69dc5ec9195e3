"""The only module that talks MPI. Everything else takes a `LocalComm` (or its subclass `MpiComm`) and runs
unchanged on one process.

No pickle crosses ranks: start-up messages are JSON text and raw numpy buffers. Within a node, ranks
share memory (MPI-3 shared windows) for the noise table, the gradient, the task counter and the board
over which they hand episodes in flight to each other.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from es_mpi.parallel.tasks import COUNTER_MODES, COUNTER_VAR, TaskCounters
from es_mpi.parallel.windows import Windows, fetch_and_op

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
        """The hand-over board for episode records of `dtype` (None: no other rank to hand to)."""
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
        """Across nodes with the global counters, a market on rank 0; else within the node, in node-shared
        memory (so that the `node` counters keep all one-sided traffic within nodes)."""
        if self.nodes > 1 and self.counters.mode == "global":
            return ClusterHandover(self, dtype)
        return NodeHandover(self, dtype) if self.node_size > 1 else None

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


class NodeHandover:
    """Node-shared memory over which a rank with several episodes in flight hands one to a rank of its
    node that has none (es_mpi.envs.handover), so that a generation's last episodes do not share one core
    while others idle. Per generation one board (two, used alternately like the task counters, and
    reset by the host, the node's first rank, while the other is in use): the number of ranks that ran
    out of work, and a word per rank: 0 busy, 1 waiting, 2 claimed by a sender, 3 record delivered; plus
    one record slot per rank. Every change of a word is an MPI atomic; reads are plain loads after
    Win.Sync.

    The generation ends for a rank when every rank waits and nothing is being delivered: only a busy rank
    gives, and a rank that receives plays that one episode alone and gives nothing."""

    BUSY, WAITING, CLAIMED, DELIVERED = range(4)
    # A waiting rank's checks back off to this: more often would take CPU from ranks still working on
    # shared cores, and an episode handed over runs for far longer than the delay.
    BACKOFF_S = 1e-3

    def __init__(self, comm: MpiComm, dtype: np.dtype) -> None:
        self.MPI, self.me, self.n = comm.MPI, comm.node_rank, comm.node_size
        self.mailbox, self.mailbox_win = comm.windows.shared_window(self.n, dtype)
        self.board, self.win = comm.windows.shared_window(2 * (self.n + 1), np.int64)
        self.base = 0

    def begin(self, generation: int) -> None:
        """Use generation's board; the host clears the other one for the next generation."""
        self.base = (generation % 2) * (self.n + 1)
        if self.me == 0:
            for i in range(self.n + 1):
                self._op((self.n + 1 - self.base) + i, 0, self.MPI.REPLACE)

    def _op(self, index: int, value: int, op) -> int:
        return fetch_and_op(self.win, 0, index, value, op)

    def _claim(self, rank: int, expect: int, value: int) -> bool:
        result = np.empty(1, np.int64)
        self.win.Compare_and_swap(np.array([value], np.int64), np.array([expect], np.int64), result, 0,
                                  self.base + 1 + rank)
        self.win.Flush(0)
        return int(result[0]) == expect

    def _words(self) -> np.ndarray:
        self.win.Sync()
        return self.board[self.base + 1 : self.base + 1 + self.n]

    def _idle(self) -> int:
        """How many ranks wait (those claimed by a sender included)."""
        self.win.Sync()
        return int(self.board[self.base])

    def _receivers(self) -> list[int]:
        """The waiting ranks, in the order a sender tries them."""
        return [r for r in np.flatnonzero(self._words() == self.WAITING).tolist() if r != self.me]

    def _deliver(self, rank: int, fill: Callable[[np.void], None]) -> None:
        fill(self.mailbox[rank])
        self.mailbox_win.Sync()
        self._op(self.base + 1 + rank, self.DELIVERED, self.MPI.REPLACE)

    def _received(self) -> np.void | None:
        """A copy of the record delivered to this rank, if one is."""
        if self._words()[self.me] != self.DELIVERED:
            return None
        self.mailbox_win.Sync()
        return self.mailbox[self.me].copy()

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
        self._op(self.base + 1 + self.me, self.WAITING, self.MPI.REPLACE)
        self._op(self.base, 1, self.MPI.SUM)
        pause = _POLL_S
        while True:
            record = self._received()
            if record is not None:
                self._op(self.base + 1 + self.me, self.BUSY, self.MPI.REPLACE)
                self._op(self.base, -1, self.MPI.SUM)
                return record
            if self._idle() == self.n and self._claim(self.me, self.WAITING, self.BUSY):
                return None
            if poll is not None:
                poll()
            time.sleep(pause)
            pause = min(2 * pause, self.BACKOFF_S)


class ClusterHandover(NodeHandover):
    """The same hand-over across nodes, where no memory is shared: the board lives on world rank 0 (its
    host) and is reached by MPI atomics; each rank's record slot and a delivery flag live in its own
    memory, where a sender puts the record, then sets the flag, so that a waiting rank polls only local
    memory. The number of waiting ranks, which busy ranks ask at every poll point, is cached in
    node-shared memory and fetched from rank 0 by whichever rank of the node asks when the copy is older
    than CACHE_S (WAIT_CACHE_S for a waiting rank asking whether the generation is over): rank 0 then
    serves at most 100 fetches a second per node (1,000 from nodes with waiting ranks), not one per rank
    and poll. A sender tries the ranks of its own node first."""

    CACHE_S = 0.01  # for a busy rank's question; a waiting rank's question about the end: WAIT_CACHE_S
    WAIT_CACHE_S = 0.001

    def __init__(self, comm: MpiComm, dtype: np.dtype) -> None:
        self.MPI, self.me, self.n, self.dtype = comm.MPI, comm.rank, comm.size, dtype
        self.win = comm.windows.world_window(2 * (self.n + 1) if self.me == 0 else 0, 8)
        # byte 0: the delivery flag (int64), from byte 8: the record
        self.slot_win = comm.windows.world_window(1 + -(-dtype.itemsize // 8), 1)
        self.slot = np.frombuffer(self.slot_win.tomemory(), np.uint8)
        self.cache, self.cache_win = comm.windows.shared_window(2, np.int64)  # (generation << 32 | idle, time in ns)
        self.mates = np.flatnonzero(comm.node_of == comm.node_of[self.me])
        self.progress = comm.windows.progress
        self.base, self.generation = 0, 0

    def begin(self, generation: int) -> None:
        self.generation = generation
        super().begin(generation)

    def _words(self) -> np.ndarray:
        words = np.empty(self.n, np.int64)
        self.win.Get_accumulate(np.empty(self.n, np.int64), words, 0, (self.base + 1, self.n, self.MPI.INT64_T),
                                self.MPI.NO_OP)
        self.win.Flush(0)
        return words

    def _idle(self, max_age: float = WAIT_CACHE_S) -> int:
        """The cached count, refreshed from the host when older than `max_age` or from another generation."""
        now = time.monotonic_ns()
        self.cache_win.Sync()
        packed, stamp = int(self.cache[0]), int(self.cache[1])
        if packed >> 32 == self.generation and now - stamp < max_age * 1e9:
            return packed & 0xFFFFFFFF
        return self._remember(self._op(self.base, 0, self.MPI.SUM), now)

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
        self.slot_win.Put([record.view(np.uint8), self.MPI.BYTE], rank, (8, self.dtype.itemsize, self.MPI.BYTE))
        self.slot_win.Flush(rank)
        fetch_and_op(self.slot_win, rank, 0, 1, self.MPI.REPLACE)

    def _received(self) -> np.void | None:
        self.progress()  # remote puts and atomics into this rank's memory may need it inside MPI
        self.slot_win.Sync()
        if self.slot[:8].view(np.int64)[0] == 0:
            return None
        record = self.slot[8 : 8 + self.dtype.itemsize].copy().view(self.dtype)[0]
        fetch_and_op(self.slot_win, self.me, 0, 0, self.MPI.REPLACE)
        return record

    def wanted(self) -> bool:
        return self._idle(self.CACHE_S) > 0


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
