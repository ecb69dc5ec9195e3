"""Atari games through ale-py with the standard preprocessing, in numpy (no OpenCV).

One emulator per process, driven frame by frame from Python:

- no-op starts: 1..noop_max raw frames of NOOP after reset (Mnih et al. 2015's evaluation protocol);
- frame skip: each agent action is repeated for `frame_skip` emulator frames, rewards summed, and the
  observation is the pixel-wise maximum of the last two frames (removes Atari sprite flicker);
- ALE's grayscale screen, resized 210x160 -> 84x84 by area averaging (what OpenCV's INTER_AREA does:
  each output pixel is a weighted sum of at most 3x3 input pixels, two gather-and-weight passes in
  float32), rounded to uint8;
- a stack of the last `frame_stack` frames, oldest first, channels-last (84, 84, frame_stack) as in
  the DQN-era wrappers (and what the CNN wants); after a reset the first frame fills the whole stack.
- sticky actions (Machado et al. 2018): before every emulator frame, with probability p, the previous
  frame's action is repeated instead of the agent's.

Determinism: the ROM is loaded once and its state just after loading is cloned; `reset(seed)` restores
that state and draws the no-op count and the sticky-action coin flips from a generator seeded by `seed`
alone (ALE's own sticky actions are off, so ALE draws no random numbers). An episode therefore depends
only on its seed and the actions, whatever the process ran before. Reloading the ROM to reseed ALE, as
gymnasium's AtariEnv and ale-py's AtariVectorEnv do on reset(seed=...), costs about 120 ms per episode.
"""

from __future__ import annotations

import numpy as np

from es_mpi.runs.job import ConfigError, EnvConfig

SIZE = 84
NOOP = 0  # ALE's action id for "no operation"


def is_ale_id(env_id: str) -> bool:
    """True for ids that gymnasium maps to ale-py's AtariEnv (ALE/Pong-v5, PongNoFrameskip-v4, ...)."""
    import gymnasium as gym

    if env_id not in gym.envs.registry:
        try:
            import ale_py  # noqa: F401  (importing registers the ALE ids)
        except ImportError:
            return False
    spec = gym.envs.registry.get(env_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area-averaging resampling: output cell i averages the input interval
    [i, i+1) * n_in / n_out, counting partly covered input cells by the covered fraction."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return (m / scale).astype(np.float32)


def _taps(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero entries of each row of a resampling matrix as (indices, weights), (n_out, k) each,
    padded with weight 0: the resize gathers k inputs per output instead of a dense matrix product."""
    k = int((m > 0).sum(axis=1).max())
    idx, w = np.zeros((m.shape[0], k), np.intp), np.zeros((m.shape[0], k), np.float32)
    for i, row in enumerate(m):
        nz = np.flatnonzero(row)
        idx[i, : nz.size], w[i, : nz.size] = nz, row[nz]
    return idx, w


def resize(screen: np.ndarray, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Area resize of a float32 (H, W) image with the taps of `_taps`: rows first, then columns."""
    tall = np.einsum("ikj,ik->ij", screen[rows[0]], rows[1])
    return np.einsum("ijk,jk->ij", tall[:, cols[0]], cols[1])


class AtariEnv:
    """A gymnasium-style env (reset(seed=...) -> (obs, info), step(action) -> 5-tuple) over one ALE.

    Observations are uint8 arrays (84, 84, frame_stack); actions are indices into the game's minimal
    action set (or the full 18 with full_action_space); rewards are the raw game score (not clipped).
    """

    # The emulator runs at 60 frames per second; one step spans frame_skip of them.
    metadata: dict = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(self, game: str, frame_skip: int = 4, repeat_action_probability: float = 0.0,
                 noop_max: int = 30, frame_stack: int = 4, mode: int | None = None,
                 difficulty: int | None = None, full_action_space: bool = False) -> None:
        import ale_py
        from gymnasium import spaces

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale = ale = ale_py.ALEInterface()
        ale.setInt("random_seed", 0)
        ale.setFloat("repeat_action_probability", 0.0)  # sticky actions are drawn here, from the seed
        ale.setInt("frame_skip", 1)
        ale.setInt("max_num_frames_per_episode", 0)  # the rollout loop caps episodes
        ale.loadROM(ale_py.roms.get_rom_path(game))
        if mode is not None:
            ale.setMode(mode)
        if difficulty is not None:
            ale.setDifficulty(difficulty)
        ale.reset_game()
        self._start = ale.cloneState()
        self.actions = list(ale.getLegalActionSet() if full_action_space else ale.getMinimalActionSet())
        self.frame_skip, self.sticky, self.noop_max = frame_skip, float(repeat_action_probability), noop_max
        height, width = ale.getScreenDims()
        self._rows, self._cols = _taps(_area_matrix(height, SIZE)), _taps(_area_matrix(width, SIZE))
        self._screens = np.zeros((2, height, width), np.uint8)
        self._stack = [np.zeros((SIZE, SIZE), np.uint8)] * frame_stack  # oldest first
        self._rng = np.random.default_rng(0)
        self._previous = self.actions[NOOP]
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, frame_stack), np.uint8)
        self.action_space = spaces.Discrete(len(self.actions))
        self.unwrapped = self
        self.metadata = {**self.metadata, "render_fps": 60 / frame_skip}

    def _frame(self) -> np.ndarray:
        pooled = np.maximum(self._screens[0], self._screens[1]).astype(np.float32)
        small = resize(pooled, self._rows, self._cols)
        return np.rint(small, out=small).astype(np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._rng = np.random.default_rng(seed)
        ale = self.ale
        ale.restoreState(self._start)
        noop = self.actions[NOOP]
        for _ in range(int(self._rng.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0):
            ale.act(noop)
            if ale.game_over():
                ale.restoreState(self._start)
        self._previous = noop
        ale.getScreenGrayscale(self._screens[0])
        self._screens[1] = self._screens[0]
        self._stack = [self._frame()] * len(self._stack)
        return np.stack(self._stack, axis=-1), {}

    def step(self, action):
        ale, chosen, skip = self.ale, self.actions[int(action)], self.frame_skip
        reward = 0.0
        for k in range(skip):
            executed = chosen
            if self.sticky > 0 and self._rng.random() < self.sticky:
                executed = self._previous
            self._previous = executed
            reward += ale.act(executed)
            over = ale.game_over()
            # Pool the last two frames; an episode that ends early pools its last frame with the one
            # captured before it.
            if k == skip - 2 and not over:
                ale.getScreenGrayscale(self._screens[0])
            if k == skip - 1 or over:
                ale.getScreenGrayscale(self._screens[1])
                break
        if skip == 1:
            self._screens[0] = self._screens[1]
        self._stack = [*self._stack[1:], self._frame()]
        return np.stack(self._stack, axis=-1), reward, bool(ale.game_over()), False, {}

    def render(self) -> np.ndarray:
        """The full-colour screen of the last emulated frame (for es-mpi eval --video)."""
        return self.ale.getScreenRGB()

    def close(self) -> None:
        pass


_ALE_KWARGS = ("mode", "difficulty", "full_action_space")


def make_atari_env(cfg: EnvConfig, source: str = "job") -> tuple[AtariEnv, int]:
    """(env, episode limit in agent steps) for an ALE id; the limit is the id's own frame limit
    (108,000 frames, 30 minutes of play, for v5) divided by the frame skip."""
    import gymnasium as gym

    spec = gym.spec(cfg.id)
    unknown = sorted(set(cfg.kwargs) - set(_ALE_KWARGS) - {"max_episode_steps"})
    if unknown:
        raise ConfigError(
            f"{source}: env.kwargs {unknown} not supported for ALE env {cfg.id!r}: preprocessing is set by "
            f"env.atari.{{frame_skip,repeat_action_probability,noop_max,frame_stack}}; env.kwargs may hold "
            f"{', '.join(_ALE_KWARGS)} and max_episode_steps"
        )
    a = cfg.atari
    try:
        env = AtariEnv(spec.kwargs["game"], a.frame_skip, a.repeat_action_probability, a.noop_max, a.frame_stack,
                       **{k: v for k, v in cfg.kwargs.items() if k in _ALE_KWARGS})
    except Exception as exc:  # ale-py raises RuntimeError for bad modes and the like
        raise ConfigError(f"{source}: cannot make ALE env {cfg.id!r} with env.kwargs {cfg.kwargs}: {exc}") from None
    frames = int(spec.kwargs.get("max_num_frames_per_episode") or 108_000)
    return env, max(frames // a.frame_skip, 1)
