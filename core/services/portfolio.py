"""Read models for the home page: my inbox, the portfolio, recent activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from core import audit
from core.auth import Principal
from core.db import Database
from core.errors import NotFound, PermissionDenied
from core.models import (
    AuditEvent,
    Deployment,
    MLModel,
    ModelVersion,
    Notification,
    Team,
    User,
    utcnow,
)
from core.services.registry import state_label


@dataclass(frozen=True)
class ModelRow:
    name: str
    team: str
    owner: str
    risk_tier: str
    task: str
    latest_version: int | None
    latest_state: str
    live: dict[str, int]


@dataclass(frozen=True)
class Portfolio:
    models: list[ModelRow]
    state_counts: dict[str, int]
    live_count: int
    recent: list[AuditEvent]


def portfolio(db: Database, *, recent: int = 10) -> Portfolio:
    with db.read() as session:
        rows = _model_rows(session)
        counts: dict[str, int] = {}
        for row in rows:
            if row.latest_version is not None:
                counts[row.latest_state] = counts.get(row.latest_state, 0) + 1
        events = list(
            session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(recent))
        )
        live = sum(len(r.live) for r in rows)
        return Portfolio(rows, counts, live, events)


def _model_rows(session: Session) -> list[ModelRow]:
    models = session.exec(
        select(MLModel).where(col(MLModel.archived_at).is_(None)).order_by(col(MLModel.name))
    ).all()
    teams = {t.id: t.name for t in session.exec(select(Team))}
    owners = {u.id: u.name for u in session.exec(select(User))}
    latest = _latest_versions(session)
    live = _live_versions(session)
    return [
        ModelRow(
            name=m.name,
            team=teams.get(m.team_id, "?"),
            owner=owners.get(m.owner_id, "?"),
            risk_tier=m.risk_tier,
            task=m.task,
            latest_version=latest[m.id][0] if m.id in latest else None,
            latest_state=state_label(latest[m.id][1]) if m.id in latest else "No versions",
            live=live.get(m.id or 0, {}),
        )
        for m in models
    ]


def _latest_versions(session: Session) -> dict[int | None, tuple[int, str]]:
    newest = (
        select(col(ModelVersion.model_id), func.max(ModelVersion.number).label("n"))
        .group_by(col(ModelVersion.model_id))
        .subquery()
    )
    rows = session.exec(
        select(ModelVersion.model_id, ModelVersion.number, ModelVersion.state).join(
            newest,
            (col(ModelVersion.model_id) == newest.c.model_id)
            & (col(ModelVersion.number) == newest.c.n),
        )
    ).all()
    return {model_id: (number, state) for model_id, number, state in rows}


def _live_versions(session: Session) -> dict[int, dict[str, int]]:
    rows = session.exec(
        select(Deployment.model_id, Deployment.environment, ModelVersion.number)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(col(Deployment.live_until).is_(None))
    ).all()
    result: dict[int, dict[str, int]] = {}
    for model_id, env, number in rows:
        result.setdefault(model_id, {})[env] = number
    return result


def inbox(db: Database, principal: Principal, *, include_read: bool = False) -> list[Notification]:
    with db.read() as session:
        stmt = select(Notification).where(Notification.user_id == principal.user_id)
        if not include_read:
            stmt = stmt.where(col(Notification.read_at).is_(None))
        return list(session.exec(stmt.order_by(col(Notification.created_at).desc()).limit(100)))


def mark_read(db: Database, principal: Principal, notification_id: int) -> None:
    with db.write() as session:
        note = session.get(Notification, notification_id)
        if note is None:
            raise NotFound("That inbox item no longer exists.")
        if note.user_id != principal.user_id:
            raise PermissionDenied("That inbox item belongs to someone else.")
        note.read_at = note.read_at or utcnow()
        session.add(note)


def notify(
    session: Session,
    user_ids: set[int],
    kind: str,
    title: str,
    *,
    body: str = "",
    link: str = "",
    model_id: int | None = None,
    version_id: int | None = None,
) -> None:
    """Add an inbox item for each person, inside the caller's transaction."""
    for user_id in sorted(user_ids):
        session.add(
            Notification(
                user_id=user_id,
                kind=kind,
                title=title[:200],
                body=body,
                link=link,
                model_id=model_id,
                version_id=version_id,
            )
        )


def since(when: datetime) -> str:
    delta = utcnow() - when
    if delta.days > 0:
        return f"{delta.days} d ago"
    hours = delta.seconds // 3600
    if hours:
        return f"{hours} h ago"
    return f"{max(delta.seconds // 60, 0)} min ago"


def activity_count(db: Database) -> int:
    with db.read() as session:
        return audit.count(session)


@dataclass(frozen=True)
class Task:
    kind: str
    title: str
    detail: str
    link: str


def my_versions_needing_action(db: Database, principal: Principal) -> list[Task]:
    """Versions I registered that wait for me: not yet submitted, or changes requested."""
    from core.models import VersionState

    with db.read() as session:
        rows = session.exec(
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(
                ModelVersion.registered_by_id == principal.user_id,
                col(ModelVersion.state).in_(
                    [VersionState.REGISTERED, VersionState.CHANGES_REQUESTED]
                ),
                col(MLModel.archived_at).is_(None),
            )
            .order_by(col(ModelVersion.updated_at).desc())
        ).all()
    return [
        Task(
            "changes_requested" if v.state == VersionState.CHANGES_REQUESTED else "submit",
            f"{m.name} v{v.number}",
            "Changes were requested: answer them, then resubmit."
            if v.state == VersionState.CHANGES_REQUESTED
            else "Registered but not submitted for review yet.",
            f"pages/3_Reviews.py?model={m.name}&version={v.number}",
        )
        for v, m in rows
    ]
