"""Idempotency-Key on register and ingest: a retry returns the first answer, never a second
version or batch. The same key with a different request is refused with 409."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from core.api.deps import Caller
from core.services import idempotency


def request_hash(path: str, fields: dict[str, Any], files: dict[str, bytes]) -> str:
    """The request's meaning, independent of the multipart boundary a client happens to pick."""
    payload = {
        "path": path,
        "fields": fields,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_once(
    caller: Caller,
    key: str | None,
    digest: str,
    status_code: int,
    work: Callable[[], Any],
) -> JSONResponse:
    if key is None:
        return JSONResponse(jsonable_encoder(work()), status_code=status_code)
    token_id = caller.bearer.token_id
    clean = idempotency.check_key(key)
    replay = idempotency.reserve(caller.db, token_id, clean, digest)
    if replay is not None:
        return JSONResponse(replay.body, status_code=200, headers={"Idempotent-Replayed": "true"})
    try:
        body = jsonable_encoder(work())
    except BaseException:
        idempotency.release(caller.db, token_id, clean)
        raise
    idempotency.complete(caller.db, token_id, clean, status_code, body)
    return JSONResponse(body, status_code=status_code)
