"""An episode in flight as a fixed-size record, so that an idle rank, of its node or another, can finish it.

Near the end of a generation a rank may hold several episodes while other ranks have none left;
it writes one into a record, and the idle rank loads it into its own gymnasium env and plays on. What the
record holds is everything the rest of the episode reads: MuJoCo's integration state (what `mj_step`
needs), the body positions a v5 reward reads before a step (`xpos`, `xipos`: derived fields, which the
integration state does not restore), the current observation, return and step count, and the action-noise
generator mid-stream with its current block. The policy's parameters are not in it: the receiving rank
rebuilds them from the task number, like any other task. The continuation is bit-identical to the episode
never having moved (tests/test_handover.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from es_mpi.envs.rollout import NOISE_BLOCK, Episode, EpisodeSpec, finish_episode
from es_mpi.policies.mlp import MlpPolicy

_WORD = (1 << 64) - 1


def record_dtype(env, obs_dim: int, act_dim: int) -> np.dtype:
    """The record of one episode of `env` (a MuJoCo gymnasium env, unwrapped)."""
    import mujoco

    nstate, nbody = mujoco.mj_stateSize(env.model, mujoco.mjtState.mjSTATE_INTEGRATION), env.model.nbody
    return np.dtype([
        ("task", np.int64), ("steps", np.int64), ("total", np.float64),
        ("rng", np.uint64, 4), ("has_uint32", np.int64), ("uinteger", np.uint64),
        ("noise", np.float32, (NOISE_BLOCK, act_dim)), ("obs", np.float64, obs_dim),
        ("state", np.float64, nstate), ("xpos", np.float64, (nbody, 3)), ("xipos", np.float64, (nbody, 3)),
    ])


def movable(spec: EpisodeSpec) -> bool:
    """Whether an episode can leave its rank: not one that collects observation statistics (the raw
    observations seen so far would have to travel too; they are 1% of episodes), and its noise
    generator, if any, is a PCG64 (the one es-mpi's seeds make)."""
    rng = spec.noise_rng
    return not spec.collect_stats and (rng is None or isinstance(rng.bit_generator, np.random.PCG64))


def pack(record: np.ndarray, env, spec: EpisodeSpec, obs: np.ndarray, total: float, steps: int,
         noise: np.ndarray) -> None:
    """Write the episode whose simulation is `env.data` (after `steps` steps) into `record` (a 0-d view)."""
    import mujoco

    record["task"], record["steps"], record["total"] = spec.task, steps, total
    if spec.noise_rng is not None:
        s = spec.noise_rng.bit_generator.state
        words = [s["state"]["state"] >> 64, s["state"]["state"] & _WORD, s["state"]["inc"] >> 64,
                 s["state"]["inc"] & _WORD]
        record["rng"], record["has_uint32"], record["uinteger"] = words, s["has_uint32"], s["uinteger"]
    record["noise"], record["obs"] = noise, obs
    state = np.empty(record["state"].shape)
    mujoco.mj_getState(env.model, env.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    record["state"], record["xpos"], record["xipos"] = state, env.data.xpos, env.data.xipos


def unpack(record: np.ndarray, env, make_spec: Callable[[int], EpisodeSpec]
           ) -> tuple[EpisodeSpec, np.ndarray, float, int, np.ndarray]:
    """Load a record into `env.data`; returns the episode's spec (rebuilt from its task, the noise
    generator set to where the sender left it), observation, return, step count and noise block."""
    import mujoco

    spec = make_spec(int(record["task"]))
    if spec.noise_rng is not None:
        hi, lo, inc_hi, inc_lo = (int(w) for w in record["rng"])
        spec.noise_rng.bit_generator.state = {
            "bit_generator": "PCG64", "state": {"state": hi << 64 | lo, "inc": inc_hi << 64 | inc_lo},
            "has_uint32": int(record["has_uint32"]), "uinteger": int(record["uinteger"]),
        }
    mujoco.mj_setState(env.model, env.data, np.array(record["state"]), mujoco.mjtState.mjSTATE_INTEGRATION)
    env.data.xpos[...], env.data.xipos[...] = record["xpos"], record["xipos"]
    return spec, np.array(record["obs"]), float(record["total"]), int(record["steps"]), np.array(record["noise"])


@dataclass
class HandoverRound:
    """One generation's hand-over between ranks: `transport` moves records (es_mpi.parallel.handover's
    NodeHandover or ClusterHandover), `make_spec` rebuilds a received task's spec. Counts what this rank gave
    and how long it waited."""

    transport: object
    make_spec: Callable[[int], EpisodeSpec]
    given: int = 0
    waited_s: float = 0.0

    def wanted(self) -> bool:
        return self.transport.wanted()

    def give(self, load: Callable[[], None], env, spec: EpisodeSpec, obs: np.ndarray, total: float, steps: int,
             noise: np.ndarray) -> bool:
        """Hand the episode to a waiting rank: `load()` first puts its simulation into `env.data`.
        False (and nothing loaded) if no rank waits any more."""

        def fill(record: np.void) -> None:
            load()
            pack(record, env, spec, obs, total, steps, noise)

        if not self.transport.give(fill):
            return False
        self.given += 1
        return True

    def finish_received(self, env, policy: MlpPolicy, mean: np.ndarray | None, std: np.ndarray | None,
                        poll: Callable[[], object] | None) -> list[Episode]:
        """Play the episodes other ranks hand over, one at a time in `env`, until the node's work is done."""
        episodes = []
        while True:
            start = time.perf_counter()
            record = self.transport.take(poll)
            self.waited_s += time.perf_counter() - start
            if record is None:
                return episodes
            spec, obs, total, steps, noise = unpack(record, env, self.make_spec)
            episodes.append(finish_episode(env, policy, spec, obs, mean, std, None, poll, total, steps, noise))
