"""Episodes to MP4 or GIF: frames are grabbed around the env's own reset and step, offscreen (MuJoCo
through EGL, MUJOCO_GL=egl, or the ALE screen), so the recorded episode is the evaluated one."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from es_mpi.commands.report import import_extra
from es_mpi.runs.job import ConfigError, EnvConfig

# Extension: the module that writes it (imageio picks the plugin by extension).
FORMATS = {".mp4": "imageio_ffmpeg", ".gif": "PIL"}


def check_video_path(path: Path) -> None:
    """Refuse, before any episode runs, a file the video could not be written to."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--video {path}: unknown video format; name the file .mp4 or .gif")
    if not path.parent.is_dir():
        raise ConfigError(f"--video {path}: directory {path.parent} does not exist")
    import_extra("imageio", "es-mpi eval --video")
    import_extra(FORMATS[path.suffix.lower()], f"es-mpi eval --video {path.suffix}")


def rendering(cfg: EnvConfig) -> EnvConfig:
    """The same env, made able to return RGB frames; rendering changes nothing in the dynamics. es-mpi's
    own Atari env always can (the ALE screen)."""
    from es_mpi.envs.atari import is_ale_id

    if is_ale_id(cfg.id):
        return cfg
    return dataclasses.replace(cfg, kwargs={**cfg.kwargs, "render_mode": "rgb_array"})


def render_problem(env) -> str | None:
    """Why `env` cannot render offscreen, in one line, or None when it can."""
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as exc:  # GL back ends fail with many exception types
        frame, why = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    else:
        why = "render() returned no frame"
    if frame is not None:
        return None
    return (f"cannot render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL', '')} ({why}); "
            "headless machines need EGL (apt-get install libegl1) or MUJOCO_GL=osmesa")


class FrameRecorder:
    """Stands in for the env in run_episode and keeps a frame after reset and after every step."""

    def __init__(self, env, on_frame: Callable[[int], None] | None = None) -> None:
        self.env, self.on_frame = env, on_frame
        self.frames: list[np.ndarray] = []

    def _grab(self) -> None:
        self.frames.append(np.asarray(self.env.render()))
        if self.on_frame:
            self.on_frame(len(self.frames))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Encode in memory, then write the file in one go: a write that fails (a full disk) raises one OSError
    here, instead of inside the encoder, which then fails again while cleaning up."""
    import imageio.v3 as iio

    suffix = path.suffix.lower()
    timing = {"duration": 1000.0 / fps, "loop": 0} if suffix == ".gif" else {"fps": fps}
    data = iio.imwrite("<bytes>", np.stack(frames), extension=suffix, **timing)
    path.write_bytes(data)
