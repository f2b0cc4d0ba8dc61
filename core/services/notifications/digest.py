"""The weekly digest for business stakeholders, in plain words: which models meet their goal
where they are live, and what changed in the week (promotions, rollbacks, incidents,
approvals). Built with the stakeholder's own permissions, so it names only models they may
see; it lands in their inbox, and by e-mail for those who chose that on their Profile page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, select

from core import audit
from core.auth import SYSTEM, Principal, principal_for, visible_teams
from core.config import Settings
from core.db import Database
from core.errors import QuorumError
from core.models import (
    AuditEvent,
    Deployment,
    MLModel,
    Notification,
    Role,
    RoleGrant,
    User,
    utcnow,
)
from core.services import read_as
from core.services.monitoring.views import health_card, monitoring_data
from core.services.notifications.outbox import notify
from core.services.registry import scoped, scoped_events

WEEK = timedelta(days=7)
MAX_LINES = 25  # per section: a digest is read, not searched
CHANGES = {
    "deployment.promote": "promoted",
    "deployment.rollback": "rolled back",
    "incident.opened": "incident opened",
    "incident.closed": "incident closed",
    "decision.approve": "approved",
}


@dataclass
class Digest:
    since: datetime
    meeting: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        live = len(self.meeting) + len(self.missing) + len(self.unjudged)
        return (
            f"Weekly digest: {len(self.meeting)} of {live} live model(s) meet their goal; "
            f"{len(self.changes)} change(s) this week"
        )

    def text(self) -> str:
        parts = [f"What happened to your team's models since {self.since:%Y-%m-%d}."]
        for heading, rows in (
            ("Meet their goal", self.meeting),
            ("Do not meet their goal: ask the model's owner what is being done", self.missing),
            ("Cannot be judged yet (no goal, or not enough labelled data)", self.unjudged),
            ("What changed this week", self.changes),
        ):
            parts.append(f"\n{heading}:")
            parts.extend(f"- {row}" for row in rows[:MAX_LINES])
            if len(rows) > MAX_LINES:
                parts.append(f"- and {len(rows) - MAX_LINES} more: see the activity on Home")
            if not rows:
                parts.append("- none")
        return "\n".join(parts)


def _change(event: AuditEvent, model: str) -> str:
    what = CHANGES[event.action]
    summary = event.summary[:200]
    about = "" if summary.startswith(model) else f"{model}: "
    return f"{event.created_at:%a %d %b} ({what}) {about}{summary}"


def build(
    db: Database, actor: Principal, settings: Settings, *, now: datetime | None = None
) -> Digest:
    """The digest as `actor` may see it."""
    moment = now or utcnow()
    digest = Digest(since=moment - WEEK)
    with read_as(db, actor) as session:
        scope = visible_teams(session, actor)
        live = session.exec(
            scoped(
                select(MLModel.name, Deployment.environment)
                .join(Deployment, col(Deployment.model_id) == MLModel.id)
                .where(col(Deployment.live_until).is_(None), col(MLModel.archived_at).is_(None)),
                scope,
            ).order_by(col(MLModel.name), col(Deployment.environment))
        ).all()
        events = session.exec(
            scoped_events(select(AuditEvent), scope)
            .where(
                col(AuditEvent.action).in_(list(CHANGES)),
                col(AuditEvent.created_at) >= digest.since,
            )
            .order_by(col(AuditEvent.seq))
        ).all()
        names = dict(session.exec(select(MLModel.id, MLModel.name)).all())
        digest.changes = [_change(e, names.get(e.model_id, "")) for e in events]
    for name, env in live:
        if env not in settings.environments:
            continue
        try:
            card = health_card(monitoring_data(db, actor, name, env))
        except QuorumError:
            continue
        where = f"{name} in {env} (v{card.version})"
        if card.goal_met is True:
            digest.meeting.append(f"{where}: {card.goal}")
        elif card.goal_met is False:
            digest.missing.append(f"{where}: {card.goal}")
        else:
            digest.unjudged.append(f"{where}: {card.goal}")
    return digest


REPEAT_AFTER = timedelta(days=6)  # one digest a week, whoever asks for it (job, seed, restart)


def send_weekly(db: Database, settings: Settings, *, now: datetime | None = None) -> int:
    """A digest to every active business stakeholder who has had none in the last six days;
    returns how many were written. The job runs once a week, but a new store, the demo seed
    or a restart may run it again the same day: a stakeholder still gets one."""
    since = (now or utcnow()) - REPEAT_AFTER
    with db.read() as session:
        recent = set(
            session.exec(
                select(Notification.user_id).where(
                    Notification.kind == "digest", col(Notification.created_at) > since
                )
            ).all()
        )
        people = session.exec(
            select(User)
            .join(RoleGrant, col(RoleGrant.user_id) == User.id)
            .where(
                RoleGrant.role == Role.BUSINESS.value,
                col(User.is_active).is_(True),
                col(User.is_service).is_(False),
            )
            .distinct()
            .order_by(col(User.id))
        ).all()
        principals = [principal_for(session, p) for p in people if p.id not in recent]
    for principal in principals:
        digest = build(db, principal, settings, now=now)
        with db.write() as session:
            notify(
                session,
                {principal.user_id},
                "digest",
                digest.title,
                body=digest.text(),
                link="app.py",
            )
            audit.record(
                session,
                SYSTEM,
                "digest.sent",
                object_type="user",
                object_id=principal.user_id,
                summary=f"Weekly digest written for {principal.name}: {digest.title}",
            )
    return len(principals)
