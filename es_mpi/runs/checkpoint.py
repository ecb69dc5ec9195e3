"""checkpoint.h5: the full TrainState, written atomically (temporary file, fsync, rename)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from es_mpi import __version__
from es_mpi.core.obs_stats import ObsStats
from es_mpi.core.optimizers import OptimizerState
from es_mpi.runs.job import ConfigError
from es_mpi.runs.state import TrainState

SCHEMA_VERSION = 1
CHECKPOINT = "checkpoint.h5"
PREVIOUS = "checkpoint.prev.h5"
# Fault-injection for the crash-during-write test: seconds to sleep after the new file is written and
# before it replaces the old one. Unset in normal use.
_PAUSE_VAR = "ES_MPI_TEST_CHECKPOINT_PAUSE"

_DATASETS = {
    "theta": ("1", "policy parameters (float32, flat, layer by layer: W then b)"),
    "optimizer/m": ("1", "Adam first moment, or SGD velocity"),
    "optimizer/v": ("1", "Adam second moment (unused by SGD)"),
    "obs_stats/sum": ("observation units", "sum of raw observations seen by the statistics"),
    "obs_stats/sumsq": ("observation units^2", "sum of squared raw observations"),
    "ref_batch": ("pixel value 0-255", "cnn: virtual batch norm reference batch (observations of random play)"),
}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(run_dir: Path, state: TrainState, attrs: dict) -> Path:
    """Write the state and `attrs` (job text, digests, noise identity) so that a crash at any moment
    leaves a complete checkpoint.h5 (old or new); the one before it stays as checkpoint.prev.h5."""
    final = Path(run_dir) / CHECKPOINT
    tmp = final.with_name("." + CHECKPOINT + ".tmp")
    arrays = {
        "theta": state.theta,
        "optimizer/m": state.opt.m,
        "optimizer/v": state.opt.v,
        "obs_stats/sum": state.obs.total,
        "obs_stats/sumsq": state.obs.total_sq,
    }
    if state.ref_batch is not None:
        arrays["ref_batch"] = state.ref_batch
    with h5py.File(tmp, "w") as f:
        for name, data in arrays.items():
            # fletcher32 checksums let a load detect flipped or truncated data; frames compress well.
            packed = {"compression": "gzip", "compression_opts": 1} if name == "ref_batch" else {}
            ds = f.create_dataset(name, data=data, chunks=True, fletcher32=True, **packed)
            ds.attrs["units"], ds.attrs["description"] = _DATASETS[name]
        f["optimizer"].attrs["step"] = state.opt.step
        f["obs_stats"].attrs["count"] = state.obs.count
        root = {
            "schema_version": SCHEMA_VERSION,
            "es_mpi_version": __version__,
            "generation": state.generation,
            "timesteps": state.timesteps,
            "episodes": state.episodes,
            "episode_cap": state.episode_cap,
            "wall_s": state.wall_s,
            **attrs,
        }
        for key, value in root.items():
            f.attrs[key] = value
        f.flush()
        os.fsync(f.id.get_vfd_handle())
    if os.environ.get(_PAUSE_VAR):
        time.sleep(float(os.environ[_PAUSE_VAR]))
    if final.exists():
        # A hard link keeps checkpoint.h5 in place while the previous one is kept under its own name.
        prev_tmp = final.with_name("." + PREVIOUS + ".tmp")
        prev_tmp.unlink(missing_ok=True)
        os.link(final, prev_tmp)
        os.replace(prev_tmp, final.with_name(PREVIOUS))
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def read_checkpoint(path: Path) -> tuple[TrainState, dict]:
    """The state and root attributes; any unreadable, corrupt or foreign file is a ConfigError."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            version = int(attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise ConfigError(
                    f"{path}: checkpoint schema_version {version} is not {SCHEMA_VERSION}, which this es-mpi "
                    f"{__version__} reads; use the es-mpi version that wrote it"
                )
            state = TrainState(
                generation=int(attrs["generation"]),
                timesteps=int(attrs["timesteps"]),
                episodes=int(attrs["episodes"]),
                episode_cap=int(attrs["episode_cap"]),
                wall_s=float(attrs["wall_s"]),
                theta=f["theta"][...],
                opt=OptimizerState(int(f["optimizer"].attrs["step"]), f["optimizer/m"][...], f["optimizer/v"][...]),
                obs=ObsStats(float(f["obs_stats"].attrs["count"]), f["obs_stats/sum"][...], f["obs_stats/sumsq"][...]),
                ref_batch=f["ref_batch"][...] if "ref_batch" in f else None,
            )
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"{path}: checkpoint is unreadable or corrupt ({exc}); restore it or use a new --run-dir"
        ) from None
    return state, attrs
