"""Artifact store: content written to a temp name, hashed, then renamed; read back verified."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFound, QuorumError


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    sha256: str
    size: int


class ArtifactStore:
    """A local directory of generated names; user file names never become paths."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, *, kind: str, suffix: str = "") -> StoredArtifact:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{kind}/{digest[:2]}/{uuid.uuid4().hex}{suffix}"
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".tmp-{uuid.uuid4().hex}")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        return StoredArtifact(key, digest, len(data))

    def get(self, key: str, *, sha256: str | None = None) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"The stored file {key} is missing from the artifact store.")
        data = path.read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise QuorumError(
                f"The stored file {key} no longer matches its recorded SHA-256; it was changed "
                "after upload. Do not use it; ask an admin to investigate."
            )
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise NotFound(f"{key!r} is not a key of this artifact store.")
        return path


def default_store() -> ArtifactStore:
    from core.config import get_settings

    return ArtifactStore(get_settings().artifact_store)
