"""`es-mpi keys`: every job key with its default, check and meaning, as Markdown, read from the schema.

The schema is the frozen dataclasses under `Job` (es_mpi.runs.job): a field whose type is a dataclass is a
section, any other field is a key whose metadata holds its `check` and `help`. A section whose class is
chosen by its contents (metadata `choose`, e.g. the strategy's kind) is listed once per dataclass it may
be: each subclass of the declared type. docs/job-keys.md is this command's output, kept in step by a test.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal

import yaml

from es_mpi.runs.job import Job
from es_mpi.runs.schema import type_name

REGENERATE = "es-mpi keys > docs/job-keys.md"

# Values a check is tried on to find the words it refuses with; the validator runs checks only on values
# of the field's type, and never on null.
_PROBES: dict[Any, tuple] = {
    int: (-1, 0, 10**12),
    float: (-1.0, 0.0, 1.0, 10.0**12),
    str: ("", "?"),
    bool: (False, True),
    dict: ({},),
}


@dataclasses.dataclass(frozen=True)
class Section:
    dotted: str  # e.g. "env.adaptive"
    title: str  # the section field's help, plus which variant it is for a chosen section
    keys: list[dataclasses.Field]
    hints: dict[str, Any]


def _probes(tp: Any) -> tuple:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return typing.get_args(tp)
    if origin is list:
        return tuple([p] for p in _probes(typing.get_args(tp)[0])) + ([],)
    if origin is not None:  # a union: the probes of each member
        return tuple(p for arg in typing.get_args(tp) for p in _probes(arg))
    return _PROBES.get(tp, ())


def check_words(check: Callable[[Any], str | None] | None, tp: Any) -> str:
    """What a check demands, in its own error words (e.g. 'must be > 0'); '' for no check."""
    if check is None:
        return ""
    for value in _probes(tp):
        try:
            problem = check(value)
        except (TypeError, ValueError, AttributeError):
            continue
        if problem:
            return problem
    name = getattr(check, "__name__", "")
    return f"checked by {name}" if name and name != "<lambda>" else "a further check"


def _variants(declared: type) -> list[type]:
    """Every dataclass a chosen section may be: the subclasses of its declared type, by name."""
    found, todo = [], list(declared.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls):
            found.append(cls)
    return sorted(found, key=_label)


def _label(cls: type) -> str:
    """A variant's name: the value of its one-value Literal field (the strategy's kind), else the class."""
    for name, tp in typing.get_type_hints(cls).items():
        args = typing.get_args(tp) if typing.get_origin(tp) is Literal else ()
        if len(args) == 1:
            return f"{name}: {args[0]}"
    return cls.__qualname__


def sections(cls: type = Job, dotted: str = "", title: str = "") -> Iterator[Section]:
    """The schema's sections depth first, each with its own keys (nested sections follow it)."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    keys = [f for f in fields if not dataclasses.is_dataclass(hints[f.name]) and not f.metadata.get("choose")]
    if dotted and keys:
        yield Section(dotted, title, keys, hints)
    for f in fields:
        child = f"{dotted}.{f.name}" if dotted else f.name
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choose"):
            for variant in _variants(hints[f.name]):
                default = " (the default)" if type(f.default) is variant else ""
                yield from sections(variant, child, f"{help_text}; with `{_label(variant)}`{default}")
        elif dataclasses.is_dataclass(hints[f.name]):
            yield from sections(hints[f.name], child, help_text)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def keys_markdown() -> str:
    lines = [
        "# Job keys",
        "",
        "Every key of a job file, generated from the schema (the dataclasses of `es_mpi/runs/job.py` and of",
        f"the strategies) by `es-mpi keys`; regenerate this file with `{REGENERATE}`.",
        "A key left out takes its default; a required key has none. The check column gives the type and the",
        "condition in the validator's own words: a job that breaks one stops before any training with a",
        "one-line error naming the file, the key and the value. Rules that tie several keys together are",
        "checked as well and named in their own error. Keys marked \"may change on resume\" change no parameter",
        "of the run: a resumed run may set them anew; any other change is refused.",
    ]
    for section in sections():
        lines += ["", f"## `{section.dotted}`: {_cell(section.title)}", "",
                  "| key | default | check | meaning |", "|---|---|---|---|"]
        for f in section.keys:
            tp = section.hints[f.name]
            check = ", ".join(w for w in (type_name(tp), check_words(f.metadata.get("check"), tp)) if w)
            meaning = f.metadata.get("help", "") + (" (may change on resume)" if f.metadata.get("resumable") else "")
            lines.append(f"| `{section.dotted}.{f.name}` | {_default(f)} | {_cell(check)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def keys_command(args) -> int:
    print(keys_markdown(), end="")
    return 0
