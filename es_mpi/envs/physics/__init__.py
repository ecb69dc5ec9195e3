"""gymnasium's MuJoCo v5 tasks, as the lockstep runner (es_mpi.envs.lockstep) computes them: which tasks and
constructor arguments it reproduces, and, per task, a `Physics` class (es_mpi.envs.physics.base)."""

from __future__ import annotations

from numbers import Real

from es_mpi.envs.make import MAKE_KEYWORDS
from es_mpi.envs.physics.base import Physics
from es_mpi.envs.physics.contact import Ant, Humanoid
from es_mpi.envs.physics.pendulums import InvertedDoublePendulum, InvertedPendulum
from es_mpi.envs.physics.planar import HalfCheetah, Hopper, Swimmer, Walker2d

PHYSICS: dict[str, type[Physics]] = {
    "HalfCheetah-v5": HalfCheetah,
    "Hopper-v5": Hopper,
    "Walker2d-v5": Walker2d,
    "Swimmer-v5": Swimmer,
    "Ant-v5": Ant,
    "Humanoid-v5": Humanoid,
    "InvertedPendulum-v5": InvertedPendulum,
    "InvertedDoublePendulum-v5": InvertedDoublePendulum,
}


def _simple(value) -> bool:
    """Numbers, flags, a body name, or a (low, high) pair of numbers: values the formulas use as they are."""
    if isinstance(value, (bool, Real, str)):
        return True
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, Real) for v in value)


def supports(env_id: str, env_kwargs: dict) -> bool:
    """Whether the lockstep runner reproduces `env_id` made with `env_kwargs`; if not, run episodes one by one."""
    physics = PHYSICS.get(env_id)
    return physics is not None and all(
        k in MAKE_KEYWORDS or (k in physics.kwargs and _simple(v)) for k, v in env_kwargs.items())


def unmodelled(env, env_id: str, env_kwargs: dict) -> str:
    """Why the lockstep runner does not reproduce the made `env` bit for bit ('' when it does): it models
    gymnasium's own v5 task of that id, unwrapped, with the constructor arguments above."""
    physics = PHYSICS.get(env_id)
    if physics is None:
        return f"{env_id} has no lockstep model (those: the MuJoCo v5 locomotion and pendulum tasks)"
    odd = sorted(k for k, v in env_kwargs.items()
                 if k not in MAKE_KEYWORDS and (k not in physics.kwargs or not _simple(v)))
    if odd:
        return f"env.kwargs {', '.join(odd)} are not modelled by the lockstep runner"
    if env is not env.unwrapped:
        return "the env is wrapped"
    if not type(env).__module__.startswith("gymnasium.envs.mujoco."):
        return f"{env_id} is registered to {type(env).__module__}.{type(env).__name__}, not gymnasium's task"
    return ""
