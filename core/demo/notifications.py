"""Demo notifications: a team webhook to a local address where nothing listens, so the
delivery log on the Admin page shows attempts, retries and failures, and a weekly digest in
the business stakeholder's inbox. No e-mail is configured: the inbox holds the history.

`seed_webhook` runs right after the people so the later demo events reach the webhook;
`seed_deliveries` runs last. Both are idempotent."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import col, select

from core.config import get_settings
from core.db import Database
from core.demo.people import DEMO_TEAM
from core.models import Delivery, Notification, Webhook
from core.services import users
from core.services.notifications import digest, hooks, sending

ADMIN = "ada@demo.quorum"
# the discard port: nothing listens there, so every attempt fails and is recorded
DEMO_WEBHOOK_URL = "http://127.0.0.1:9/quorum-demo"
FAIL_FOR_GOOD = 2  # the oldest deliveries are tried up to the cap at once, to show "failed"


def seed_webhook(db: Database) -> list[str]:
    with db.read() as session:
        if session.exec(select(Webhook).limit(1)).first() is not None:
            return []
    ada = users.principal_by_email(db, ADMIN)
    hooks.allow_host(
        db, ada, "127.0.0.1", allow_private=True, reason="Demo receiver on this machine."
    )
    hooks.create_webhook(
        db, ada, get_settings(), DEMO_TEAM, "risk-analytics channel (demo)", DEMO_WEBHOOK_URL
    )
    return [f"webhook of {DEMO_TEAM} to {DEMO_WEBHOOK_URL}"]


def seed_deliveries(db: Database) -> list[str]:
    settings = replace(get_settings(), webhook_timeout_seconds=1)
    with db.read() as session:
        tried = session.exec(select(Delivery).where(Delivery.attempts > 0).limit(1)).first()
        has_digest = session.exec(
            select(Notification).where(Notification.kind == "digest").limit(1)
        ).first()
        oldest = session.exec(
            select(Delivery.id).order_by(col(Delivery.id)).limit(FAIL_FOR_GOOD)
        ).all()
    created = []
    if has_digest is None:
        written = digest.send_weekly(db, settings)
        created.append(f"{written} weekly digest(s) in the stakeholders' inboxes")
    if tried is None and oldest:
        report = sending.send_due(db, settings)
        for delivery_id in oldest:
            if delivery_id is None:
                continue
            while sending.attempt(db, settings, delivery_id) == sending.PENDING:
                pass
        created.append(
            f"{report.retrying + report.failed} webhook deliveries tried and failed; "
            f"{len(oldest)} given up after {settings.delivery_max_attempts} attempts"
        )
    return created
