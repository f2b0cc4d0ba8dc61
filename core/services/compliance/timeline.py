"""A model version timeline from the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.auth import Principal
from core.db import Database
from core.models import (
    MLModel,
    ModelVersion,
    Signoff,
)
from core.services import read_as
from core.services.compliance.checklists import _names
from core.services.compliance.common import REVOCATION
from core.services.compliance.signoffs import _aware, _utc
from core.services.registry import get_model

# --- the timeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str  # registration, model, review, comment, decision, sign-off, deployment, alert, ...
    version: int | None
    actor: str
    summary: str


_FROM_TABLES = (
    "comment.",
    "decision.",
    "signoff.",
    "deployment.",
    "alert.",
    "retraining.",
    "finding.",
)
_SKIPPED = ("permission.", "checklist.", "checklist_template.")


def _audit_kind(action: str) -> str:
    if action == "version.registered":
        return "registration"
    if action == "version.submitted":
        return "review"
    if action == "pack.exported":
        return "export"
    return action.split(".", 1)[0]


def timeline(
    db: Database, actor: Principal, model_name: str, *, limit: int = 2000
) -> list[TimelineEntry]:
    """One chronological list of what happened to a model, oldest first."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        return model_timeline(session, model, limit=limit)


def model_timeline(session: Session, model: MLModel, *, limit: int = 2000) -> list[TimelineEntry]:
    from core.models import Alert, AuditEvent, Comment, Decision, Deployment, RetrainingTask

    names = _names(session)
    numbers = {
        v.id: v.number
        for v in session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id))
    }
    ids = list(numbers)
    entries: list[TimelineEntry] = []
    for event in session.exec(
        select(AuditEvent)
        .where(AuditEvent.model_id == model.id)
        .order_by(col(AuditEvent.seq).desc())
        .limit(limit)
    ):
        if event.action.startswith(_FROM_TABLES + _SKIPPED):
            continue
        number = (
            numbers.get(int(event.object_id))
            if event.object_type == "version" and event.object_id.isdigit()
            else None
        )
        entries.append(
            TimelineEntry(
                event.created_at,
                _audit_kind(event.action),
                number,
                event.actor_label.split(" <")[0],
                event.summary,
            )
        )
    for c in session.exec(select(Comment).where(col(Comment.version_id).in_(ids))):
        entries.append(
            TimelineEntry(
                c.created_at,
                "comment",
                numbers.get(c.version_id),
                names.get(c.author_id, "?"),
                c.body[:300],
            )
        )
    for d in session.exec(select(Decision).where(col(Decision.version_id).in_(ids))):
        entries.append(
            TimelineEntry(
                d.created_at,
                "decision",
                numbers.get(d.version_id),
                names.get(d.reviewer_id, "?"),
                f"{d.kind.replace('_', ' ')} (round {d.review_round})"
                + (f": {d.reason}" if d.reason else ""),
            )
        )
    for s in session.exec(select(Signoff).where(col(Signoff.version_id).in_(ids))):
        entries.append(_signoff_entry(s, numbers.get(s.version_id)))
    for dep in session.exec(select(Deployment).where(Deployment.model_id == model.id)):
        entries.append(
            TimelineEntry(
                dep.live_from,
                "deployment",
                numbers.get(dep.version_id),
                names.get(dep.actor_id, "?"),
                f"{dep.action} to {dep.environment}" + (f": {dep.reason}" if dep.reason else ""),
            )
        )
    for a in session.exec(select(Alert).where(Alert.model_id == model.id)):
        entries.append(
            TimelineEntry(
                a.created_at,
                "alert",
                numbers.get(a.version_id),
                "monitoring",
                f"{a.environment}: {a.message}",
            )
        )
    for t in session.exec(select(RetrainingTask).where(RetrainingTask.model_id == model.id)):
        entries.append(
            TimelineEntry(
                t.created_at,
                "retraining",
                numbers.get(t.version_id),
                "monitoring",
                f"retraining {t.status}: {t.reason}",
            )
        )
    entries += _finding_entries(session, model, numbers, names)
    entries.sort(key=lambda e: (_aware(e.when) or e.when, e.kind))
    return entries


def _finding_entries(
    session: Session, model: MLModel, numbers: dict[int | None, int], names: dict[int | None, str]
) -> list[TimelineEntry]:
    from core.models import Finding, FindingEvent

    found = {f.id: f for f in session.exec(select(Finding).where(Finding.model_id == model.id))}
    if not found:
        return []
    events = session.exec(
        select(FindingEvent).where(col(FindingEvent.finding_id).in_(list(found)))
    ).all()
    entries = []
    for e in events:
        f = found[e.finding_id]
        head = f"{e.action} {f.severity} finding #{f.id}"
        if e.action == "raised":
            head += f" (due {f.due_on.isoformat()})"
        if e.filename:
            head += f" with evidence {e.filename}"
        entries.append(
            TimelineEntry(
                e.created_at,
                "finding",
                numbers.get(f.version_id),
                names.get(e.actor_id, "Quorum") if e.actor_id else "Quorum",
                head + (f": {e.note[:300]}" if e.note else ""),
            )
        )
    return entries


def _signoff_entry(s: Signoff, number: int | None) -> TimelineEntry:
    if s.kind == REVOCATION:
        text = f"revoked sign-off #{s.supersedes_id} '{s.meaning}': {s.reason}"
    else:
        text = f"signed '{s.meaning}' as {s.role.replace('_', ' ')} at {_utc(s.signed_at)}"
        if s.expires_at:
            text += f", expires {_utc(s.expires_at)}"
    return TimelineEntry(s.signed_at, "sign-off", number, s.printed_name, text)
