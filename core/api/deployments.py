"""Deployments: what is live where, promote, roll back, and what was live at a moment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from core.api.deps import CallerDep
from core.services import deployments

router = APIRouter(tags=["deployments"])


class Promote(BaseModel):
    version: int
    environment: str
    reason: str = ""


class Rollback(BaseModel):
    environment: str
    reason: str


@router.get("/models/{model}/deployments")
def status(model: str, caller: CallerDep) -> dict[str, Any]:
    return {
        "live": deployments.status(caller.db, caller.principal, model),
        "history": [
            {
                "environment": row.environment,
                "version": row.version,
                "action": row.action,
                "actor": row.actor,
                "reason": row.reason,
                "live_from": row.live_from,
                "live_until": row.live_until,
            }
            for row in deployments.history(caller.db, caller.principal, model)
        ],
    }


@router.post("/models/{model}/deployments")
def promote(model: str, body: Promote, caller: CallerDep) -> dict[str, Any]:
    deployments.promote(
        caller.db, caller.principal, model, body.version, body.environment, body.reason
    )
    return {"environment": body.environment.strip().lower(), "version": body.version}


@router.post("/models/{model}/rollback")
def rollback(model: str, body: Rollback, caller: CallerDep) -> dict[str, Any]:
    deployments.rollback(caller.db, caller.principal, model, body.environment, body.reason)
    env = body.environment.strip().lower()
    return {
        "environment": env,
        "version": deployments.status(caller.db, caller.principal, model).get(env),
    }


@router.get("/models/{model}/deployments/live-at")
def live_at(model: str, environment: str, at: datetime, caller: CallerDep) -> dict[str, Any]:
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    return {
        "environment": environment,
        "at": moment,
        "version": deployments.live_at(caller.db, caller.principal, model, environment, moment),
    }
