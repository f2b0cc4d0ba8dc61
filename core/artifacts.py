"""Artifact store: a local directory or any fsspec URL (s3://bucket/prefix with s3fs).

Keys are generated, never taken from user file names. Writes are atomic: locally a temp file
is written, fsynced and renamed; on object storage the whole object is sent in one upload, so
it appears complete or not at all. Reads verify the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import ConfigurationError, NotFound, QuorumError

TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ArtifactEntry:
    """One file in the store as listed, with its last change (for sweeping orphans)."""

    key: str
    size: int
    modified: datetime | None
    temporary: bool = False


def is_url(location: str | Path) -> bool:
    text = str(location)
    return "://" in text and not text.startswith("file://")


class ArtifactStore:
    """Files under generated keys, in a local directory or at an fsspec URL."""

    def __init__(self, root: str | Path, *, storage_options: dict[str, Any] | None = None) -> None:
        self.location = str(root)
        self.remote = is_url(root)
        self.storage_options = dict(storage_options or {})
        self.root: Path = Path(str(root).removeprefix("file://"))
        self._fs: Any = None
        self._base = ""
        if self.remote:
            self._fs, self._base = _open_filesystem(self.location, self.storage_options)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.location!r})"

    # --- writing ---------------------------------------------------------------------------

    def put(self, data: bytes, *, kind: str, suffix: str = "") -> StoredArtifact:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{kind}/{digest[:2]}/{uuid.uuid4().hex}{suffix}"
        _check_key(key)
        if self.remote:
            self._put_remote(key, data)
        else:
            self._put_local(key, data)
        return StoredArtifact(key, digest, len(data))

    def put_at(self, key: str, data: bytes) -> StoredArtifact:
        """Store under a key the caller chose (a partitioned path); an existing file is replaced."""
        _check_key(key)
        if self.remote:
            self._put_remote(key, data)
        else:
            self._put_local(key, data)
        return StoredArtifact(key, hashlib.sha256(data).hexdigest(), len(data))

    def _put_local(self, key: str, data: bytes) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)

    def _put_remote(self, key: str, data: bytes) -> None:
        try:
            self._fs.pipe_file(self._remote_path(key), data)
        except OSError as error:
            raise QuorumError(
                f"The artifact store at {self.location} refused the upload ({error}). "
                "Check QUORUM_ARTIFACT_STORE and its credentials, then try again."
            ) from None

    # --- reading ---------------------------------------------------------------------------

    def get(self, key: str, *, sha256: str | None = None) -> bytes:
        data = self._read(key)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise QuorumError(
                f"The stored file {key} no longer matches its recorded SHA-256; it was changed "
                "after upload. Do not use it; ask an admin to investigate."
            )
        return data

    def _read(self, key: str) -> bytes:
        missing = NotFound(f"The stored file {key} is missing from the artifact store.")
        if not self.remote:
            path = self._path(key)
            if not path.is_file():
                raise missing
            return path.read_bytes()
        _check_key(key)
        try:
            return bytes(self._fs.cat_file(self._remote_path(key)))
        except FileNotFoundError:
            raise missing from None

    def exists(self, key: str) -> bool:
        if not self.remote:
            return self._path(key).is_file()
        _check_key(key)
        self._fs.invalidate_cache()
        return bool(self._fs.isfile(self._remote_path(key)))

    def delete(self, key: str) -> None:
        if not self.remote:
            self._path(key).unlink(missing_ok=True)
            return
        _check_key(key)
        try:
            self._fs.rm_file(self._remote_path(key))
        except FileNotFoundError:
            pass
        self._fs.invalidate_cache()

    def keys(self) -> list[str]:
        return [entry.key for entry in self.entries() if not entry.temporary]

    def entries(self) -> list[ArtifactEntry]:
        """Every file in the store, leftover temp files of interrupted writes included."""
        found = self._remote_entries() if self.remote else self._local_entries()
        return sorted(found, key=lambda entry: entry.key)

    def _local_entries(self) -> list[ArtifactEntry]:
        if not self.root.exists():
            return []
        entries = []
        for path in self.root.rglob("*"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed while listing
                continue
            if not path.is_file():
                continue
            entries.append(
                ArtifactEntry(
                    key=path.relative_to(self.root).as_posix(),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                    temporary=path.name.startswith(TEMP_PREFIX),
                )
            )
        return entries

    def _remote_entries(self) -> list[ArtifactEntry]:
        self._fs.invalidate_cache()
        try:
            listing = self._fs.find(self._base, detail=True)
        except FileNotFoundError:
            return []
        entries = []
        for path, info in listing.items():
            if info.get("type") == "directory":
                continue
            key = str(PurePosixPath(path).relative_to(self._base))
            entries.append(
                ArtifactEntry(
                    key=key,
                    size=int(info.get("size") or 0),
                    modified=_remote_modified(info),
                    temporary=PurePosixPath(key).name.startswith(TEMP_PREFIX),
                )
            )
        return entries

    # --- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise NotFound(f"{key!r} is not a key of this artifact store.")
        return path

    def _remote_path(self, key: str) -> str:
        return f"{self._base}/{key}"


def _check_key(key: str) -> None:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or any(p in ("..", ".") for p in parts):
        raise NotFound(f"{key!r} is not a key of this artifact store.")


def _open_filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as error:
        raise ConfigurationError(
            f"QUORUM_ARTIFACT_STORE={url!r} cannot be opened: {error}. Use a local directory "
            "or a URL such as s3://bucket/prefix (install s3fs for S3)."
        ) from None
    return fs, str(base).rstrip("/")


def _remote_modified(info: dict[str, Any]) -> datetime | None:
    for name in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def default_store() -> ArtifactStore:
    from core.config import get_settings

    settings = get_settings()
    return ArtifactStore(settings.artifact_store, storage_options=settings.artifact_store_options)
