"""notify(): the inbox item, and in the same transaction the outbox rows that carry it further:
an e-mail for each person who asked for this event by e-mail, and a webhook message for each
webhook of the model's team that takes the event. The sender (`sending.send_due`) works
through the outbox later; nothing leaves Quorum inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from core.config import get_settings
from core.models import (
    Delivery,
    MLModel,
    ModelVersion,
    Notification,
    NotificationPreference,
    Team,
    Webhook,
)
from core.services.notifications.events import PERSONAL_ONLY, event_of, label

EMAIL = "email"
WEBHOOK = "webhook"


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
    """Add an inbox item for each person and its deliveries, inside the caller's transaction."""
    event = event_of(kind)
    by_email = email_wanted(session, user_ids, event) if get_settings().smtp_host else set()
    for user_id in sorted(user_ids):
        item = Notification(
            user_id=user_id,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
            model_id=model_id,
            version_id=version_id,
        )
        session.add(item)
        if user_id in by_email:
            session.flush()
            session.add(
                Delivery(
                    channel=EMAIL,
                    event=event,
                    kind=kind,
                    user_id=user_id,
                    notification_id=item.id,
                    model_id=model_id,
                    subject=title[:200],
                    payload=json.dumps({"title": title, "body": body, "link": link}),
                )
            )
    if model_id is not None and event not in PERSONAL_ONLY:
        _to_webhooks(session, event, kind, title, link, model_id, version_id)


def email_wanted(session: Session, user_ids: set[int], event: str) -> set[int]:
    if not user_ids:
        return set()
    rows = session.exec(
        select(NotificationPreference.user_id).where(
            col(NotificationPreference.user_id).in_(sorted(user_ids)),
            NotificationPreference.event == event,
            col(NotificationPreference.email).is_(True),
        )
    ).all()
    return set(rows)


def _to_webhooks(
    session: Session,
    event: str,
    kind: str,
    title: str,
    link: str,
    model_id: int,
    version_id: int | None,
) -> None:
    model = session.get(MLModel, model_id)
    if model is None:
        return
    hooks = session.exec(
        select(Webhook).where(Webhook.team_id == model.team_id, col(Webhook.revoked_at).is_(None))
    ).all()
    takers = [h for h in hooks if not h.events or event in h.events]
    if not takers:
        return
    version = session.get(ModelVersion, version_id) if version_id else None
    team = session.get(Team, model.team_id)
    payload = webhook_payload(event, kind, title, link, model, version, team)
    for hook in takers:
        session.add(
            Delivery(
                channel=WEBHOOK,
                event=event,
                kind=kind,
                webhook_id=hook.id,
                model_id=model_id,
                subject=title[:200],
                payload=json.dumps(payload),
            )
        )


def webhook_payload(
    event: str,
    kind: str,
    title: str,
    link: str,
    model: MLModel,
    version: ModelVersion | None,
    team: Team | None,
) -> dict[str, Any]:
    """Slack-compatible ("text" and "blocks") with ids, names and a link; never the inbox
    item's body, data rows or evidence. The link is made absolute when the message is sent."""
    return {
        "text": title[:200],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": title[:200]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": label(event)}]},
        ],
        "event": event,
        "kind": kind,
        "model": {"id": model.id, "name": model.name},
        "version": {"id": version.id, "number": version.number} if version else None,
        "team": {"id": team.id, "name": team.name} if team else None,
        "link": link,
    }
