"""Hash-chained audit events, written in the caller's transaction, and their verifier."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from core.auth import Principal
from core.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64
_PG_AUDIT_LOCK = 7_302_114  # advisory lock key that serialises appends on PostgreSQL


def _canonical(event: AuditEvent) -> bytes:
    payload = {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "model_id": event.model_id,
        "summary": event.summary,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def _lock_chain(session: Session) -> None:
    """Only one transaction may append at a time (SQLite: BEGIN IMMEDIATE already holds it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK}
        )


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    *,
    object_type: str,
    object_id: Any = "",
    summary: str,
    model_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    _lock_chain(session)
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        created_at=utcnow(),
        actor_id=actor.user_id if actor else None,
        actor_label=(actor.label if actor else "anonymous")[:254],  # the column holds 254
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        model_id=model_id,
        summary=summary,
        details=_json_safe(details or {}),
        prev_hash=last.hash if last else GENESIS_HASH,
        hash="",
    )
    event.hash = compute_hash(event)
    session.add(event)
    session.flush()
    return event


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    problem: str = ""

    @property
    def message(self) -> str:
        if self.intact:
            return f"Audit trail intact: {self.checked} events, every hash matches its chain."
        return (
            f"Audit trail broken at event #{self.first_broken_seq} (id {self.first_broken_id}): "
            f"{self.problem}. Events before it are intact; investigate from this event on."
        )


def _iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    last_seq = 0
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(AuditEvent.seq > last_seq)
            .order_by(col(AuditEvent.seq))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq


def verify(session: Session) -> ChainReport:
    """Walk the chain by sequence; name the first event that was edited, removed or moved."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in _iter_events(session):
        problem = _check(event, prev_hash, expected_seq)
        if problem:
            return ChainReport(False, checked, event.seq, event.id, problem)
        prev_hash, expected_seq, checked = event.hash, event.seq + 1, checked + 1
    return ChainReport(True, checked)


def _check(event: AuditEvent, prev_hash: str, expected_seq: int) -> str:
    if event.seq != expected_seq:
        return f"expected event #{expected_seq} next but found #{event.seq}: events were removed"
    if event.prev_hash != prev_hash:
        return "its link to the previous event does not match: events were removed or reordered"
    if compute_hash(event) != event.hash:
        return "its content does not match its hash: the event was edited"
    return ""


def count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(AuditEvent)).one())


@dataclass(frozen=True)
class AuditFilter:
    model_id: int | None = None
    actor_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500
    before_seq: int | None = None  # page backwards: events older than this sequence number


def query(session: Session, f: AuditFilter) -> list[AuditEvent]:
    stmt = select(AuditEvent)
    if f.before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < f.before_seq)
    if f.model_id is not None:
        stmt = stmt.where(AuditEvent.model_id == f.model_id)
    if f.actor_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == f.actor_id)
    if f.action:
        stmt = stmt.where(AuditEvent.action == f.action)
    if f.since is not None:
        stmt = stmt.where(AuditEvent.created_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEvent.created_at < f.until)
    return list(session.exec(stmt.order_by(col(AuditEvent.seq).desc()).limit(f.limit)).all())


_DISTINCT_ACTIONS = text(
    "WITH RECURSIVE found(action) AS ("
    " SELECT MIN(action) FROM audit_event"
    " UNION ALL"
    " SELECT (SELECT MIN(action) FROM audit_event WHERE action > found.action)"
    " FROM found WHERE found.action IS NOT NULL)"
    " SELECT action FROM found WHERE action IS NOT NULL"
)


def actions(session: Session) -> list[str]:
    """The distinct actions, one index seek each (not a scan of the whole trail)."""
    return sorted(str(a) for a in session.connection().execute(_DISTINCT_ACTIONS).scalars())
