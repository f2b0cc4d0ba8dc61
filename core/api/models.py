"""Registered models: list, create, read, edit, archive."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from core.api import shapes
from core.api.deps import Caller, CallerDep
from core.models import PendingChange, VersionState
from core.services import changes, model_view, portfolio, registry, versions

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
    owner: str | None = None
    reason: str | None = None


class VersionEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision_threshold: float | None
    reason: str


class Refusal(BaseModel):
    reason: str


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
    pending: list[PendingChange] = []
    if edits:
        done = registry.update_model(
            caller.db, caller.principal, model, registry.ModelChanges(**edits), reason=reason
        )
        if isinstance(done, PendingChange):
            pending.append(done)
    if tier is not None:
        current = model_view.model_detail(caller.db, caller.principal, model, ())
        outcome = registry.set_risk_tier(
            caller.db, caller.principal, model, tier, reason, row_version=current.model.row_version
        )
        if isinstance(outcome, PendingChange):
            pending.append(outcome)
    shaped = model_json(caller, model)
    if pending:
        shaped["pending_change"] = _pending(pending[-1])
        shaped["pending_changes"] = [_pending(p) for p in pending]
    return shaped


def _pending(change: PendingChange) -> dict[str, Any]:
    return {"id": change.id, "summary": change.summary, "status": change.status}


@router.patch("/models/{model}/versions/{n}")
def edit_version(model: str, n: int, body: VersionEdit, caller: CallerDep) -> dict[str, Any]:
    """Change a version's decision threshold: it waits for a compliance officer of the model's
    team, then the version is evaluated again at it and its gate reopens."""
    outcome = versions.set_decision_threshold(
        caller.db, caller.principal, model, n, body.decision_threshold, body.reason
    )
    shaped = model_json(caller, model)
    if isinstance(outcome, PendingChange):
        shaped["pending_change"] = _pending(outcome)
    return shaped


@router.post("/changes/{change_id}/confirm")
def confirm_change(change_id: int, caller: CallerDep) -> dict[str, Any]:
    """Confirm a pending change (four eyes: not the person who proposed it)."""
    return _pending(changes.confirm(caller.db, caller.principal, change_id))


@router.post("/changes/{change_id}/refuse")
def refuse_change(change_id: int, body: Refusal, caller: CallerDep) -> dict[str, Any]:
    """Refuse a pending change, or withdraw one's own."""
    return _pending(changes.refuse(caller.db, caller.principal, change_id, body.reason))


@router.post("/models/{model}/archive")
def archive_model(model: str, body: Archive, caller: CallerDep) -> dict[str, Any]:
    registry.archive_model(caller.db, caller.principal, model, body.reason)
    return model_json(caller, model)
