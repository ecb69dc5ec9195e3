"""Job files: YAML in, validated frozen dataclasses out, with one-line errors that name file and key.

The dataclasses below are the schema: their fields, types, defaults and `check`s are all that
validation knows; `es-mpi keys` prints them (docs/job-keys.md). A strategy's own section is its
module's `Config` dataclass (es_mpi.strategies), chosen by `strategy.kind`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from es_mpi.runs.schema import (
    ConfigError,
    at_least_one,
    build,
    is_fraction,
    key,
    non_negative,
    parse_yaml,
    positive,
    resumable_keys,
    unit_open,
)
from es_mpi.strategies import DEFAULT_STRATEGY, STRATEGIES
from es_mpi.strategies.base import StrategyConfig


def _hidden(v: list[int]) -> str | None:
    return None if all(h >= 1 for h in v) else "must list layer sizes >= 1"


def _actions(v: str) -> str | None:
    if v == "continuous":
        return None
    kind, _, bins = v.partition(":")
    if kind == "uniform" and bins.isdigit() and int(bins) >= 2:
        return None
    return "must be 'continuous' or 'uniform:N' with N >= 2 bins"



@dataclass(frozen=True)
class AdaptiveCap:
    start: int = key(250, positive, "first episode cap, in steps")
    fraction: float = key(0.5, is_fraction, "raise the cap once this fraction of episodes hits it")
    ratio: float = key(2.0, lambda v: None if v > 1 else "must be > 1", "factor the cap grows by")


@dataclass(frozen=True)
class MeanCap:
    multiple: float = key(2.0, lambda v: None if v > 1 else "must be > 1",
                           "cap = multiple x the last generation's mean episode length")
    minimum: int = key(50, positive, "the cap never goes below this many steps")


@dataclass(frozen=True)
class AtariConfig:
    """Preprocessing of ALE envs (ignored for others); defaults as in the paper's era (docs/atari.md)."""

    frame_skip: int = key(4, positive, "emulator frames per agent action (last two max-pooled)")
    repeat_action_probability: float = key(0.0, unit_open, "sticky actions: chance per frame to repeat the last")
    noop_max: int = key(30, non_negative, "reset plays 1..noop_max NOOP frames (0: none)")
    frame_stack: int = key(4, positive, "84x84 grayscale frames stacked into one observation")


@dataclass(frozen=True)
class EnvConfig:
    id: str = key(help="gymnasium environment id, e.g. HalfCheetah-v5")
    kwargs: dict = key({}, help="keyword arguments for gymnasium.make (max_episode_steps: the env's limit)")
    episode_cap: Literal["env", "adaptive", "mean"] | int = key(
        "env", lambda v: None if isinstance(v, str) or v >= 1 else "must be >= 1 steps",
        "'env': the env's own limit; an integer: that many steps, for training and evaluation alike; "
        "'adaptive': grows when episodes hit it; 'mean': a multiple of the mean length, which cuts straggling "
        "episodes")
    adaptive: AdaptiveCap = key(AdaptiveCap(), help="settings of the adaptive episode cap")
    mean_cap: MeanCap = key(MeanCap(), help="settings of the mean-length episode cap")
    atari: AtariConfig = key(AtariConfig(), help="preprocessing of ALE (Atari) envs")


@dataclass(frozen=True)
class PolicyConfig:
    kind: Literal["mlp", "linear", "cnn"] = key(
        "mlp", help="policy network: mlp; linear (ARS's a = M x: no hidden layers, no biases); cnn for ALE envs")
    hidden: list[int] = key([64, 64], _hidden, "mlp: hidden layer sizes (column-normalised initial weights, zero "
                            "biases); linear has none")
    activation: Literal["tanh", "relu", "elu"] = key("tanh", help="hidden activation")
    actions: str = key("continuous", _actions, "'continuous' or 'uniform:N' (N bins per action dim)")
    action_noise: float = key(0.01, non_negative, "std of Gaussian action noise in training rollouts")
    obs_norm: bool = key(True, help="normalise observations with running statistics, then clip them to [-5, 5]")
    obs_stat_fraction: float = key(0.01, is_fraction, "fraction of pairs whose observations feed the stats")
    ref_batch: int = key(128, positive, "cnn: observations in the virtual batch norm reference batch")


@dataclass(frozen=True)
class EsConfig:
    pairs: int = key(500, positive, "antithetic pairs per generation (2 x pairs episodes)")
    sigma: float = key(0.02, positive, "noise standard deviation")
    l2: float = key(0.005, non_negative, "weight decay coefficient")
    noise_table_size: int = key(250_000_000, positive,
                                "entries in the shared noise table (at least the parameter count; the paper: 250M)")
    noise_seed: int = key(123, non_negative, "seed of the shared noise table")


@dataclass(frozen=True)
class OptimizerConfig:
    kind: Literal["adam", "sgd"] = key("adam", help="adam, or sgd with momentum")
    lr: float = key(0.01, positive, "step size")
    beta1: float = key(0.9, unit_open, "Adam first-moment decay")
    beta2: float = key(0.999, unit_open, "Adam second-moment decay")
    epsilon: float = key(1e-8, positive, "Adam denominator guard")
    momentum: float = key(0.9, unit_open, "SGD momentum")


@dataclass(frozen=True)
class RunConfig:
    seed: int = key(0, non_negative, "run seed: perturbations, env seeds, initial weights")
    generations: int = key(100, positive, "generation budget", resumable=True)
    timesteps: int | None = key(None, at_least_one, "training env-step budget (null: none)", resumable=True)
    eval_every: int = key(5, non_negative, "evaluate the noiseless policy in generation 0 and every N-th after "
                          "(0: never)", resumable=True)
    eval_episodes: int = key(3, positive, "episodes per evaluation", resumable=True)
    checkpoint_every: int = key(10, positive, "write checkpoint.h5 every N generations", resumable=True)
    tensorboard: bool = key(False, help="write TensorBoard event files to RUN_DIR/tensorboard/ while training "
                            "(needs the tensorboard extra)", resumable=True)


def _strategy_config(section: Any, dotted: str, source: str) -> type[StrategyConfig]:
    """The job section of the strategy `section` names (kind; default openai_es)."""
    kind = section.get("kind", DEFAULT_STRATEGY) if isinstance(section, dict) else DEFAULT_STRATEGY
    if kind not in STRATEGIES:
        raise ConfigError(f"{source}: {dotted}.kind must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    return STRATEGIES[kind].Config


@dataclass(frozen=True)
class Job:
    env: EnvConfig = key(help="environment")
    strategy: StrategyConfig = key(STRATEGIES[DEFAULT_STRATEGY].Config(), choose=_strategy_config,
                                   help="the algorithm (kind) and its own settings")
    policy: PolicyConfig = key(PolicyConfig(), help="policy network")
    es: EsConfig = key(EsConfig(), help="OpenAI-ES settings, and the shared noise table of every strategy")
    optimizer: OptimizerConfig = key(OptimizerConfig(), help="optimiser")
    run: RunConfig = key(RunConfig(), help="budgets, seeds and output cadence")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self, ignore: tuple[str, ...] | None = None) -> str:
        """Hash of the job without the resumable keys (or `ignore`): equal digests mean a run may be resumed."""
        ignore = RESUMABLE_KEYS if ignore is None else ignore
        data = self.to_dict()
        for dotted in ignore:
            section, key = dotted.split(".")
            data[section].pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# Keys that may change when a run is resumed (budgets, output cadence, logging): none changes a parameter.
RESUMABLE_KEYS = resumable_keys(Job)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `--set a.b=value` (value parsed as YAML) to the raw job dictionary, in place."""
    dotted, sep, text = assignment.partition("=")
    if not sep or not dotted.strip():
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set es.sigma=0.05")
    parts = dotted.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment}: {part} is not a section")
        node = child
    node[parts[-1]] = parse_yaml(text, f"--set {dotted}")


def _check_job(job: Job, source: str) -> Job:
    """Rules that tie keys together (the per-key checks live in the dataclasses)."""
    p = job.policy
    if p.kind == "cnn" and p.obs_norm:
        raise ConfigError(f"{source}: policy.obs_norm must be false with policy.kind cnn (virtual batch "
                          "normalisation replaces it), got true")
    if p.kind == "cnn" and p.action_noise != 0:
        raise ConfigError(f"{source}: policy.action_noise must be 0 with policy.kind cnn (greedy discrete "
                          f"actions), got {p.action_noise!r}")
    problem = job.strategy.problem(job)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return job


def job_from_dict(raw: Any, source: str) -> Job:
    return _check_job(build(Job, raw, "", source), source)


def load_job(path: str | Path, overrides: list[str] = ()) -> Job:
    """Read, override and validate a job file; every failure is a ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: job file not found; give the path of a YAML job, e.g. jobs/default.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read job file: {exc}") from None
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the job must be a YAML mapping with sections env, policy, es, optimizer, run")
    for assignment in overrides:
        apply_override(raw, assignment)
    try:
        return job_from_dict(raw, source)
    except ConfigError as exc:
        # name the --set that gave a refused value: the job file did not
        culprits = [a for a in overrides if f" {a.partition('=')[0].strip()} " in f" {exc} "]
        if culprits:
            raise ConfigError(f"{exc} (from --set {culprits[-1]})") from None
        raise
