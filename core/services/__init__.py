"""Services: each mutation is require -> rule -> write -> audit, in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import Session

from core import audit
from core.auth import Principal
from core.db import Database
from core.errors import PermissionDenied


@contextmanager
def unit_of_work(db: Database, actor: Principal) -> Iterator[Session]:
    """One all-or-nothing transaction; a refusal is rolled back and then audited on its own."""
    try:
        with db.write() as session:
            yield session
    except PermissionDenied as denied:
        _audit_denial(db, actor, denied)
        raise


@contextmanager
def read_as(db: Database, actor: Principal) -> Iterator[Session]:
    """A read-only session whose permission refusals are audited like a mutation's."""
    try:
        with db.read() as session:
            yield session
    except PermissionDenied as denied:
        _audit_denial(db, actor, denied)
        raise


def _audit_denial(db: Database, actor: Principal, denied: PermissionDenied) -> None:
    with db.write() as session:
        audit.record(
            session,
            actor,
            "permission.denied",
            object_type="permission",
            object_id=denied.permission,
            summary=f"Refused: {actor.label} tried to {denied.attempt}",
            model_id=denied.model_id,
            details={"message": denied.user_message},
        )
