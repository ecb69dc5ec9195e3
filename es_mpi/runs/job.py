"""Job files: YAML in, validated frozen dataclasses out, with one-line errors that name file and key.

The dataclasses below are the schema: their fields, types, defaults and `check`s are all that
validation knows, and README.md documents the same keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# Keys that may change when a run is resumed: raising them extends the run.
BUDGET_KEYS = ("run.generations", "run.timesteps")


class ConfigError(Exception):
    """Bad user input: the message is one line that names the file, the key and the fix."""


def _key(default: Any = dataclasses.MISSING, check: Callable[[Any], str | None] | None = None, help: str = ""):
    kw: dict[str, Any] = {"metadata": {"check": check, "help": help}}
    if isinstance(default, (list, dict)):
        kw["default_factory"] = (lambda d=default: type(d)(d))
    elif default is not dataclasses.MISSING:
        kw["default"] = default
    return field(**kw)


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def _unit_open(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _hidden(v: list[int]) -> str | None:
    return None if all(h >= 1 for h in v) else "must list layer sizes >= 1"


def _actions(v: str) -> str | None:
    if v == "continuous":
        return None
    kind, _, bins = v.partition(":")
    if kind == "uniform" and bins.isdigit() and int(bins) >= 2:
        return None
    return "must be 'continuous' or 'uniform:N' with N >= 2 bins"


def _at_least_one(v: int | None) -> str | None:
    return None if v is None or v >= 1 else "must be >= 1 (or null for no limit)"


@dataclass(frozen=True)
class AdaptiveCap:
    start: int = _key(250, _positive, "first episode cap, in steps")
    fraction: float = _key(0.5, _fraction, "raise the cap once this fraction of episodes hits it")
    ratio: float = _key(2.0, lambda v: None if v > 1 else "must be > 1", "factor the cap grows by")


@dataclass(frozen=True)
class MeanCap:
    multiple: float = _key(2.0, lambda v: None if v > 1 else "must be > 1",
                           "cap = multiple x the last generation's mean episode length")
    minimum: int = _key(50, _positive, "the cap never goes below this many steps")


@dataclass(frozen=True)
class AtariConfig:
    """Preprocessing of ALE envs (ignored for others); defaults as in the paper's era (README)."""

    frame_skip: int = _key(4, _positive, "emulator frames per agent action (last two max-pooled)")
    repeat_action_probability: float = _key(0.0, _unit_open, "sticky actions: chance per frame to repeat the last")
    noop_max: int = _key(30, _non_negative, "reset plays 1..noop_max NOOP frames (0: none)")
    frame_stack: int = _key(4, _positive, "84x84 grayscale frames stacked into one observation")


@dataclass(frozen=True)
class EnvConfig:
    id: str = _key(help="gymnasium environment id, e.g. HalfCheetah-v5")
    kwargs: dict = _key({}, help="keyword arguments for gymnasium.make")
    episode_cap: Literal["env", "adaptive", "mean"] = _key(
        "env", help="'env': the env's own limit; 'adaptive': grows when episodes hit it; 'mean': a multiple of "
        "the mean length, which cuts straggling episodes")
    adaptive: AdaptiveCap = _key(AdaptiveCap(), help="settings of the adaptive episode cap")
    mean_cap: MeanCap = _key(MeanCap(), help="settings of the mean-length episode cap")
    atari: AtariConfig = _key(AtariConfig(), help="preprocessing of ALE (Atari) envs")


@dataclass(frozen=True)
class PolicyConfig:
    kind: Literal["mlp", "cnn"] = _key("mlp", help="policy network: mlp, or cnn for ALE envs")
    hidden: list[int] = _key([64, 64], _hidden, "hidden layer sizes")
    activation: Literal["tanh", "relu", "elu"] = _key("tanh", help="hidden activation")
    actions: str = _key("continuous", _actions, "'continuous' or 'uniform:N' (N bins per action dim)")
    action_noise: float = _key(0.01, _non_negative, "std of Gaussian action noise in training rollouts")
    obs_norm: bool = _key(True, help="normalise observations with running statistics")
    obs_stat_fraction: float = _key(0.01, _fraction, "fraction of pairs whose observations feed the stats")
    ref_batch: int = _key(128, _positive, "cnn: observations in the virtual batch norm reference batch")


@dataclass(frozen=True)
class EsConfig:
    pairs: int = _key(500, _positive, "antithetic pairs per generation (2 x pairs episodes)")
    sigma: float = _key(0.02, _positive, "noise standard deviation")
    l2: float = _key(0.005, _non_negative, "weight decay coefficient")
    noise_table_size: int = _key(250_000_000, _positive, "entries in the shared noise table")
    noise_seed: int = _key(123, _non_negative, "seed of the shared noise table")


@dataclass(frozen=True)
class OptimizerConfig:
    kind: Literal["adam", "sgd"] = _key("adam", help="adam, or sgd with momentum")
    lr: float = _key(0.01, _positive, "step size")
    beta1: float = _key(0.9, _unit_open, "Adam first-moment decay")
    beta2: float = _key(0.999, _unit_open, "Adam second-moment decay")
    epsilon: float = _key(1e-8, _positive, "Adam denominator guard")
    momentum: float = _key(0.9, _unit_open, "SGD momentum")


@dataclass(frozen=True)
class RunConfig:
    seed: int = _key(0, _non_negative, "run seed: perturbations, env seeds, initial weights")
    generations: int = _key(100, _positive, "generation budget")
    timesteps: int | None = _key(None, _at_least_one, "training env-step budget (null: none)")
    eval_every: int = _key(5, _non_negative, "evaluate the noiseless policy every N generations (0: never)")
    eval_episodes: int = _key(3, _positive, "episodes per evaluation")
    checkpoint_every: int = _key(10, _positive, "write checkpoint.h5 every N generations")


@dataclass(frozen=True)
class Job:
    env: EnvConfig = _key(help="environment")
    policy: PolicyConfig = _key(PolicyConfig(), help="policy network")
    es: EsConfig = _key(EsConfig(), help="evolution strategies")
    optimizer: OptimizerConfig = _key(OptimizerConfig(), help="optimiser")
    run: RunConfig = _key(RunConfig(), help="budgets, seeds and output cadence")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self, ignore: tuple[str, ...] = BUDGET_KEYS) -> str:
        """Hash of the job without the budget keys: equal digests mean a run may be resumed."""
        data = self.to_dict()
        for dotted in ignore:
            section, key = dotted.split(".")
            data[section].pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping", type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is type(None):
        return value is None
    return isinstance(value, tp)


def _build(cls: type, raw: Any, path: str, source: str) -> Any:
    where = path or "the job"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {path + '.' if path else ''}{near[0]}?)" if near else ""
            raise ConfigError(
                f"{source}: unknown key {path + '.' if path else ''}{key}{hint}; known keys: {', '.join(names)}"
            )
    values = {}
    for f in dataclasses.fields(cls):
        dotted = f"{path}.{f.name}" if path else f.name
        tp = hints[f.name]
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key {dotted} ({f.metadata['help']})")
            continue
        value = raw[f.name]
        if dataclasses.is_dataclass(tp):
            values[f.name] = _build(tp, {} if value is None else value, dotted, source)
            continue
        if tp is float and _matches(value, int):
            value = float(value)
        if not _matches(value, tp):
            raise ConfigError(f"{source}: {dotted} must be {_type_name(tp)}, got {value!r}")
        check = f.metadata["check"]
        problem = check(value) if check and value is not None else None
        if problem:
            raise ConfigError(f"{source}: {dotted} {problem}, got {value!r}")
        values[f.name] = value
    return cls(**values)


def parse_yaml(text: str, source: str) -> Any:
    """safe_load only: tags that would build Python objects are an error, not code execution."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {str(exc).splitlines()[0]}") from None


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
    return job


def job_from_dict(raw: Any, source: str) -> Job:
    return _check_job(_build(Job, raw, "", source), source)


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
    return job_from_dict(raw, source)
