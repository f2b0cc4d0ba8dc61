"""Idempotency keys in the store: reserve, replay, refuse reuse, free on failure, and take over
a reservation whose request never finished."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.db import Database
from core.errors import Conflict, InvalidInput
from core.models import IdempotencyRecord, utcnow
from core.services import idempotency, users


@pytest.fixture
def token_id(people_db: Database) -> int:
    return users.issue_token_as_operator(people_db, "dana@demo.quorum", "ci").token.id or 0


def test_reserve_complete_and_replay(people_db: Database, token_id: int) -> None:
    assert idempotency.reserve(people_db, token_id, "k1", "h1") is None
    with pytest.raises(Conflict, match="still being processed"):
        idempotency.reserve(people_db, token_id, "k1", "h1")
    idempotency.complete(people_db, token_id, "k1", 201, {"number": 3})
    replay = idempotency.reserve(people_db, token_id, "k1", "h1")
    assert replay == idempotency.Replay(201, {"number": 3})
    with pytest.raises(Conflict, match="different request"):
        idempotency.reserve(people_db, token_id, "k1", "h2")


def test_release_frees_the_key_and_an_abandoned_reservation_is_taken_over(
    people_db: Database, token_id: int
) -> None:
    idempotency.reserve(people_db, token_id, "k2", "h1")
    idempotency.release(people_db, token_id, "k2")
    assert idempotency.reserve(people_db, token_id, "k2", "h2") is None
    with people_db.write() as session:
        row = session.exec(select(IdempotencyRecord).where(IdempotencyRecord.key == "k2")).one()
        row.created_at = utcnow() - timedelta(hours=2)
        session.add(row)
    assert idempotency.reserve(people_db, token_id, "k2", "h3") is None


@pytest.mark.parametrize("key", ["", " ", "x" * 201, "tab\there"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidInput):
        idempotency.check_key(key)
