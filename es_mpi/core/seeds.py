"""Every random stream of a run, derived from the run seed and a position (generation, pair, purpose).

Deriving instead of carrying generator state is what makes results independent of which rank ran a
pair, and makes a checkpoint need no RNG state.
"""

from __future__ import annotations

import numpy as np

OFFSETS, ENV, ACTION_NOISE, OBS_STATS, EVAL, INIT = range(6)


def stream(*keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in keys])))


def derive_seed(*keys: int) -> int:
    """A 31-bit seed (what gymnasium's reset accepts everywhere) for the given position."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] >> 1)
