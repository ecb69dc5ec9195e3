"""checkpoint.h5: a run's saved state (es_mpi.runs.state), made in memory and written atomically (temporary
file, fsync, rename) by es_mpi.runs.storage."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import h5py
import numpy as np

from es_mpi import __version__
from es_mpi.runs.job import ConfigError, Job, job_from_dict, parse_yaml
from es_mpi.runs.storage import RunDirectory
from es_mpi.strategies.base import Saved

SCHEMA_VERSION = 1
CHECKPOINT = "checkpoint.h5"
PREVIOUS = "checkpoint.prev.h5"
# Fault-injection for the crash-during-write test: seconds to sleep after the new file is written and
# before it replaces the old one. Unset in normal use.
_PAUSE_VAR = "ES_MPI_TEST_CHECKPOINT_PAUSE"


def checkpoint_image(saved: Saved, descriptions: dict[str, tuple[str, str]], attrs: dict) -> bytes:
    """The bytes of checkpoint.h5 for a saved state (es_mpi.runs.state) and `attrs` (job text, digests, noise
    identity), made in memory: its size is known before anything is written, and the write is a plain
    os.write whose failure HDF5 never sees. A scalar named 'group/name' is an attribute of that group."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name, data in saved.arrays.items():
            # fletcher32 checksums let a load detect flipped or truncated data; frames compress well.
            packed = {"compression": "gzip", "compression_opts": 1} if data.dtype == np.uint8 else {}
            ds = f.create_dataset(name, data=data, chunks=True, fletcher32=True, **packed)
            ds.attrs["units"], ds.attrs["description"] = descriptions[name]
        root = {"schema_version": SCHEMA_VERSION, "es_mpi_version": __version__, **attrs}
        for name, value in {**saved.scalars, **root}.items():
            group, _, item = name.rpartition("/")
            (f.require_group(group) if group else f).attrs[item] = value
    return buffer.getvalue()


def write_checkpoint(run_dir: RunDirectory, image: bytes) -> Path:
    """Replace checkpoint.h5 by `image` (checkpoint_image) so that a crash at any moment leaves a complete
    checkpoint.h5 (old or new); the one before it stays as checkpoint.prev.h5. A failed write (full disk,
    quota, read-only or vanished directory) raises StorageError, leaving no temporary file and the old
    checkpoint in place."""

    def pause() -> None:
        if os.environ.get(_PAUSE_VAR):
            time.sleep(float(os.environ[_PAUSE_VAR]))

    run_dir.write(CHECKPOINT, image, keep_previous=PREVIOUS, before_rename=pause)
    return run_dir.path / CHECKPOINT


def read_checkpoint(path: Path) -> tuple[Saved, dict]:
    """The saved state (every dataset, every group attribute as 'group/name', the root attributes) and the
    root attributes; any unreadable, corrupt or foreign file is a ConfigError."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = _plain(f.attrs)
            version = int(attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise ConfigError(
                    f"{path}: checkpoint schema_version {version} is not {SCHEMA_VERSION}, which this es-mpi "
                    f"{__version__} reads; use the es-mpi version that wrote it"
                )
            arrays, scalars = {}, dict(attrs)

            def visit(name: str, item) -> None:
                if isinstance(item, h5py.Dataset):
                    arrays[name] = item[...]
                else:
                    scalars.update({f"{name}/{k}": v for k, v in _plain(item.attrs).items()})

            f.visititems(visit)
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"{path}: checkpoint is unreadable or corrupt ({exc}); restore it or use a new --run-dir"
        ) from None
    return Saved(arrays, scalars), attrs


def checkpoint_job(attrs: dict, path: Path) -> Job:
    """The job a checkpoint was written for (its `job_yaml` attribute)."""
    source = f"{path}:job_yaml"
    return job_from_dict(parse_yaml(str(attrs.get("job_yaml", "")), source), source)


def _plain(attrs) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
