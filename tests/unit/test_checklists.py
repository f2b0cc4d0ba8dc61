import copy
import json
from pathlib import Path

import pytest

from core.checklists import (
    DEFAULT_TEMPLATE_DIR,
    EVIDENCE_HINTS,
    ChecklistTemplate,
    applicable_templates,
    load_templates,
    parse_template,
    parse_template_json,
)
from core.errors import ConfigurationError, InvalidInput

EXPECTED_KEYS = ["eu_ai_act_high_risk", "internal_policy", "iso_42001", "nist_ai_rmf", "sr_11_7"]

VALID = {
    "key": "tiny",
    "name": "Tiny framework",
    "version": "1",
    "description": "For tests.",
    "applies_when": {"risk_tiers": ["high"], "tags_any": {"region": ["eu"]}},
    "items": [
        {
            "key": "first",
            "section": "1",
            "title": "First item",
            "guidance": "Attach the evaluation.",
            "evidence_hint": "evaluation",
            "required": True,
        }
    ],
}


@pytest.fixture(scope="module")
def templates() -> list[ChecklistTemplate]:
    return load_templates(DEFAULT_TEMPLATE_DIR)


def by_key(templates: list[ChecklistTemplate]) -> dict[str, ChecklistTemplate]:
    return {template.key: template for template in templates}


def test_all_shipped_templates_load(templates):
    assert [template.key for template in templates] == EXPECTED_KEYS
    for template in templates:
        assert len(template.items) >= 5, template.key
        assert template.description and template.version and template.name


def test_every_item_has_guidance_and_a_known_evidence_hint(templates):
    for template in templates:
        keys = [item.key for item in template.items]
        assert len(keys) == len(set(keys)), template.key
        for item in template.items:
            assert len(item.guidance) > 40, (template.key, item.key)
            assert item.title and item.section
            assert item.evidence_hint in EVIDENCE_HINTS
            assert isinstance(item.required, bool)


def test_eu_ai_act_covers_articles_9_to_15_and_17(templates):
    sections = " ".join(item.section for item in by_key(templates)["eu_ai_act_high_risk"].items)
    for article in range(9, 16):
        assert f"Article {article}" in sections
    assert "Article 17" in sections
    assert "Articles 43, 47, 48" in sections


def test_nist_covers_all_four_functions_and_fairness(templates):
    sections = [item.section for item in by_key(templates)["nist_ai_rmf"].items]
    for function in ("GOVERN", "MAP", "MEASURE", "MANAGE"):
        assert any(section.startswith(function + " ") for section in sections), function
    assert "MEASURE 2.11" in sections
    assert "MAP 1.1" in sections


def test_sr_11_7_has_the_three_validation_elements(templates):
    sr = by_key(templates)["sr_11_7"]
    keys = {item.key for item in sr.items}
    assert {"conceptual_soundness", "ongoing_monitoring", "outcomes_analysis"} <= keys
    assert {"independent_validation", "inventory_and_governance", "vendor_models"} <= keys
    assert "consolidates SR 11-7" in sr.description


def test_iso_42001_has_clauses_4_to_10_and_annex_a(templates):
    sections = " ".join(item.section for item in by_key(templates)["iso_42001"].items)
    for clause in range(4, 11):
        assert f"Clause {clause}." in sections, clause
    assert "Annex A" in sections


def test_round_trip_through_dict_and_json(templates):
    for template in templates:
        assert parse_template(template.to_dict(), "again") == template
        assert parse_template_json(template.to_json(), "again") == template
        assert json.loads(template.to_json())["items"][0]["key"] == template.items[0].key


def test_templates_are_hashable_and_items_addressable(templates):
    eu = by_key(templates)["eu_ai_act_high_risk"]
    assert len({hash(template) for template in templates}) == len(templates)
    assert eu.item("art14_human_oversight").section == "Article 14"
    with pytest.raises(InvalidInput, match="no item 'nope'"):
        eu.item("nope")


@pytest.mark.parametrize(
    ("tier", "tags", "expected"),
    [
        ("high", {"region": "eu", "sector": "banking"}, EXPECTED_KEYS),
        (
            "high",
            {"region": "us", "sector": "banking"},
            [k for k in EXPECTED_KEYS if k != "eu_ai_act_high_risk"],
        ),
        ("high", {}, ["internal_policy", "iso_42001", "nist_ai_rmf"]),
        ("medium", {"region": "eu"}, ["internal_policy", "nist_ai_rmf"]),
        ("medium", {"sector": "Insurance"}, ["internal_policy", "nist_ai_rmf", "sr_11_7"]),
        ("low", {"region": "eu", "sector": "mobility"}, ["internal_policy"]),
        (
            "High",
            {"Region": "US, EU"},
            ["eu_ai_act_high_risk", "internal_policy", "iso_42001", "nist_ai_rmf"],
        ),
    ],
)
def test_applicable_templates_follow_tier_and_tags(templates, tier, tags, expected):
    assert [t.key for t in applicable_templates(templates, tier, tags)] == expected


def test_unknown_risk_tier_is_refused(templates):
    with pytest.raises(InvalidInput, match="'critical'"):
        applicable_templates(templates, "critical", {})


def test_empty_applies_when_means_always():
    data = copy.deepcopy(VALID)
    del data["applies_when"]
    template = parse_template(data, "tiny.json")
    assert template.applies_when == {"risk_tiers": [], "tags_any": {}}
    assert applicable_templates([template], "low", {}) == [template]


def _broken(change) -> dict:
    data = copy.deepcopy(VALID)
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["items"][0].pop("guidance"),
            r"tiny\.json: field 'items\[0\]\.guidance' is missing",
        ),
        (
            lambda d: d["items"][0].update(guidance="  "),
            r"'items\[0\]\.guidance' must be non-empty",
        ),
        (
            lambda d: d["items"][0].update(evidence_hint="video"),
            r"'items\[0\]\.evidence_hint' is 'video'",
        ),
        (
            lambda d: d["items"][0].update(required="yes"),
            r"'items\[0\]\.required' must be true or false",
        ),
        (lambda d: d["items"][0].update(guidence="typo"), r"'items\[0\]\.guidence' is not part"),
        (
            lambda d: d["items"].append(copy.deepcopy(d["items"][0])),
            r"'items\[1\]\.key' repeats 'first'",
        ),
        (lambda d: d.update(items=[]), r"'items' must be a non-empty list"),
        (lambda d: d.update(key="EU AI Act"), r"field 'key' is 'EU AI Act'"),
        (lambda d: d.pop("name"), r"field 'name' is missing"),
        (
            lambda d: d["applies_when"].update(risk_tiers=["critical"]),
            r"'applies_when\.risk_tiers' must be a list",
        ),
        (
            lambda d: d["applies_when"].update(tags_any={"region": "eu"}),
            r"'applies_when\.tags_any\.region' must be",
        ),
        (lambda d: d.update(applies_when=["high"]), r"'applies_when' must be an object"),
    ],
)
def test_malformed_template_names_source_and_field(change, expected):
    with pytest.raises(InvalidInput, match=expected) as caught:
        parse_template(_broken(change), "tiny.json")
    assert caught.value.user_message.startswith("tiny.json")


def test_invalid_json_file_names_file_and_line(tmp_path: Path):
    (tmp_path / "good.json").write_text(json.dumps(VALID))
    (tmp_path / "broken.json").write_text('{\n  "key": "x",\n  "name": \n}')
    with pytest.raises(InvalidInput, match=r"broken\.json is not valid JSON: .* line 4"):
        load_templates(tmp_path)


def test_duplicate_template_keys_across_files_are_refused(tmp_path: Path):
    (tmp_path / "a.json").write_text(json.dumps(VALID))
    (tmp_path / "b.json").write_text(json.dumps(VALID))
    with pytest.raises(
        InvalidInput, match=r"b\.json: field 'key' is 'tiny', already used by a\.json"
    ):
        load_templates(tmp_path)


def test_load_templates_reads_only_json_and_sorts_by_key(tmp_path: Path):
    second = copy.deepcopy(VALID) | {"key": "another"}
    (tmp_path / "z.json").write_text(json.dumps(VALID))
    (tmp_path / "y.json").write_text(json.dumps(second))
    (tmp_path / "notes.txt").write_text("not a template")
    assert [t.key for t in load_templates(tmp_path)] == ["another", "tiny"]


def test_missing_directory_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_templates(tmp_path / "nowhere")
