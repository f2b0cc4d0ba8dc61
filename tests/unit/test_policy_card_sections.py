"""The policy field listing the model-card sections the gate requires, and its schema upgrade."""

from __future__ import annotations

import pytest

from core import policy
from core.errors import InvalidInput


def test_the_field_is_last_and_high_risk_requires_all_five_by_default() -> None:
    assert policy.FIELDS[-1].name == "required_card_sections"
    assert policy.defaults("high").required_card_sections == list(policy.CARD_SECTIONS)
    assert policy.defaults("medium").required_card_sections == []
    assert policy.defaults("low").required_card_sections == []


def test_a_schema_2_document_is_upgraded_to_its_tiers_default() -> None:
    stored = policy.defaults("high").as_document()
    del stored["required_card_sections"]
    assert policy.from_document(stored, 2, "high").required_card_sections == list(
        policy.CARD_SECTIONS
    )
    medium = policy.defaults("medium").as_document()
    del medium["required_card_sections"]
    assert policy.from_document(medium, 2, "medium").required_card_sections == []
    assert policy.upgrade_document(medium, 2, "medium")["required_card_sections"] == []


def test_only_card_sections_are_accepted() -> None:
    fields = policy.check({"required_card_sections": ["ethics", "data"]}, "medium", ())
    assert fields.required_card_sections == ["data", "ethics"]
    with pytest.raises(InvalidInput, match="purpose is not one of intended_use"):
        policy.check({"required_card_sections": ["purpose"]}, "medium", ())
    spec = policy.FIELDS[-1]
    assert policy.describe(["intended_use", "data"], spec) == "intended use, data"
