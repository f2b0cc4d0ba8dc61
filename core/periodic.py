"""The registry of periodic jobs: `@periodic("name", every=...)` on a function (db, settings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from core.config import Settings
from core.db import Database

JobFunction = Callable[[Database, Settings], str]


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: JobFunction


_registry: dict[str, Job] = {}


def periodic(name: str, *, every: timedelta) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        _registry[name] = Job(name, every, function)
        return function

    return register


def registered() -> list[Job]:
    return sorted(_registry.values(), key=lambda j: j.name)
