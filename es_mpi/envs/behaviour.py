"""Behaviour characterisations (BCs): what an episode did, as a small vector, computed where it ends.

A BC function takes the gymnasium env at the end of an episode (as `gym.make` returned it, wrappers and
all) and the episode's last raw observation, and returns a 1-D float vector of fixed width. Every runner
calls the same function on the same state (the one-by-one runner on its env; the lockstep runner after
loading the slot's simulation into its env; a rank that finished a handed-over episode on its env), so a BC
is bit-identical whichever rank or runner ended the episode.

Built in: `xy`, the final position of the agent's root (Conti et al. 2018's BC for Humanoid, and the point's
position in a maze), and `ram`, the final Atari RAM (their BC for Atari). Users name their own as
`module:function`, with an attribute `width` giving the vector's length.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from es_mpi.runs.schema import ConfigError

Behaviour = Callable[[object, np.ndarray], np.ndarray]
# gymnasium-robotics' maze and manipulation tasks keep the robot's simulation in one of these
_INNER_ENVS = ("point_env", "ant_env")


def mujoco_data(env):
    """The MjData of a MuJoCo gymnasium env, or of the robot inside a gymnasium-robotics maze."""
    inner = env.unwrapped
    for name in _INNER_ENVS:
        inner = getattr(inner, name, inner)
    data = getattr(inner, "data", None)
    if data is None or not hasattr(data, "qpos"):
        raise TypeError(f"{type(env.unwrapped).__name__} has no MuJoCo simulation (env.unwrapped.data)")
    return data


def final_xy(env, obs: np.ndarray) -> np.ndarray:
    """The first two position coordinates (qpos[0:2]): x-y of the torso for the free-floating Ant and
    Humanoid, of the point in PointMaze; x and z of the root for the planar HalfCheetah, Hopper, Walker2d."""
    return np.array(mujoco_data(env).qpos[:2], np.float64)


final_xy.width = 2


def final_ram(env, obs: np.ndarray) -> np.ndarray:
    """The 128 bytes of Atari RAM (ALE) at the episode's end."""
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None:
        raise TypeError(f"{type(env.unwrapped).__name__} is not an ALE env (no env.unwrapped.ale)")
    return ale.getRAM().astype(np.float64)


final_ram.width = 128

BUILT_IN: dict[str, Behaviour] = {"xy": final_xy, "ram": final_ram}


def find(name: str) -> tuple[Behaviour, int]:
    """(function, width) of a built-in name or `module:function`; ValueError saying what the name must be."""
    if name in BUILT_IN:
        return BUILT_IN[name], BUILT_IN[name].width
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"must be one of {', '.join(BUILT_IN)} or module:function")
    try:
        function = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"must name an importable function ({exc})") from None
    width = getattr(function, "width", None)
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"must name a function with an integer attribute `width` >= 1 (the length of the "
                         f"vector it returns; it has {width!r})")
    return function, width


def problem(name: str) -> str | None:
    """What is wrong with a BC name, as the job check's words (None: nothing)."""
    try:
        find(name)
    except ValueError as exc:
        return str(exc)
    return None


def resolve(name: str) -> tuple[Behaviour, int]:
    """find() with a ConfigError naming the key."""
    try:
        return find(name)
    except ValueError as exc:
        raise ConfigError(f"strategy.behaviour {exc}, got {name!r}") from None


def measure(behaviour: Behaviour, width: int, env, obs: np.ndarray) -> np.ndarray:
    """The BC of an ended episode as float64 of `width`; ValueError if the function breaks its contract."""
    bc = np.asarray(behaviour(env, obs), np.float64).ravel()
    if bc.shape != (width,) or not np.isfinite(bc).all():
        raise ValueError(f"behaviour function {getattr(behaviour, '__name__', behaviour)} returned {bc.shape[0]} "
                         f"values{'' if np.isfinite(bc).all() else ' (not all finite)'}, expected {width} finite")
    return bc


def check(behaviour: Behaviour, width: int, env, name: str, source: str) -> None:
    """Try the BC on a freshly reset `env`, so a function that does not fit the env is a one-line error at
    start-up rather than a traceback in the first generation."""
    obs, _ = env.reset(seed=0)
    try:
        measure(behaviour, width, env, obs)
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ConfigError(f"{source}: strategy.behaviour {name!r} does not fit env {getattr(env.spec, 'id', env)}: "
                          f"{exc}") from None
