"""The virtual batch normalisation reference batch: observations of random play, collected once per run.

Collected on rank 0 at the start of a new run, broadcast to every rank and stored in checkpoint.h5, so
every rank and every resumed run normalises with the very same batch. Its content depends only on the
run seed and the env settings.
"""

from __future__ import annotations

import numpy as np

from es_mpi.core import seeds

# Seed purpose of the reference batch; seeds.py's purposes are 0..5 and evaluate.py's is 1000.
REF_BATCH = 1001
# Chance that a random-play observation joins the batch: spreads the batch over about 20x its size in
# steps, so it is not a run of near-identical consecutive frames (public ES Atari ports use 0.05).
KEEP = 0.05


def collect_reference_batch(env, size: int, run_seed: int) -> np.ndarray:
    """(size, *obs shape) observations (the env's dtype, uint8 for ALE) met while playing uniformly
    random actions, episode k starting from env seed derive_seed(run_seed, REF_BATCH, k)."""
    rng = seeds.stream(run_seed, REF_BATCH)
    episode = 0
    obs, _ = env.reset(seed=seeds.derive_seed(run_seed, REF_BATCH, episode))
    kept = []
    while len(kept) < size:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seeds.derive_seed(run_seed, REF_BATCH, episode))
        elif rng.random() < KEEP:
            kept.append(np.array(obs, copy=True))
    return np.stack(kept)
