"""Registered models: list, create, read, edit, archive."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from core.api import shapes
from core.api.deps import Caller, CallerDep
from core.models import PendingChange, VersionState
from core.services import model_view, portfolio, registry

router = APIRouter(tags=["models"])
STATE_OF_LABEL = {registry.state_label(s): s.value for s in VersionState}


class NewModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    team: str
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    risk_tier: Literal["low", "medium", "high"] = "medium"
    purpose: str = ""
    target: str = ""
    sensitive_column: str | None = None
    goal_metric: str = ""
    goal_operator: Literal[">=", "<=", ">", "<"] = ">="
    goal_target: float | None = None
    goal_description: str = ""
    tags: dict[str, str] = {}


class ModelEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    risk_tier: Literal["low", "medium", "high"] | None = None
    purpose: str | None = None
    goal_metric: str | None = None
    goal_operator: Literal[">=", "<=", ">", "<"] | None = None
    goal_target: float | None = None
    goal_description: str | None = None
    reason: str | None = None


class Archive(BaseModel):
    reason: str


def model_json(caller: Caller, name: str) -> dict[str, Any]:
    detail = model_view.model_detail(
        caller.db, caller.principal, name, caller.settings.environments
    )
    return shapes.model(detail)


@router.get("/models")
def list_models(caller: CallerDep) -> list[dict[str, Any]]:
    return [
        {
            "name": row.name,
            "team": row.team,
            "owner": row.owner,
            "task": row.task,
            "risk_tier": row.risk_tier,
            "latest_version": row.latest_version,
            "latest_state": STATE_OF_LABEL.get(row.latest_state, row.latest_state),
            "live": row.live,
        }
        for row in portfolio.portfolio(caller.db, caller.principal, recent=0).models
    ]


@router.post("/models", status_code=201)
def create_model(body: NewModel, caller: CallerDep) -> dict[str, Any]:
    spec = registry.ModelSpec(**body.model_dump())
    created = registry.create_model(caller.db, caller.principal, spec)
    return model_json(caller, created.name)


@router.get("/models/{model}")
def read_model(model: str, caller: CallerDep) -> dict[str, Any]:
    return model_json(caller, model)


@router.patch("/models/{model}")
def edit_model(model: str, body: ModelEdit, caller: CallerDep) -> dict[str, Any]:
    edits = body.model_dump(exclude_unset=True)
    tier, reason = edits.pop("risk_tier", None), edits.pop("reason", None) or ""
    if edits:
        registry.update_model(caller.db, caller.principal, model, registry.ModelChanges(**edits))
    if tier is not None:
        current = model_view.model_detail(caller.db, caller.principal, model, ())
        outcome = registry.set_risk_tier(
            caller.db, caller.principal, model, tier, reason, row_version=current.model.row_version
        )
        if isinstance(outcome, PendingChange):
            shaped = model_json(caller, model)
            shaped["pending_change"] = {"id": outcome.id, "summary": outcome.summary}
            return shaped
    return model_json(caller, model)


@router.post("/models/{model}/archive")
def archive_model(model: str, body: Archive, caller: CallerDep) -> dict[str, Any]:
    registry.archive_model(caller.db, caller.principal, model, body.reason)
    return model_json(caller, model)
