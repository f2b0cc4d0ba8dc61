"""The audit trail as people use it: search, verify, export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import col, select

from core import audit, audit_anchor
from core.audit_check import TrailReport
from core.auth import Permission, Principal, require
from core.config import get_settings
from core.db import Database
from core.models import AuditEvent, JobRun, MLModel
from core.services import read_as
from core.services.registry import get_model, scoped_events

CSV_COLUMNS = (
    "seq",
    "created_at_utc",
    "actor",
    "action",
    "object_type",
    "object_id",
    "model_id",
    "summary",
    "prev_hash",
    "hash",
)


def search(
    db: Database,
    actor: Principal,
    *,
    model_id: int | None = None,
    actor_id: int | None = None,
    action: str | None = None,
    start: date | None = None,
    end: date | None = None,
    limit: int = 500,
) -> list[AuditEvent]:
    """Events the actor may read: a global audit role reads every event; a team role reads the
    events of its teams' models. Another team's model answers like an absent one (no events)."""
    with read_as(db, actor) as session:
        current = require(
            session, actor, Permission.VIEW_AUDIT, what="read the audit trail", anywhere=True
        )
        stmt = scoped_events(select(AuditEvent), audit_scope(current))
        if model_id is not None:
            stmt = stmt.where(AuditEvent.model_id == model_id)
        if actor_id is not None:
            stmt = stmt.where(AuditEvent.actor_id == actor_id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        if start is not None:
            stmt = stmt.where(AuditEvent.created_at >= datetime.combine(start, time.min, UTC))
        if end is not None:
            until = datetime.combine(end, time.min, UTC) + timedelta(days=1)
            stmt = stmt.where(AuditEvent.created_at < until)
        return list(session.exec(stmt.order_by(col(AuditEvent.seq).desc()).limit(limit)).all())


def audit_scope(current: Principal) -> frozenset[int] | None:
    """The teams whose events the principal may read; None: every event."""
    if current.can(Permission.VIEW_AUDIT):
        return None
    return frozenset(
        g.team_id
        for g in current.grants
        if g.team_id is not None and current.can(Permission.VIEW_AUDIT, g.team_id)
    )


def events(
    db: Database,
    actor: Principal,
    *,
    model: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[tuple[AuditEvent, str | None]]:
    """Newest first, each with its model's name; `before_seq` pages backwards. Scoped like
    `search`: another team's model answers as absent."""
    with read_as(db, actor) as session:
        current = require(
            session, actor, Permission.VIEW_AUDIT, what="read the audit trail", anywhere=True
        )
        stmt = scoped_events(select(AuditEvent), audit_scope(current))
        if model:
            stmt = stmt.where(AuditEvent.model_id == get_model(session, actor, model).id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        if before_seq is not None:
            stmt = stmt.where(AuditEvent.seq < before_seq)
        rows = list(session.exec(stmt.order_by(col(AuditEvent.seq).desc()).limit(limit)).all())
        ids = {e.model_id for e in rows if e.model_id is not None}
        names = {
            m.id: m.name for m in session.exec(select(MLModel).where(col(MLModel.id).in_(ids)))
        }
        return [(e, names.get(e.model_id) if e.model_id else None) for e in rows]


def verify(db: Database, actor: Principal) -> TrailReport:
    """Every MAC and link, checked against the signed checkpoints."""
    with read_as(db, actor) as session:
        require(session, actor, Permission.VIEW_AUDIT, what="verify the audit trail", anywhere=True)
        return audit_anchor.verify(session, get_settings())


def anchor_status(db: Database, actor: Principal) -> audit_anchor.AnchorStatus:
    """The public key that checks checkpoints, the last checkpoint and what is not yet in one."""
    with read_as(db, actor) as session:
        require(session, actor, Permission.VIEW_AUDIT, what="read the audit anchors", anywhere=True)
        return audit_anchor.status(session, get_settings())


def recent_job_runs(db: Database, actor: Principal, limit: int = 20) -> list[JobRun]:
    with read_as(db, actor) as session:
        require(session, actor, Permission.VIEW_AUDIT, what="read the job runs", anywhere=True)
        return list(session.exec(select(JobRun).order_by(col(JobRun.id).desc()).limit(limit)).all())


def action_names(db: Database) -> list[str]:
    with db.read() as session:
        return audit.actions(session)


def to_csv(events: list[AuditEvent]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        writer.writerow(
            [
                e.seq,
                e.created_at.isoformat(),
                _cell(e.actor_label),
                e.action,
                e.object_type,
                e.object_id,
                e.model_id or "",
                _cell(e.summary),
                e.prev_hash,
                e.hash,
            ]
        )
    return buffer.getvalue()


def _cell(text: str) -> str:
    """Keep spreadsheet programs from running user text as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
