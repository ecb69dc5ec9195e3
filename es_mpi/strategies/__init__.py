"""Algorithms on the engine: every module here except `base` defines one `Strategy` subclass and its job
section (`Config`); the registry finds them, so adding a method adds a module and job files."""

from __future__ import annotations

import importlib
import pkgutil

from es_mpi.strategies.base import Strategy

DEFAULT_STRATEGY = "openai_es"


def _discover() -> dict[str, type[Strategy]]:
    found: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy:
                found[value.kind] = value
    return dict(sorted(found.items()))


STRATEGIES: dict[str, type[Strategy]] = _discover()
