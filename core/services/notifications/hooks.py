"""Admin work on notifications: the webhook host allow-list, team webhooks (secret shown once),
and the delivery log with replay. Reading the log and changing the allow-list need a global
admin role (they span every team and person); a team's webhooks need MANAGE_TEAMS there."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import Permission, Principal, refresh, require
from core.config import Settings
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Delivery, DeliveryAttempt, Team, User, Webhook, WebhookHost, utcnow
from core.services import read_as, unit_of_work
from core.services.notifications.events import EVENTS, PERSONAL_ONLY
from core.services.notifications.sending import (
    FAILED,
    PENDING,
    allowed_host,
    vet_url,
    webhook_secret,
)

_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-:[]")


def _require_admin(session: Session, actor: Principal, what: str) -> None:
    require(session, actor, Permission.MANAGE_USERS, what=what)


# --- the allow-list ---------------------------------------------------------------------------


def allowed_hosts(db: Database, actor: Principal) -> list[WebhookHost]:
    with read_as(db, actor) as session:
        _require_admin(session, actor, "read the webhook allow-list")
        return list(
            session.exec(
                select(WebhookHost)
                .where(col(WebhookHost.revoked_at).is_(None))
                .order_by(col(WebhookHost.host))
            ).all()
        )


def allow_host(
    db: Database, actor: Principal, host: str, *, allow_private: bool = False, reason: str = ""
) -> WebhookHost:
    name = (host or "").strip().lower().rstrip(".")
    if not name or not set(name) <= _HOST_CHARS or len(name) > 253:
        raise InvalidInput(
            f"The host {host!r} is not a host name: give one such as hooks.slack.com or "
            "127.0.0.1, without https:// or a path."
        )
    why = validation.plain_text(reason, "reason", max_length=500)
    with unit_of_work(db, actor) as session:
        _require_admin(session, actor, "allow a webhook host")
        if allowed_host(session, name) is not None:
            raise Conflict(f"{name} is already on the webhook allow-list.")
        row = session.exec(select(WebhookHost).where(WebhookHost.host == name)).first()
        row = row or WebhookHost(host=name)
        row.allow_private, row.reason, row.revoked_at = allow_private, why, None
        row.allowed_by_id, row.allowed_at = actor.user_id or None, utcnow()
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "webhook_host.allowed",
            object_type="webhook_host",
            object_id=row.id,
            summary=f"Webhooks may go to {name}"
            + (" (private addresses allowed)" if allow_private else ""),
            details={"reason": why, "allow_private": allow_private},
        )
        return row


def revoke_host(db: Database, actor: Principal, host: str) -> None:
    with unit_of_work(db, actor) as session:
        _require_admin(session, actor, "remove a webhook host")
        row = allowed_host(session, host.strip().lower())
        if row is None:
            raise NotFound(f"{host} is not on the webhook allow-list.")
        row.revoked_at = utcnow()
        session.add(row)
        audit.record(
            session,
            actor,
            "webhook_host.revoked",
            object_type="webhook_host",
            object_id=row.id,
            summary=f"Webhooks may no longer go to {row.host}",
        )


# --- team webhooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewWebhook:
    webhook: Webhook
    secret: str  # shown once; the store keeps only the salt it is derived from


@dataclass(frozen=True)
class WebhookView:
    id: int
    team: str
    name: str
    url: str
    events: list[str]
    created_at: datetime


def create_webhook(
    db: Database,
    actor: Principal,
    settings: Settings,
    team_name: str,
    name: str,
    url: str,
    events: list[str] | None = None,
) -> NewWebhook:
    label = validation.display_name(name, "webhook name")
    chosen = sorted(set(events or []))
    unknown = [e for e in chosen if e not in EVENTS or e in PERSONAL_ONLY]
    if unknown:
        raise InvalidInput(
            f"A webhook cannot take the event(s) {', '.join(unknown)}; choose from "
            f"{', '.join(e for e in EVENTS if e not in PERSONAL_ONLY)}, or none for all."
        )
    with unit_of_work(db, actor) as session:
        team = session.exec(select(Team).where(Team.name == (team_name or "").strip())).first()
        if team is None:
            raise NotFound(f"There is no team named {team_name!r}.")
        require(session, actor, Permission.MANAGE_TEAMS, team_id=team.id, what="add a webhook")
        vet_url(session, url)  # checked now as well as at every send
        salt = secrets.token_hex(16)
        hook = Webhook(
            team_id=team.id or 0,
            name=label,
            url=url.strip(),
            events=chosen,
            salt=salt,
            created_by_id=actor.user_id or None,
        )
        session.add(hook)
        session.flush()
        audit.record(
            session,
            actor,
            "webhook.created",
            object_type="webhook",
            object_id=hook.id,
            summary=f"Webhook {label} of team {team.name} sends "
            f"{', '.join(chosen) or 'every event'} to {hook.url}",
            details={"events": chosen, "url": hook.url},
        )
        return NewWebhook(hook, webhook_secret(settings, salt))


def webhooks(db: Database, actor: Principal) -> list[WebhookView]:
    """The webhooks of every team where the actor may manage teams."""
    with read_as(db, actor) as session:
        current = refresh(session, actor)  # the grants as stored now
        teams = {t.id: t.name for t in session.exec(select(Team)).all()}
        rows = session.exec(
            select(Webhook).where(col(Webhook.revoked_at).is_(None)).order_by(col(Webhook.id))
        ).all()
        return [
            WebhookView(h.id or 0, teams.get(h.team_id, "?"), h.name, h.url, h.events, h.created_at)
            for h in rows
            if current.can(Permission.MANAGE_TEAMS, h.team_id)
        ]


def revoke_webhook(db: Database, actor: Principal, webhook_id: int) -> None:
    with unit_of_work(db, actor) as session:
        hook = session.get(Webhook, webhook_id)
        if hook is None or hook.revoked_at is not None:
            raise NotFound(f"There is no active webhook #{webhook_id}.")
        require(
            session, actor, Permission.MANAGE_TEAMS, team_id=hook.team_id, what="remove a webhook"
        )
        hook.revoked_at = utcnow()
        session.add(hook)
        audit.record(
            session,
            actor,
            "webhook.revoked",
            object_type="webhook",
            object_id=hook.id,
            summary=f"Webhook {hook.name} removed; nothing more is sent to {hook.url}",
        )


# --- the delivery log -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRow:
    id: int
    channel: str
    to: str
    event: str
    subject: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None


def delivery_log(
    db: Database, actor: Principal, *, status: str | None = None, limit: int = 200
) -> list[LogRow]:
    with read_as(db, actor) as session:
        _require_admin(session, actor, "read the delivery log")
        stmt = select(Delivery).order_by(col(Delivery.id).desc()).limit(limit)
        if status:
            stmt = stmt.where(Delivery.status == status)
        rows = session.exec(stmt).all()
        emails = {u.id: u.email for u in session.exec(select(User)).all()}
        hooks = {h.id: h.name for h in session.exec(select(Webhook)).all()}
        return [
            LogRow(
                d.id or 0,
                d.channel,
                emails.get(d.user_id, "?")
                if d.user_id
                else f"webhook {hooks.get(d.webhook_id, '?')}",
                d.event,
                d.subject,
                d.status,
                d.attempts,
                d.last_error,
                d.created_at,
                d.next_attempt_at if d.status == PENDING else None,
                d.sent_at,
            )
            for d in rows
        ]


def attempts_of(db: Database, actor: Principal, delivery_id: int) -> list[DeliveryAttempt]:
    with read_as(db, actor) as session:
        _require_admin(session, actor, "read the delivery log")
        return list(
            session.exec(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(col(DeliveryAttempt.id))
            ).all()
        )


def replay(db: Database, actor: Principal, delivery_id: int) -> Delivery:
    """Send a delivery again from the start (the next sender pass tries it at once)."""
    with unit_of_work(db, actor) as session:
        _require_admin(session, actor, "replay a delivery")
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise NotFound(f"There is no delivery #{delivery_id} in the log.")
        if delivery.status == PENDING:
            raise Conflict(
                f"Delivery #{delivery_id} is still pending; it is tried again at "
                f"{delivery.next_attempt_at:%H:%M:%S} UTC."
            )
        before = delivery.status
        delivery.status, delivery.attempts, delivery.next_attempt_at = PENDING, 0, utcnow()
        session.add(delivery)
        audit.record(
            session,
            actor,
            "delivery.replayed",
            object_type="delivery",
            object_id=delivery.id,
            model_id=delivery.model_id,
            summary=f"Delivery #{delivery.id} ({delivery.channel}, {delivery.subject[:80]}) "
            f"replayed after it {'failed' if before == FAILED else 'was sent'}",
            details={"status_before": before},
        )
        return delivery
