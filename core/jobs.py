"""The periodic jobs the scheduler runs (register new ones here with @periodic)."""

from __future__ import annotations

from datetime import timedelta

from core import audit_anchor
from core.config import Settings
from core.db import Database
from core.periodic import periodic


@periodic("audit.checkpoint", every=timedelta(minutes=1))
def audit_checkpoint(db: Database, settings: Settings) -> str:
    """Anchor the audit chain when N events are pending or M minutes have passed."""
    return audit_anchor.checkpoint(db, settings).message


@periodic("compliance.remind_expiring", every=timedelta(days=1))
def remind_expiring(db: Database, settings: Settings) -> str:
    """Inbox reminders for sign-offs that expire soon."""
    from core.services import compliance

    sent = compliance.remind_expiring(db)
    return f"{sent} reminders of expiring sign-offs sent."


@periodic("findings.remind_overdue", every=timedelta(hours=1))
def remind_overdue_findings(db: Database, settings: Settings) -> str:
    """Inbox reminders to owners of overdue findings, at most once per finding per day."""
    from core.services import findings

    sent = findings.remind_overdue(db)
    return f"{sent} reminders of overdue findings sent."


@periodic("revalidation.notify_due", every=timedelta(hours=6))
def notify_revalidation_due(db: Database, settings: Settings) -> str:
    """Tell owners and compliance officers of live versions whose revalidation is near or due."""
    from core.services import revalidation

    sent = revalidation.notify_due(db)
    return f"{sent} revalidation notices sent."


@periodic("notifications.deliver", every=timedelta(seconds=30))
def deliver(db: Database, settings: Settings) -> str:
    """Send the e-mails and webhook messages waiting in the outbox; retry with backoff."""
    from core.services.notifications import sending

    return sending.send_due(db, settings).message


@periodic("notifications.digest", every=timedelta(days=7))
def weekly_digest(db: Database, settings: Settings) -> str:
    """The plain-words weekly digest for business stakeholders."""
    from core.services.notifications import digest

    written = digest.send_weekly(db, settings)
    return f"{written} weekly digests written."


@periodic("comparisons.refresh", every=timedelta(minutes=5))
def refresh_comparisons(db: Database, settings: Settings) -> str:
    """Score every version not archived beside its champion, on its evaluation
    data and on the newest labelled production data, once per new version, champion or
    labels; pages only read what is stored."""
    from core.services import compare

    return compare.refresh_comparisons(db)
