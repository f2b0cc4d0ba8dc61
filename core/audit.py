"""Keyed, hash-chained audit events, written in the caller's transaction (verified by
`core.audit_anchor`, which also checks them against signed checkpoints)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from core.audit_format import (
    GENESIS_HASH,
    KEYED,
    LEGACY,
    REKEYED_ACTION,
    keyed_hash,
)
from core.audit_keys import mac_key
from core.auth import SYSTEM, Principal
from core.config import get_settings
from core.models import AuditEvent, utcnow

_PG_AUDIT_LOCK = 7_302_114  # advisory lock key that serialises appends on PostgreSQL


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """The event as plain values, exactly as hashed and exported."""
    return {
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
        "hash": event.hash,
        "mac": event.mac,
    }


def store_url(session: Session) -> str:
    """The URL of the session's store (password hidden): it names the store's audit keys."""
    return str(session.get_bind().engine.url)


def _lock_chain(session: Session) -> None:
    """Only one transaction may append at a time (SQLite: BEGIN IMMEDIATE already holds it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK}
        )


def _last(session: Session) -> AuditEvent | None:
    return session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()


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
    """Append one event, keyed with the server's audit key, in the caller's transaction."""
    _lock_chain(session)
    last = _last(session)
    if last is not None and last.mac == LEGACY:
        last = _append(session, last, SYSTEM, REKEYED_ACTION, **_rekey_fields(last))
    return _append(
        session,
        last,
        actor,
        action,
        object_type=object_type,
        object_id=object_id,
        summary=summary,
        model_id=model_id,
        details=details,
    )


def rekey(session: Session) -> AuditEvent | None:
    """Switch a legacy SHA-256 chain to the keyed one (the migration calls this); None if
    the trail is empty or already keyed."""
    _lock_chain(session)
    last = _last(session)
    if last is None or last.mac != LEGACY:
        return None
    return _append(session, last, SYSTEM, REKEYED_ACTION, **_rekey_fields(last))


def _rekey_fields(last: AuditEvent) -> dict[str, Any]:
    return {
        "object_type": "audit",
        "object_id": last.seq,
        "summary": (
            f"The audit chain is keyed from here on; events #1–#{last.seq} keep their "
            "SHA-256 hashes and end in the head named in the details."
        ),
        "details": {"last_sha256_seq": last.seq, "last_sha256_head": last.hash},
    }


def _append(
    session: Session,
    last: AuditEvent | None,
    actor: Principal | None,
    action: str,
    *,
    object_type: str,
    object_id: Any = "",
    summary: str,
    model_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
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
        mac=KEYED,
    )
    event.hash = keyed_hash(mac_key(get_settings(), store_url(session)), event_fields(event))
    session.add(event)
    session.flush()
    return event


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str))


def iter_events(
    session: Session, batch: int = 5000, after: int = 0, through: int | None = None
) -> Iterator[AuditEvent]:
    """Every event in sequence order, read in batches."""
    last_seq = after
    while True:
        stmt = select(AuditEvent).where(AuditEvent.seq > last_seq)
        if through is not None:
            stmt = stmt.where(AuditEvent.seq <= through)
        rows = session.exec(stmt.order_by(col(AuditEvent.seq)).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq


def last_seq(session: Session) -> int:
    return int(session.exec(select(func.coalesce(func.max(AuditEvent.seq), 0))).one())


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
