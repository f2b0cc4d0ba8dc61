"""Each person's choice of which events also reach them by e-mail (the inbox gets them all)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import select

from core import audit
from core.auth import Permission, Principal, require
from core.db import Database
from core.errors import InvalidInput
from core.models import NotificationPreference, utcnow
from core.services import read_as, unit_of_work
from core.services.notifications.events import EVENTS


def my_preferences(db: Database, actor: Principal) -> dict[str, bool]:
    """Every event with whether it reaches the actor by e-mail."""
    with read_as(db, actor) as session:
        rows = session.exec(
            select(NotificationPreference).where(NotificationPreference.user_id == actor.user_id)
        ).all()
        chosen = {r.event: r.email for r in rows}
    return {event: chosen.get(event, False) for event in EVENTS}


def set_preferences(db: Database, actor: Principal, email: Mapping[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(email) - set(EVENTS))
    if unknown:
        raise InvalidInput(
            f"There is no event named {', '.join(unknown)}; the events are {', '.join(EVENTS)}."
        )
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.VIEW, what="choose notifications", anywhere=True)
        rows = {
            r.event: r
            for r in session.exec(
                select(NotificationPreference).where(
                    NotificationPreference.user_id == actor.user_id
                )
            ).all()
        }
        changed = {}
        for event, wanted in email.items():
            row = rows.get(event) or NotificationPreference(user_id=actor.user_id, event=event)
            if row.id is not None and row.email == bool(wanted):
                continue
            row.email, row.updated_at = bool(wanted), utcnow()
            session.add(row)
            changed[event] = bool(wanted)
        if changed:
            audit.record(
                session,
                actor,
                "notification.preferences_changed",
                object_type="user",
                object_id=actor.user_id,
                summary=f"{actor.name} now gets by e-mail: "
                + (", ".join(e for e, on in email.items() if on) or "nothing"),
                details={"email": changed},
            )
    return my_preferences(db, actor)
