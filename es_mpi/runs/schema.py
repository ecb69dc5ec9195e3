"""The machinery of job validation: frozen dataclasses whose fields carry a default, a check and a help
text, built from YAML with one-line errors that name the file, the key and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any, Literal

import yaml


class ConfigError(Exception):
    """Bad user input: the message is one line that names the file, the key and the fix."""


def key(default: Any = dataclasses.MISSING, check: Callable[[Any], str | None] | None = None, help: str = "",
        choose: Callable[[Any, str, str], type] | None = None, resumable: bool = False):
    """A schema field. `choose(section, dotted, source)`, for a section whose keys depend on one of its
    values (the strategy's kind), returns the dataclass to build that section with. `resumable` keys may
    change when a run is resumed: they change no parameter of the run (budgets, output cadence, logging)."""
    kw: dict[str, Any] = {"metadata": {"check": check, "help": help, "choose": choose, "resumable": resumable}}
    if isinstance(default, (list, dict)):
        kw["default_factory"] = (lambda d=default: type(d)(d))
    elif default is not dataclasses.MISSING:
        kw["default"] = default
    return field(**kw)


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def is_fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def unit_open(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def at_least_one(v: int | None) -> str | None:
    return None if v is None or v >= 1 else "must be >= 1 (or null for no limit)"


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
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


# YAML 1.1, which PyYAML reads, takes 1e-2 or 2.5e8 (no dot) for text; users mean numbers.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(value: Any, tp: Any) -> Any:
    """`value` as the number a field of type `tp` takes, where it is text in scientific notation."""
    if not (isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip())):
        return value
    number = float(value)
    if _matches(1.5, tp):
        return number
    return int(number) if _matches(1, tp) and number.is_integer() else value


def resumable_keys(cls: type, path: str = "") -> tuple[str, ...]:
    """The dotted names of the keys of `cls` (sections walked) marked resumable."""
    found: list[str] = []
    for f in dataclasses.fields(cls):
        dotted = f"{path}.{f.name}" if path else f.name
        tp = typing.get_type_hints(cls)[f.name]
        if f.metadata.get("resumable"):
            found.append(dotted)
        elif dataclasses.is_dataclass(tp) and f.metadata.get("choose") is None:
            found += resumable_keys(tp, dotted)
    return tuple(found)


def build(cls: type, raw: Any, path: str, source: str) -> Any:
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
        if f.metadata["choose"] is not None:
            tp = f.metadata["choose"]({} if value is None else value, dotted, source)
        if dataclasses.is_dataclass(tp):
            values[f.name] = build(tp, {} if value is None else value, dotted, source)
            continue
        if tp is float and _matches(value, int):
            value = float(value)
        value = _number(value, tp)
        if not _matches(value, tp):
            raise ConfigError(f"{source}: {dotted} must be {type_name(tp)}, got {value!r}")
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


