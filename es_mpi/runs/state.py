"""Everything a run carries from one generation to the next, and its one (de)serialisation: named arrays
and scalars, which the checkpoint writes and the start-up broadcast sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from es_mpi.runs.schema import ConfigError
from es_mpi.strategies.base import Saved, Strategy

COUNTERS = ("generation", "timesteps", "episodes", "wall_s")
REF_BATCH = "ref_batch"
REF_BATCH_DESCRIPTION = ("pixel value 0-255", "cnn: virtual batch norm reference batch (observations of random play)")


@dataclass(frozen=True)
class TrainState:
    generation: int  # generations completed: the index of the next one
    timesteps: int  # training env steps spent (evaluation steps not counted)
    episodes: int  # training episodes run
    wall_s: float  # training wall time so far, summed over restarts
    strategy: Any  # the strategy's own state (parameters, optimiser, statistics, ...)
    ref_batch: np.ndarray | None = None  # cnn: the VBN reference batch (uint8 observations), fixed per run


def initial_state(strategy: Strategy) -> TrainState:
    return TrainState(0, 0, 0, 0.0, strategy.init())


def save_state(state: TrainState, strategy: Strategy) -> Saved:
    saved = strategy.save(state.strategy)
    arrays = dict(saved.arrays)
    if state.ref_batch is not None:
        arrays[REF_BATCH] = state.ref_batch
    scalars = {name: getattr(state, name) for name in COUNTERS}
    return Saved(arrays, {**scalars, **saved.scalars})


def load_state(saved: Saved, strategy: Strategy, source: str) -> TrainState:
    """The state `save_state` gave; a missing name is a ConfigError naming `source`."""
    try:
        s = saved.scalars
        return TrainState(int(s["generation"]), int(s["timesteps"]), int(s["episodes"]), float(s["wall_s"]),
                          strategy.load(saved), saved.arrays.get(REF_BATCH))
    except KeyError as exc:
        raise ConfigError(f"{source}: checkpoint lacks {exc} for strategy {strategy.kind}; restore it or use a "
                          "new --run-dir") from None


def descriptions(strategy: Strategy) -> dict[str, tuple[str, str]]:
    """(units, description) of every array a state of `strategy` may save."""
    return {**strategy.arrays, REF_BATCH: REF_BATCH_DESCRIPTION}
