"""What a worker may use; chosen by the server, applied by the worker to itself before it
reads a single byte of the artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 3072
    cpu_seconds: int = 600
    file_mb: int = 16
    processes: int = 32
    wall_seconds: float = 120.0
    uid: int = 65534
    gid: int = 65534

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Limits:
        fields = {k: value[k] for k in cls.__dataclass_fields__ if k in value}
        return cls(**fields)
