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


@periodic("comparisons.refresh", every=timedelta(minutes=5))
def refresh_comparisons(db: Database, settings: Settings) -> str:
    """Score every version not archived beside its champion, on its evaluation
    data and on the newest labelled production data, once per new version, champion or
    labels; pages only read what is stored."""
    from core.services import compare

    return compare.refresh_comparisons(db)
