"""The only module that talks MPI. Everything else takes a `Comm` and runs unchanged on one process.

No pickle crosses ranks: start-up messages are JSON text and raw numpy buffers.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np


class LocalComm:
    """One process, no MPI: collectives are identities."""

    rank = 0
    size = 1

    def bcast_json(self, obj: Any) -> Any:
        return json.loads(json.dumps(obj))

    def bcast_array(self, arr: np.ndarray | None) -> np.ndarray:
        return np.array(arr, copy=True)

    def gather_blocks(self, local: np.ndarray) -> list[np.ndarray]:
        return [np.array(local, dtype=np.float64, copy=True)]

    def abort(self, code: int) -> None:
        os._exit(code)


class MpiComm(LocalComm):
    """COMM_WORLD through mpi4py's buffer (upper-case) methods."""

    def __init__(self, comm) -> None:
        from mpi4py import MPI

        self._double = MPI.DOUBLE
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

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
        self.comm.Allgather(np.array([local.size], dtype=np.int64), counts)
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = np.empty(int(counts.sum()), dtype=np.float64)
        self.comm.Allgatherv(local, [out, counts.tolist(), displs.tolist(), self._double])
        return [out[d : d + c] for d, c in zip(displs, counts)]

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def get_comm() -> LocalComm:
    """MPI's world when mpi4py and an MPI library are there (size 1 when launched alone), else LocalComm."""
    try:
        from mpi4py import MPI
    except ImportError:
        return LocalComm()
    return MpiComm(MPI.COMM_WORLD)
