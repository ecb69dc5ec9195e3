"""Environment creation and checks; the trainer steps the unwrapped env and applies the cap itself."""

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


def make_env(cfg: EnvConfig, source: str = "job"):
    """(unwrapped env, its own episode limit). Wrappers are skipped: the rollout loop caps episodes.
    ALE ids get es-mpi's own Atari env with the standard preprocessing (atari.py)."""
    import gymnasium as gym

    from es_mpi.envs.atari import is_ale_id, make_atari_env

    check_env_id(cfg.id, source)
    if is_ale_id(cfg.id):
        return make_atari_env(cfg, source)
    try:
        import mujoco
    except (ImportError, AttributeError, RuntimeError) as exc:  # a broken GL back end fails at import
        raise ConfigError(
            f"cannot import mujoco with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({exc}); training needs no "
            "rendering: unset MUJOCO_GL, or install the libraries of that back end (Debian: libegl1 for egl)"
        ) from None
    mujoco.set_mju_user_warning(_mujoco_warning)
    try:
        env = gym.make(cfg.id, **cfg.kwargs)
    except Exception as exc:  # env constructors raise many types for bad kwargs
        raise ConfigError(f"{source}: cannot make env {cfg.id!r} with env.kwargs {cfg.kwargs}: {exc}") from None
    limit = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
    return env.unwrapped, int(limit)
