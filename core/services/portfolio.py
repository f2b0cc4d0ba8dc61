"""Read models for the home page: my inbox, the portfolio, recent activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import true
from sqlmodel import Session, col, func, select

from core.auth import Principal, visible_teams
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
from core.services import read_as
from core.services.notifications.outbox import notify as notify  # the one inbox entry point
from core.services.registry import scoped, scoped_events, state_label


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
    total_models: int = 0


def portfolio(
    db: Database,
    actor: Principal,
    *,
    recent: int = 10,
    limit: int | None = None,
    offset: int = 0,
) -> Portfolio:
    """Counts over every active model the actor may see; rows for one page of them (all when
    `limit` is None); recent events of those models (every event for a global role)."""
    with read_as(db, actor) as session:
        scope = visible_teams(session, actor)
        rows = _model_rows(session, scope, limit, offset)
        return Portfolio(
            rows,
            _state_counts(session, scope),
            _live_count(session, scope),
            _recent_events(session, scope, recent),
            total_models=_active_model_count(session, scope),
        )


def _recent_events(session: Session, scope: frozenset[int] | None, n: int) -> list[AuditEvent]:
    """The `n` newest events of the models in `scope` (every event when None).

    Walking the whole trail newest first until `n` events of the scope turn up reads every
    other team's newer events on the way; on PostgreSQL the newest `n` of each visible model
    come from the (model_id, seq) index instead and the newest `n` of those are kept: the
    same events, read in time that does not grow with the rest of the trail."""
    if n <= 0:
        return []
    newest = col(AuditEvent.seq).desc()
    if scope is None or session.get_bind().dialect.name != "postgresql":
        stmt = scoped_events(select(AuditEvent), scope).order_by(newest).limit(n)
        return list(session.exec(stmt))
    per_model = (
        sa_select(col(AuditEvent.id).label("id"))
        .where(col(AuditEvent.model_id) == MLModel.id)
        .order_by(newest)
        .limit(n)
        .lateral()
    )
    ids = (
        sa_select(per_model.c.id)
        .select_from(MLModel)
        .join(per_model, true())
        .where(col(MLModel.team_id).in_(scope))
    )
    stmt = select(AuditEvent).where(col(AuditEvent.id).in_(ids)).order_by(newest).limit(n)
    return list(session.exec(stmt))


def model_names(db: Database, actor: Principal) -> list[str]:
    """Names of the active models the actor may see, sorted: what a model picker needs."""
    with read_as(db, actor) as session:
        stmt = select(MLModel.name).where(col(MLModel.archived_at).is_(None))
        return list(
            session.exec(
                scoped(stmt, visible_teams(session, actor)).order_by(col(MLModel.name))
            ).all()
        )


def _active_model_count(session: Session, scope: frozenset[int] | None) -> int:
    stmt = select(func.count()).select_from(MLModel).where(col(MLModel.archived_at).is_(None))
    return int(session.exec(scoped(stmt, scope)).one())


def _newest_numbers(scope: frozenset[int] | None) -> Any:
    """Each active visible model's newest version number: the scope applies inside, so a
    team's counts read that team's versions, not every version in the store."""
    stmt = (
        select(col(ModelVersion.model_id), func.max(ModelVersion.number).label("n"))
        .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
        .where(col(MLModel.archived_at).is_(None))
    )
    return scoped(stmt, scope).group_by(col(ModelVersion.model_id)).subquery()


def _state_counts(session: Session, scope: frozenset[int] | None) -> dict[str, int]:
    newest = _newest_numbers(scope)
    stmt = select(ModelVersion.state, func.count()).join(
        newest,
        (col(ModelVersion.model_id) == newest.c.model_id)
        & (col(ModelVersion.number) == newest.c.n),
    )
    rows = session.exec(stmt.group_by(col(ModelVersion.state))).all()
    counts: dict[str, int] = {}
    for state, n in rows:
        label = state_label(state)
        counts[label] = counts.get(label, 0) + int(n)
    return counts


def _live_count(session: Session, scope: frozenset[int] | None) -> int:
    stmt = (
        select(func.count())
        .select_from(Deployment)
        .join(MLModel, col(MLModel.id) == Deployment.model_id)
        .where(col(Deployment.live_until).is_(None), col(MLModel.archived_at).is_(None))
    )
    return int(session.exec(scoped(stmt, scope)).one())


def _model_rows(
    session: Session, scope: frozenset[int] | None, limit: int | None, offset: int
) -> list[ModelRow]:
    stmt = (
        sa_select(
            col(MLModel.id),
            col(MLModel.name),
            col(Team.name),
            col(User.name),
            col(MLModel.risk_tier),
            col(MLModel.task),
        )
        .join(Team, col(Team.id) == MLModel.team_id, isouter=True)
        .join(User, col(User.id) == MLModel.owner_id, isouter=True)
        .where(col(MLModel.archived_at).is_(None))
        .order_by(col(MLModel.name))
    )
    stmt = scoped(stmt, scope)
    if limit is not None:
        stmt = stmt.limit(limit).offset(max(offset, 0))
    models = session.execute(stmt).tuples().all()
    ids = [m[0] for m in models]
    latest = _latest_versions(session, ids if limit is not None else None)
    live = _live_versions(session, ids if limit is not None else None)
    labels: dict[str, str] = {}
    rows = []
    for model_id, name, team, owner, risk_tier, task in models:
        newest = latest.get(model_id)
        state = "No versions"
        if newest is not None:
            state = labels.get(newest[1]) or labels.setdefault(newest[1], state_label(newest[1]))
        rows.append(
            ModelRow(
                name=name,
                team=team or "?",
                owner=owner or "?",
                risk_tier=risk_tier,
                task=task,
                latest_version=newest[0] if newest else None,
                latest_state=state,
                live=live.get(model_id or 0, {}),
            )
        )
    return rows


def _latest_versions(
    session: Session, model_ids: list[int | None] | None = None
) -> dict[int | None, tuple[int, str]]:
    newest = select(col(ModelVersion.model_id), func.max(ModelVersion.number).label("n"))
    if model_ids is not None:
        newest = newest.where(col(ModelVersion.model_id).in_(model_ids))
    sub = newest.group_by(col(ModelVersion.model_id)).subquery()
    rows = session.exec(
        select(ModelVersion.model_id, ModelVersion.number, ModelVersion.state).join(
            sub,
            (col(ModelVersion.model_id) == sub.c.model_id) & (col(ModelVersion.number) == sub.c.n),
        )
    ).all()
    return {model_id: (number, state) for model_id, number, state in rows}


def _live_versions(
    session: Session, model_ids: list[int | None] | None = None
) -> dict[int, dict[str, int]]:
    stmt = (
        select(Deployment.model_id, Deployment.environment, ModelVersion.number)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(col(Deployment.live_until).is_(None))
    )
    if model_ids is not None:
        stmt = stmt.where(col(Deployment.model_id).in_(model_ids))
    result: dict[int, dict[str, int]] = {}
    for model_id, env, number in session.exec(stmt).all():
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


def since(when: datetime) -> str:
    delta = utcnow() - when
    if delta.days > 0:
        return f"{delta.days} d ago"
    hours = delta.seconds // 3600
    if hours:
        return f"{hours} h ago"
    return f"{max(delta.seconds // 60, 0)} min ago"


@dataclass(frozen=True)
class Task:
    kind: str
    title: str
    detail: str
    link: str


def my_versions_needing_action(db: Database, principal: Principal) -> list[Task]:
    """Versions I registered that wait for me: not yet submitted, or changes requested."""
    from core.models import VersionState

    with read_as(db, principal) as session:
        stmt = (
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(
                ModelVersion.registered_by_id == principal.user_id,
                col(ModelVersion.state).in_(
                    [VersionState.REGISTERED, VersionState.CHANGES_REQUESTED]
                ),
                col(MLModel.archived_at).is_(None),
            )
        )
        rows = session.exec(
            scoped(stmt, visible_teams(session, principal)).order_by(
                col(ModelVersion.updated_at).desc()
            )
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
