"""Registries: one name -> builder table for datasets, models, objectives and metrics. Config validation,
the CLI's choices and its --help text are derived from them, so the lists never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Entry:
    """How to build one registered thing, and one line saying what it is."""

    build: Callable
    help: str
    kinds: tuple[str, ...] = field(default=("toy", "image"))  # kinds of data it works on


def names(registry: dict[str, Entry]) -> tuple[str, ...]:
    return tuple(registry)


def help_text(registry: dict[str, Entry]) -> str:
    """'a: what a is; b: what b is' for --help."""
    return "; ".join(f"{name}: {e.help}" for name, e in registry.items())
