"""Editing a model after creating it (what PATCH /models/{model} calls): card sections, tags,
goal and risk tier, each change audited; lowering the risk tier needs compliance."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.auth import SYSTEM
from core.db import Database
from core.errors import InvalidInput, InvalidTransition, PermissionDenied
from core.models import AuditEvent, PendingChange, Role
from core.services import registry
from core.services.changes import confirm
from core.services.registry import ModelChanges

CREDIT = "credit-default-scorer"  # high risk in the bare demo models


def test_tags_goal_and_card_change_and_are_audited(people_db: Database, principal) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    changes = ModelChanges(
        tags={"region": "eu"},
        card={"limitations": "EU applicants only."},
        goal_metric="roc_auc",
        goal_operator=">=",
        goal_target=0.8,
    )
    proposed = registry.update_model(people_db, dana, CREDIT, changes, reason="EU launch")
    assert isinstance(proposed, PendingChange), "a new goal waits for a compliance officer"
    with people_db.read() as session:
        model = registry.get_model(session, SYSTEM, CREDIT)
    assert model.tags == {"region": "eu"}  # adds a checklist: takes effect at once
    assert model.model_card["limitations"] == "EU applicants only."
    assert model.model_card["purpose"] == model.purpose  # untouched sections stay
    assert (model.goal_metric, model.goal_target) != ("roc_auc", 0.8)
    with people_db.read() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "model.updated")).one()
    assert "tags" in event.details["changed"] and "goal_target" not in event.details["changed"]
    confirm(people_db, principal(Role.COMPLIANCE), proposed.id or 0)
    with people_db.read() as session:
        model = registry.get_model(session, SYSTEM, CREDIT)
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "model.updated")).all()
    assert (model.goal_metric, model.goal_target) == ("roc_auc", 0.8)
    assert "goal_target" in events[-1].details["changed"]


def test_the_risk_tier_changes_only_on_its_own_with_a_reason(
    people_db: Database, principal
) -> None:
    dana, casey = principal(Role.DATA_SCIENTIST), principal(Role.COMPLIANCE)
    with pytest.raises(InvalidInput, match="risk tier changes on its own"):
        registry.update_model(people_db, dana, CREDIT, ModelChanges(risk_tier="low"))
    with pytest.raises(PermissionDenied):  # compliance officers cannot edit models at all
        registry.update_model(people_db, casey, CREDIT, ModelChanges(tags={"x": "y"}))
    with people_db.read() as session:
        model = registry.get_model(session, SYSTEM, CREDIT)
    assert model.risk_tier == "high", "a refused edit changes nothing"


def test_bad_edits_are_refused(people_db: Database, principal) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    for changes in (
        ModelChanges(risk_tier="extreme"),
        ModelChanges(goal_operator="=="),
        ModelChanges(card={"secret_section": "x"}),
        ModelChanges(tags={f"k{i}": "v" for i in range(30)}),
    ):
        with pytest.raises(InvalidInput):
            registry.update_model(people_db, dana, CREDIT, changes)
    registry.archive_model(people_db, dana, "bike-demand-forecaster", "replaced")
    with pytest.raises(InvalidTransition):
        registry.update_model(people_db, dana, "bike-demand-forecaster", ModelChanges(tags={}))
