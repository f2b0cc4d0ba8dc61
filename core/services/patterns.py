"""Regular expressions an administrator allows, exactly, in uploaded models (a vectorizer's
token_pattern, for example). Anything not listed is refused at upload."""

from __future__ import annotations

import re

from sqlmodel import select

from core import audit, validation
from core.auth import Permission, Principal, require
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.models import AllowedPattern, utcnow
from core.services import read_as, unit_of_work
from core.services.sandboxed import allowed_patterns

MAX_PATTERN = 500


def list_patterns(db: Database, actor: Principal) -> list[str]:
    with read_as(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="see allowed patterns")
        return allowed_patterns(session)


def allow_pattern(db: Database, actor: Principal, pattern: str, reason: str) -> AllowedPattern:
    """Allow one exact pattern after a person has read it for catastrophic backtracking."""
    _check_pattern(pattern)
    why = validation.plain_text(reason, "reason", max_length=1000).strip()
    if not why:
        raise InvalidInput("Say why this pattern is safe to allow (the reason is recorded).")
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="allow a pattern")
        row = session.exec(select(AllowedPattern).where(AllowedPattern.pattern == pattern)).first()
        row = row or AllowedPattern(pattern=pattern, reason=why)
        row.reason, row.revoked_at, row.allowed_by_id, row.allowed_at = (
            why,
            None,
            actor.user_id,
            utcnow(),
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "pattern.allowed",
            object_type="pattern",
            object_id=row.id,
            summary=f"Allowed the regular expression {pattern[:100]!r} in uploaded models",
            details={"pattern": pattern, "reason": why},
        )
        return row


def revoke_pattern(db: Database, actor: Principal, pattern: str) -> None:
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="revoke a pattern")
        row = session.exec(select(AllowedPattern).where(AllowedPattern.pattern == pattern)).first()
        if row is None or row.revoked_at is not None:
            raise NotFound("That pattern is not on the allowed list; nothing was changed.")
        row.revoked_at = utcnow()
        session.add(row)
        audit.record(
            session,
            actor,
            "pattern.revoked",
            object_type="pattern",
            object_id=row.id,
            summary=f"Revoked the regular expression {pattern[:100]!r}",
            details={"pattern": pattern},
        )


def _check_pattern(pattern: str) -> None:
    if not pattern or len(pattern) > MAX_PATTERN:
        raise InvalidInput(f"Give a pattern of 1 to {MAX_PATTERN} characters.")
    try:
        re.compile(pattern)
    except re.error as error:
        raise InvalidInput(
            f"The pattern is not a valid regular expression ({error.msg} at position "
            f"{error.pos}); nothing was changed."
        ) from None
