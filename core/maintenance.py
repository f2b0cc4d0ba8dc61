"""Store maintenance: find artifact files no row points at, and rows whose file is gone.

A file is written before the row that names it is committed, so a process killed in between
leaves an orphan file. Only orphans older than a grace period are removed, so an upload still
in flight in another process is never touched. Rows are never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core import audit
from core.artifacts import ArtifactEntry, ArtifactStore
from core.auth import OPERATOR
from core.db import Database
from core.errors import InvalidInput
from core.models import BatchFile, Evaluation, Evidence, ModelVersion, utcnow

DEFAULT_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class MissingArtifact:
    """A row that names a file the store does not hold."""

    table: str
    row_id: int
    key: str


@dataclass(frozen=True)
class SweepReport:
    dry_run: bool
    older_than_seconds: float
    checked_files: int
    referenced: int
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    kept_recent: list[str] = field(default_factory=list)
    missing: list[MissingArtifact] = field(default_factory=list)

    @property
    def message(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"Checked {self.checked_files} stored files against {self.referenced} references: "
            f"{verb} {len(self.removed)} orphaned files ({self.removed_bytes} bytes)."
        ]
        lines += [f"  {verb}: {key}" for key in self.removed]
        if self.kept_recent:
            lines.append(
                f"Kept {len(self.kept_recent)} unreferenced files younger than "
                f"{self.older_than_seconds:g} s (uploads may still be in flight)."
            )
        if self.missing:
            lines.append(
                f"{len(self.missing)} records point at missing files; restore them from a "
                "backup of the artifact store:"
            )
            lines += [f"  {m.table} {m.row_id}: {m.key}" for m in self.missing]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "older_than_seconds": self.older_than_seconds,
            "checked_files": self.checked_files,
            "referenced": self.referenced,
            "removed": self.removed,
            "removed_bytes": self.removed_bytes,
            "kept_recent": self.kept_recent,
            "missing": [m.__dict__ for m in self.missing],
            "message": self.message,
        }


def referenced_keys(session: Session) -> dict[str, list[tuple[str, int]]]:
    """Every artifact key a row points at, with the rows that point at it."""
    found: dict[str, list[tuple[str, int]]] = {}
    sources = (
        ("model_version", ModelVersion.id, ModelVersion.artifact_key),
        ("evaluation", Evaluation.id, Evaluation.dataset_key),
        ("evidence", Evidence.id, Evidence.document_key),
        ("batch_file", BatchFile.id, BatchFile.key),
    )
    for table, id_column, key_column in sources:
        rows = session.exec(select(id_column, key_column).where(col(key_column).is_not(None)))
        for row_id, key in rows:
            if key:
                found.setdefault(str(key), []).append((table, int(row_id or 0)))
    return found


def sweep(
    db: Database,
    store: ArtifactStore,
    *,
    dry_run: bool = False,
    older_than_seconds: float = DEFAULT_GRACE_SECONDS,
) -> SweepReport:
    """Remove stored files no row points at and older than the grace period; report rows
    pointing at missing files (those rows are kept)."""
    if older_than_seconds < 0:
        raise InvalidInput("The grace period must be zero or more seconds.")
    entries = store.entries()  # listed before the rows are read: see the module docstring
    with db.read() as session:
        references = referenced_keys(session)
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    orphans = [e for e in entries if e.temporary or e.key not in references]
    old = [e for e in orphans if _older(e, cutoff)]
    if not dry_run:
        for entry in old:
            store.delete(entry.key)
    stored = {e.key for e in entries if not e.temporary}
    report = SweepReport(
        dry_run=dry_run,
        older_than_seconds=older_than_seconds,
        checked_files=len(entries),
        referenced=len(references),
        removed=[e.key for e in old],
        removed_bytes=sum(e.size for e in old),
        kept_recent=[e.key for e in orphans if not _older(e, cutoff)],
        missing=_missing(store, references, stored),
    )
    if old and not dry_run:
        _record(db, store, report)
    return report


def _older(entry: ArtifactEntry, cutoff: datetime) -> bool:
    return entry.modified is not None and entry.modified <= cutoff


def _missing(
    store: ArtifactStore, references: dict[str, list[tuple[str, int]]], stored: set[str]
) -> list[MissingArtifact]:
    missing = []
    for key, rows in sorted(references.items()):
        if key in stored or store.exists(key):  # exists(): written after the listing
            continue
        missing += [MissingArtifact(table, row_id, key) for table, row_id in rows]
    return missing


def _record(db: Database, store: ArtifactStore, report: SweepReport) -> None:
    with db.write() as session:
        audit.record(
            session,
            OPERATOR,
            "maintenance.swept",
            object_type="artifact_store",
            object_id=store.location[:80],
            summary=f"Removed {len(report.removed)} orphaned artifact files "
            f"({report.removed_bytes} bytes) older than {report.older_than_seconds:g} s",
            details={"removed": report.removed[:500], "missing": len(report.missing)},
        )
