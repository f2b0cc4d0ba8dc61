"""Idempotency keys: a retried request (same token, same key, same body) gets the first answer.

A key is reserved before the work starts, so two concurrent retries cannot both do it; the
answer is stored when the work succeeds, and the reservation is released when it fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.db import Database
from core.errors import Conflict, InvalidInput
from core.models import IdempotencyRecord, utcnow

MAX_KEY_LENGTH = 200
ABANDONED_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


def check_key(key: str) -> str:
    text = key.strip()
    if not text or len(text) > MAX_KEY_LENGTH or not text.isprintable():
        raise InvalidInput(
            f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable characters."
        )
    return text


def reserve(db: Database, token_id: int, key: str, request_hash: str) -> Replay | None:
    """Reserve the key for this request, or return the stored answer of its first run."""
    try:
        with db.write() as session:
            row = _row(session, token_id, key)
            if row is None:
                session.add(
                    IdempotencyRecord(token_id=token_id, key=key, request_hash=request_hash)
                )
                return None
            if row.status_code is None and _abandoned(row):
                row.request_hash, row.created_at = request_hash, utcnow()
                session.add(row)
                return None
            if row.request_hash != request_hash:
                raise Conflict(
                    "This Idempotency-Key was already used for a different request; send a "
                    "new key with a new request."
                )
            if row.status_code is None:
                raise Conflict(
                    "A request with this Idempotency-Key is still being processed; retry in a "
                    "moment to get its answer."
                )
            return Replay(row.status_code, json.loads(row.response))
    except IntegrityError:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry in a moment "
            "to get its answer."
        ) from None


def _abandoned(row: IdempotencyRecord) -> bool:
    """A reservation whose request never finished (the server stopped mid-way) frees its key."""
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return utcnow() - created > ABANDONED_AFTER


def complete(db: Database, token_id: int, key: str, status_code: int, body: Any) -> None:
    with db.write() as session:
        row = _row(session, token_id, key)
        if row is not None:
            row.status_code = status_code
            row.response = json.dumps(body, default=str)
            session.add(row)


def release(db: Database, token_id: int, key: str) -> None:
    """Forget a reservation whose request failed, so that a retry runs it again."""
    with db.write() as session:
        row = _row(session, token_id, key)
        if row is not None and row.status_code is None:
            session.delete(row)


def _row(session: Any, token_id: int, key: str) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key
    )
    return session.exec(stmt).first()
