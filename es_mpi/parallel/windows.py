"""MPI windows, the memory that ranks reach one-sidedly: node-shared arrays, and int64 words that other ranks
change by MPI atomics (the task counters' and the hand-over's). One `Windows` per communicator allocates them
all and frees them at exit.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import Any

import numpy as np


class Windows:
    """The window factory of one communicator: `world` (all ranks) and `node` (the ranks sharing memory)."""

    def __init__(self, MPI: Any, world: Any, node: Any) -> None:
        self.MPI, self.world, self.node = MPI, world, node
        self._node_first = node.Get_rank() == 0  # allocates and fills the node-shared arrays
        self._windows = []
        self._locked = []  # windows open for passive-target atomics (Lock_all) until the exit hook
        atexit.register(self._free)

    def node_array(self, size: int, dtype: Any, fill: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """An array shared by the node's ranks, zeroed and then filled once by `fill` on the node's first rank."""
        return self._allocate_shared(size, np.dtype(dtype), fill)[0]

    def shared_window(self, size: int, dtype: Any) -> tuple[np.ndarray, Any]:
        """A zeroed node-shared array and its window, open for atomics: counters, boards and records."""
        arr, win = self._allocate_shared(size, np.dtype(dtype), None)
        self._open_for_atomics(win)
        return arr, win

    def world_window(self, words: int, unit: int) -> Any:
        """A window over all ranks with `words` zeroed 8-byte words of this rank's own memory (addressed in
        units of `unit` bytes), open for atomics: what remote ranks reach when no memory is shared."""
        win = self.MPI.Win.Allocate(8 * words, unit, comm=self.world)
        if words:
            np.frombuffer(win.tomemory(), dtype=np.int64)[:] = 0
        self.world.Barrier()
        self._windows.append(win)
        self._open_for_atomics(win)
        return win

    def progress(self) -> None:
        """Enter MPI for a moment: MPICH serves other ranks' puts and atomics into this rank's memory only
        while this rank is inside MPI."""
        self.world.Iprobe()

    def _allocate_shared(self, size: int, dtype: np.dtype,
                         fill: Callable[[np.ndarray], None] | None) -> tuple[np.ndarray, Any]:
        nbytes = size * dtype.itemsize if self._node_first else 0
        win = self.MPI.Win.Allocate_shared(nbytes, dtype.itemsize, comm=self.node)
        self._windows.append(win)
        buf, _ = win.Shared_query(0)
        arr = np.ndarray(buffer=buf, dtype=dtype, shape=(size,))
        if self._node_first:
            arr[...] = 0
            if fill:
                fill(arr)
        self.node.Barrier()
        return arr, win

    def _open_for_atomics(self, win: Any) -> None:
        """Start a passive-target epoch on `win` (MPI atomics and Win.Sync need one) until the exit hook."""
        win.Lock_all()
        self._locked.append(win)

    def _free(self) -> None:
        """Close the windows before mpi4py finalizes MPI (its own exit hook, registered earlier, runs later):
        an open window makes UCX print warnings at the end of every run. Collective: every rank gets here
        when the run ends normally, after the engine's final barrier."""
        for win in self._locked:
            win.Unlock_all()
        for win in reversed(self._windows):
            win.Free()


def fetch_and_op(win: Any, target: int, index: int, value: int, op: Any) -> int:
    """One int64 atomic on `target`'s memory of `win` at `index`, completed before returning; the old value."""
    result = np.empty(1, np.int64)
    win.Fetch_and_op(np.array([value], np.int64), result, target, index, op)
    win.Flush(target)
    return int(result[0])
