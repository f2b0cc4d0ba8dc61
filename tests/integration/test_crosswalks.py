"""Evidence once, many frameworks: the crosswalk pairs shipped with the templates each cite a
published source and name real items; an item shows what else it satisfies; applying its
evidence to the mapped items is a service call, audited, idempotent and permission-checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from core.auth import SYSTEM
from core.checklists import DEFAULT_CROSSWALK_FILE, load_crosswalks, load_templates
from core.errors import ConfigurationError, InvalidInput, NotFound, PermissionDenied
from core.models import AuditEvent
from core.services import compliance
from tests.integration.test_compliance import MODEL, World, world  # noqa: F401  (fixture)

NIST, ISO = "nist_ai_rmf", "iso_42001"


def _item(w: World, template: str, key: str) -> compliance.ItemView:
    lists = {c.key: c for c in compliance.checklists(w.db, SYSTEM, MODEL, 1)}
    return next(i for i in lists[template].items if i.key == key)


def test_every_shipped_pair_cites_a_published_source_and_names_real_items() -> None:
    pairs = load_crosswalks(load_templates())
    assert pairs, "the templates ship with at least one crosswalk pair"
    for pair in pairs:
        assert pair.source.url.startswith("https://") and pair.source.title and pair.says
    data = json.loads(DEFAULT_CROSSWALK_FILE.read_text())
    assert len(data["mappings"]) == len(pairs)


def test_a_pair_without_a_source_or_with_an_unknown_item_is_refused(tmp_path: Path) -> None:
    data = json.loads(DEFAULT_CROSSWALK_FILE.read_text())
    bad = tmp_path / "crosswalks.json"
    data["mappings"].append({"items": [f"{NIST}/map_2_2", f"{ISO}/c4_3_scope"], "says": "x"})
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="must cite one of the sources"):
        load_crosswalks(load_templates(), bad)
    data["mappings"][-1] = {"items": [f"{NIST}/map_9_9", f"{ISO}/c4_3_scope"], "source": "x"}
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="names two items"):
        load_crosswalks(load_templates(), bad)


def test_an_item_shows_what_else_it_satisfies_and_evidence_is_applied_once(
    world: World,  # noqa: F811  (the fixture of test_compliance)
) -> None:
    nist = _item(world, NIST, "map_2_2")
    assert len(nist.also) == 1
    assert "ISO/IEC 42001" in nist.also[0] and "Annex A.6.2.7" in nist.also[0]
    assert "source: NIST AI RMF to ISO/IEC FDIS 42001" in nist.also[0]
    assert "MAP 2.2" in _item(world, ISO, "a6_2_7_technical_documentation").also[0]
    assert _item(world, ISO, "c4_3_scope").also == ()  # no published pair: nothing claimed

    doc = compliance.add_evidence(
        world.db, world.casey, MODEL, 1, NIST, "map_2_2",
        kind="document", document=b"%PDF-1.4 model card v1", filename="card.pdf",
    )  # fmt: skip
    with pytest.raises(PermissionDenied):
        compliance.apply_to_mapped(world.db, world.blake, MODEL, 1, doc.id or 0)
    assert compliance.apply_to_mapped(world.db, world.casey, MODEL, 1, doc.id or 0) == [
        f"{ISO}/a6_2_7_technical_documentation"
    ]
    iso = _item(world, ISO, "a6_2_7_technical_documentation")
    assert [(e.kind, e.filename, e.document_sha256) for e in iso.evidence] == [
        ("document", "card.pdf", doc.document_sha256)
    ]
    assert compliance.apply_to_mapped(world.db, world.casey, MODEL, 1, doc.id or 0) == []
    with world.db.read() as session:
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "checklist.evidence_applied")
        ).all()
    assert "airc.nist.gov" in event.details["source"] and event.details["from_evidence"] == doc.id

    lone = compliance.add_evidence(
        world.db, world.casey, MODEL, 1, ISO, "c4_3_scope", kind="document",
        document=b"scope", filename="scope.pdf",
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="No published crosswalk maps iso_42001/c4_3_scope"):
        compliance.apply_to_mapped(world.db, world.casey, MODEL, 1, lone.id or 0)
    with pytest.raises(NotFound, match="is not on a checklist"):
        compliance.apply_to_mapped(world.db, world.casey, MODEL, 1, 987654)
