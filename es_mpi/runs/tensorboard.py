"""TensorBoard event files in RUN_DIR/tensorboard/, written by rank 0 while the run trains (run.tensorboard).

Every metrics.h5 column is a scalar against training timesteps, the job's keys are hyperparameters (the
HPARAMS tab) and its YAML a text entry. metrics.h5 stays the source of truth: each start, fresh or resumed,
writes a new events file that first re-emits the rows metrics.h5 kept, then removes the events files of
earlier starts, so the curves hold exactly metrics.h5's rows: none that a resume dropped (rows after the
checkpoint), none twice, and a run that turns the switch on half-way gets its whole history.

The protocol buffers are tensorboardX's (the `tensorboard` extra, no TensorFlow or PyTorch); the records are
framed here (TFRecord: length, masked CRC-32C of it, data, masked CRC-32C of that) and appended with
os.write, so that a full disk is a StorageError like every other write of the run (es_mpi.runs.storage).
"""

from __future__ import annotations

import os
import socket
import struct
import time

import numpy as np

from es_mpi.runs.schema import ConfigError
from es_mpi.runs.storage import RunDirectory, StorageError, describe, fix_for

BOARD_DIR = "tensorboard"
# TensorBoard reads the files whose name holds "tfevents"; this prefix is the one TensorFlow writes.
PREFIX = "events.out.tfevents."
EXTRA = "pip install 'es-mpi[tensorboard]'"
# Scalars of the evaluation, which scores the parameters before the generation's update: plotted at the steps
# those parameters had seen (eval_timesteps), not at the generation's.
EVALUATION = ("eval_return", "eval_length")
# Shown in the HPARAMS tab beside the hyperparameters (their last values).
HPARAM_METRICS = ("return_mean", "return_max", "eval_return")


def require_writer(source: str) -> None:
    """ConfigError (exit 2, before anything is touched) when run.tensorboard is on without tensorboardX."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise ConfigError(f"{source}: run.tensorboard is true but tensorboardX is not installed; {EXTRA}, "
                          "or set run.tensorboard: false") from None


def _record(data: bytes) -> bytes:
    from tensorboardX.record_writer import masked_crc32c

    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def _hparam(value):
    """A job value as the HPARAMS tab takes it: numbers, booleans and text; lists, mappings and null as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


def _present(value, dtype: str) -> bool:
    """False for metrics.h5's 'no value' markers: NaN in float columns, -1 in integer ones."""
    return bool(np.isfinite(value)) if dtype == "f8" else int(value) != -1


class Board:
    """One events file of this start. `rows` are the columns metrics.h5 kept (written again first),
    `columns` name: dtype of each scalar column, `hparams` the job's dotted keys and values, and
    `wall_start` the time.time() at which training time (wall_s) was 0, so that TensorBoard's relative time
    axis is the run's training time over all restarts."""

    def __init__(self, run_dir: RunDirectory, rows: dict[str, np.ndarray], columns: dict[str, str],
                 hparams: dict, job_yaml: str, wall_start: float) -> None:
        from tensorboardX import summary
        from tensorboardX.proto.event_pb2 import Event

        self.columns, self.wall_start = columns, wall_start
        self.dir = RunDirectory(run_dir.path / BOARD_DIR)
        earlier = [name for name in os.listdir(self.dir.fd) if name.startswith(PREFIX)]
        self.name = f"{PREFIX}{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.dir.path / self.name
        now = time.time()
        head = [Event(wall_time=now, file_version="brain.Event:2"),
                Event(wall_time=now, summary=summary.text("job", "    " + job_yaml.replace("\n", "\n    ")))]
        metrics = {name: 0.0 for name in HPARAM_METRICS if name in columns}
        head += [Event(wall_time=now, summary=s)
                 for s in summary.hparams({k: _hparam(v) for k, v in hparams.items()}, metrics)]
        kept = len(rows.get("timesteps", ()))
        image = b"".join(_record(e.SerializeToString()) for e in head)
        image += b"".join(self._row_record({name: rows[name][i] for name in rows}) for i in range(kept))
        try:
            self.fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644,
                              dir_fd=self.dir.fd)
        except OSError as exc:
            self.dir.close()
            raise StorageError(f"{self.path}: {describe(exc)}", fix_for(exc)) from None
        self._write(image)
        for name in earlier:  # only now: a crash before this line leaves them to the next start
            try:
                os.unlink(name, dir_fd=self.dir.fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"{self.dir.path / name}: cannot remove an earlier events file: "
                                   f"{describe(exc)}", fix_for(exc)) from None

    def _row_record(self, row: dict) -> bytes:
        """The row's scalars at step `timesteps`; the evaluation's at `eval_timesteps`, the steps its
        parameters had seen (they are those before the generation's update)."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        present = [name for name, dtype in self.columns.items() if name in row and _present(row[name], dtype)]
        records = b""
        for names, step, wall in (([n for n in present if n not in EVALUATION], "timesteps", "wall_s"),
                                  ([n for n in present if n in EVALUATION], "eval_timesteps", "eval_wall_s")):
            if names:
                values = [Summary.Value(tag=name, simple_value=float(row[name])) for name in names]
                event = Event(wall_time=self.wall_start + float(row[wall]), step=int(row[step]),
                              summary=Summary(value=values))
                records += _record(event.SerializeToString())
        return records

    def append(self, row: dict) -> None:
        """One generation's row (the values metrics.h5 holds for it)."""
        self._write(self._row_record(row))

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            raise StorageError(f"{self.path}: {describe(exc)}", fix_for(exc)) from None

    def close(self) -> None:
        os.close(self.fd)
        self.dir.close()
