"""Environment creation and checks: the env a user's gym.make returns, less the wrappers whose job es-mpi does."""

from __future__ import annotations

import difflib
import os
import sys

from es_mpi.runs.job import ConfigError, EnvConfig


def check_env_id(env_id: str, source: str) -> None:
    """Reject an id gymnasium does not know, listing close matches.

    `module:Env-v0` first imports `module` (which registers its envs), as gymnasium.make does, so that
    users can train on environments from their own packages.
    """
    import importlib

    import gymnasium as gym

    module, sep, name = env_id.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{source}: env.id {env_id!r}: cannot import module {module!r} ({exc})") from None
        env_id = name
    if env_id in gym.envs.registry:
        return
    from es_mpi.envs.atari import is_ale_id

    if is_ale_id(env_id):  # imports ale_py, which registers ALE/Pong-v5 and the other Atari ids
        return
    near = difflib.get_close_matches(env_id, list(gym.envs.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see gymnasium.envs.registry for the known ids"
    raise ConfigError(f"{source}: env.id {env_id!r} is not a registered gymnasium environment{hint}")


_warned: set[str] = set()


def _mujoco_warning(message: str) -> None:
    """Each MuJoCo warning once on stderr, instead of MuJoCo's default of appending to MUJOCO_LOG.TXT in
    the working directory. The settotalmass deprecation comes from gymnasium's own model files, which
    users cannot change, so it is dropped."""
    if "settotalmass" in message or message in _warned:
        return
    _warned.add(message)
    sys.stderr.write(f"mujoco warning: {message}\n")


# Make-time keywords of gymnasium.make that are not constructor arguments of the env.
MAKE_KEYWORDS = ("max_episode_steps", "disable_env_checker", "autoreset", "apply_api_compatibility")
# Observation spaces es-mpi flattens (gymnasium.spaces.flatten) for the MLP; others are refused.
_FLAT_SPACES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple")


def make_env(cfg: EnvConfig, source: str = "job"):
    """(env, its episode limit): the env `gym.make(id, **kwargs)` returns, with every wrapper its author
    registered (entry point, additional_wrappers, kwargs), less the three gymnasium adds whose job es-mpi
    does itself: TimeLimit (es-mpi caps episodes at the returned limit: an integer env.episode_cap, else
    env.kwargs.max_episode_steps, else the spec's), OrderEnforcing and PassiveEnvChecker. Observations that
    are not a flat Box are flattened with gymnasium's FlattenObservation. ALE ids get es-mpi's own Atari env
    with the standard preprocessing (es_mpi.envs.atari)."""
    from es_mpi.envs.atari import is_ale_id, make_atari_env

    check_env_id(cfg.id, source)
    env, limit = make_atari_env(cfg, source) if is_ale_id(cfg.id) else _make_gym_env(cfg, source)
    if not isinstance(cfg.episode_cap, str):
        return env, cfg.episode_cap
    return env, int(cfg.kwargs.get("max_episode_steps") or limit)


def _make_gym_env(cfg: EnvConfig, source: str):
    import dataclasses

    import gymnasium as gym
    from gymnasium.wrappers import FlattenObservation

    try:
        import mujoco
    except (ImportError, AttributeError, RuntimeError) as exc:  # a broken GL back end fails at import
        raise ConfigError(
            f"cannot import mujoco with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({exc}); training needs no "
            "rendering: unset MUJOCO_GL, or install the libraries of that back end (Debian: libegl1 for egl)"
        ) from None
    mujoco.set_mju_user_warning(_mujoco_warning)
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in MAKE_KEYWORDS}
    spec = gym.spec(cfg.id.rpartition(":")[2])
    bare = dataclasses.replace(spec, max_episode_steps=None, order_enforce=False, disable_env_checker=True)
    try:
        env = gym.make(bare, **kwargs)
    except Exception as exc:  # env constructors raise many types for bad kwargs
        raise ConfigError(f"{source}: cannot make env {cfg.id!r} with env.kwargs {cfg.kwargs}: {exc}") from None
    _check_space(env.observation_space, "observation", cfg.id, source)
    space = env.observation_space
    if not (type(space).__name__ == "Box" and len(space.shape) == 1):
        env = FlattenObservation(env)
    return env, int(spec.max_episode_steps or 1000)


def _check_space(space, what: str, env_id: str, source: str) -> None:
    """Refuse a space gymnasium cannot flatten into a fixed-width vector (Text, Graph, Sequence, ...)."""
    name = type(space).__name__
    if name not in _FLAT_SPACES:
        raise ConfigError(f"{source}: env {env_id!r} has a {name} {what} space, which es-mpi's policies cannot "
                          f"take; supported: {', '.join(_FLAT_SPACES)} (wrap the env to convert it)")
    for inner in getattr(space, "spaces", {}).values() if name == "Dict" else getattr(space, "spaces", ()):
        _check_space(inner, what, env_id, source)


def wrapper_names(env) -> list[str]:
    """The classes of the wrappers around the env, outermost first."""
    names = []
    while env is not env.unwrapped:
        names.append(type(env).__name__)
        env = env.env
    return names
