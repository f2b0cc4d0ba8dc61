"""The audit trail: search and verify."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from core.api.deps import CallerDep
from core.services import audit_trail

router = APIRouter(tags=["audit"])


@router.get("/audit/events")
def events(
    caller: CallerDep,
    model: str | None = None,
    action: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    rows = audit_trail.events(
        caller.db, caller.principal, model=model, action=action, limit=limit, before_seq=before_seq
    )
    return [
        {
            "seq": e.seq,
            "created_at": e.created_at,
            "actor": e.actor_label,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "model": name,
            "summary": e.summary,
        }
        for e, name in rows
    ]


@router.get("/audit/verify")
def verify(caller: CallerDep) -> dict[str, Any]:
    return audit_trail.verify(caller.db, caller.principal).as_dict()
