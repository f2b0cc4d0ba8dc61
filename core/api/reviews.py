"""Reviews: decisions, the discussion on a version, and what waits for the caller."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from core.api.deps import CallerDep
from core.api.versions import version_json
from core.services import reviews

router = APIRouter(tags=["reviews"])


class DecisionIn(BaseModel):
    decision: Literal["approve", "request_changes", "reject"]
    reason: str = ""


class CommentIn(BaseModel):
    body: str
    anchor: str = ""


def _comment(c: Any, author: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "author": author,
        "body": c.body,
        "anchor": c.anchor,
        "parent": c.parent_id,
        "created_at": c.created_at,
    }


@router.post("/models/{model}/versions/{n}/decisions")
def decide(model: str, n: int, body: DecisionIn, caller: CallerDep) -> dict[str, Any]:
    reviews.decide(caller.db, caller.principal, model, n, body.decision, body.reason)
    return {"decision": body.decision, "state": version_json(caller, model, n)["state"]}


@router.get("/models/{model}/versions/{n}/comments")
def comments(model: str, n: int, caller: CallerDep) -> list[dict[str, Any]]:
    return [
        _comment(v.comment, v.author)
        for v in reviews.comments_of(caller.db, caller.principal, model, n)
    ]


@router.post("/models/{model}/versions/{n}/comments", status_code=201)
def add_comment(model: str, n: int, body: CommentIn, caller: CallerDep) -> dict[str, Any]:
    made = reviews.add_comment(caller.db, caller.principal, model, n, body.body, anchor=body.anchor)
    return _comment(made, caller.principal.name)


@router.get("/reviews/queue")
def queue(caller: CallerDep) -> list[dict[str, Any]]:
    return [
        {
            "model": item.model,
            "version": item.number,
            "state": "in_review",
            "since": item.submitted,
            "registered_by": item.registered_by,
            "status": item.status,
        }
        for item in reviews.review_queue(caller.db, caller.principal)
    ]
