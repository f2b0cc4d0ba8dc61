"""Compliance: checklist work, electronic sign-offs (R7), the production gate, the approval pack
and the model timeline, on a real store with real scikit-learn versions."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import col, func, select

from core import demo, packs
from core.artifacts import default_store
from core.auth import OPERATOR, SYSTEM, Principal
from core.checklists import load_templates
from core.db import Database
from core.demo.models import DEMO_CARDS
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import AuditEvent, ChecklistTemplateRecord, Notification, Signoff, utcnow
from core.services import compliance, registry, reviews, versions
from core.services import users as users_service

MODEL = "eu-credit-scorer"
INTERNAL = "internal_policy"
HOSTILE = "<script>alert('x')</script> & Co"


@dataclass
class World:
    db: Database
    dana: Principal
    riley: Principal
    casey: Principal
    blake: Principal
    ada: Principal


def _frame(seed: int, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = ((x1 + 0.5 * x2 + rng.normal(scale=0.7, size=n)) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": rng.choice(["north", "south"], n), "y": y})


def register(db: Database, actor: Principal, c: float) -> int:
    train, test = _frame(1), _frame(2)
    estimator = LogisticRegression(C=c).fit(train[["x1", "x2"]], train["y"])
    upload = versions.VersionUpload(
        model=MODEL,
        model_file=sio.dumps(estimator),
        model_filename="scorer.skops",
        eval_file=test.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )
    return versions.register_version(db, actor, upload).number


@pytest.fixture
def world(db: Database) -> World:
    demo.seed(db, with_models=False)
    person = {
        p: users_service.principal_by_email(db, f"{p}@demo.quorum")
        for p in ("dana", "riley", "casey", "blake", "ada")
    }
    registry.create_model(
        db,
        person["dana"],
        registry.ModelSpec(
            name=MODEL,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            purpose="Scores applications.",
            risk_tier="high",
            target="y",
            sensitive_column="region",
            tags={"region": "eu", "sector": "banking"},
        ),
    )
    with db.read() as session:
        row = registry.model_row(session, MODEL)
    card = {"purpose": "Scores applications.", **DEMO_CARDS["credit-default-scorer"]}
    registry.update_card(db, person["dana"], row.id or 0, card, row_version=row.row_version)
    register(db, person["dana"], 1.0)
    return World(db, **person)


def _require(w: World, checklists: list[str], signoffs: list[str]) -> None:
    with w.db.read() as session:
        row_version = reviews.policy_for(session, "high").row_version
    reviews.update_policy(  # the operator, alone; four eyes are tested in test_gate_policy
        w.db,
        OPERATOR,
        "high",
        min_approvals=2,
        required_roles=["reviewer", "compliance_officer"],
        required_checklists=checklists,
        required_signoffs=signoffs,
        row_version=row_version,
    )


def _gate(w: World, number: int = 1) -> list[str]:
    with w.db.read() as session:
        model = registry.model_row(session, MODEL)
        return compliance.production_gate(
            session, model, registry.get_version(session, model, number)
        )


def _complete(w: World, template: str, number: int = 1) -> None:
    for cl in compliance.checklists(w.db, SYSTEM, MODEL, number):
        if cl.key != template:
            continue
        for item in cl.items:
            na = item.evidence_hint == "fairness"
            compliance.update_item(
                w.db, w.casey, MODEL, number, cl.key, item.key,
                status="not_applicable" if na else "met",
                na_reason="No decision about people in this pilot." if na else "",
                no_evidence_reason="" if na else "Walked through in the validation meeting.",
                row_version=item.row_version,
            )  # fmt: skip


def _status(w: World, signoff_id: int) -> str:
    views = compliance.signoffs(w.db, SYSTEM, MODEL, 1)
    return next(v.status for v in views if v.signoff.id == signoff_id)


# --- sign-offs ------------------------------------------------------------------------------


def test_sign_records_printed_name_role_time_and_hashes(world: World) -> None:
    before = utcnow()
    s = compliance.sign(
        world.db, world.casey, MODEL, 1, "compliance reviewed", "  casey   COMPLIANCE "
    )
    with world.db.read() as session:
        version = registry.get_version(session, registry.model_row(session, MODEL), 1)
        evidence = compliance.evidence_hash(session, version)
    assert s.printed_name == "Casey Compliance"
    assert s.role == "compliance_officer"
    assert s.meaning == "compliance reviewed"
    assert s.artifact_sha256 == version.artifact_sha256
    assert s.evidence_sha256 == evidence
    assert before - timedelta(seconds=1) <= s.signed_at.replace(tzinfo=before.tzinfo) <= utcnow()
    assert _status(world, s.id or 0) == "valid"


def test_wrong_typed_name_is_refused_and_nothing_stored(world: World) -> None:
    with pytest.raises(InvalidInput, match="does not match your full name"):
        compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Blake Business")
    with pytest.raises(InvalidInput, match="not a sign-off meaning"):
        compliance.sign(world.db, world.casey, MODEL, 1, "looks fine", "Casey Compliance")
    with world.db.read() as session:
        assert session.exec(select(func.count()).select_from(Signoff)).one() == 0


def test_repeated_identical_signoff_is_refused(world: World) -> None:
    compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance")
    with pytest.raises(Conflict, match="already signed"):
        compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance")
    other = compliance.sign(world.db, world.blake, MODEL, 1, "business accepted", "Blake Business")
    assert other.role == "business_stakeholder"


def test_signoff_on_changed_artifact_is_refused(world: World) -> None:
    with world.db.read() as session:
        version = registry.get_version(session, registry.model_row(session, MODEL), 1)
    path = Path(default_store().root) / version.artifact_key
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(InvalidInput, match="no longer matches"):
        compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance")
    with world.db.read() as session:
        assert session.exec(select(func.count()).select_from(Signoff)).one() == 0


def test_changed_evidence_makes_the_signature_stop_counting(world: World) -> None:
    _require(world, [], ["compliance reviewed"])
    first = compliance.sign(
        world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance"
    )
    assert _gate(world) == []
    compliance.update_item(
        world.db, world.casey, MODEL, 1, INTERNAL, "model_card_complete",
        status="met", no_evidence_reason="The card is in Quorum itself.", row_version=0,
    )  # fmt: skip
    assert _status(world, first.id or 0) == "stale"
    gate = _gate(world)
    assert len(gate) == 1
    assert gate[0].startswith("sign-off 'compliance reviewed' missing")
    assert "evidence or item states changed" in gate[0]
    second = compliance.sign(
        world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance"
    )
    assert second.supersedes_id == first.id
    assert _status(world, first.id or 0) == "superseded"
    assert _gate(world) == []


def test_revocation_is_a_new_record_and_the_original_is_untouched(world: World) -> None:
    s = compliance.sign(world.db, world.blake, MODEL, 1, "business accepted", "Blake Business")
    with world.db.read() as session:
        original = session.get(Signoff, s.id).model_dump()  # type: ignore[union-attr]
    revocation = compliance.revoke(world.db, world.blake, s.id or 0, "Signed the wrong version.")
    assert revocation.id != s.id
    assert revocation.kind == "revocation" and revocation.supersedes_id == s.id
    assert revocation.printed_name == "Blake Business"
    with world.db.read() as session:
        assert session.get(Signoff, s.id).model_dump() == original  # type: ignore[union-attr]
        assert session.exec(select(func.count()).select_from(Signoff)).one() == 2
    assert _status(world, s.id or 0) == "revoked"
    with pytest.raises(Conflict, match="already revoked"):
        compliance.revoke(world.db, world.casey, s.id or 0, "Again.")
    with pytest.raises(InvalidInput, match="required"):
        compliance.revoke(world.db, world.blake, s.id or 0, "  ")
    again = compliance.sign(world.db, world.blake, MODEL, 1, "business accepted", "Blake Business")
    assert _status(world, again.id or 0) == "valid"


def test_expiry_reminder_is_sent_once_to_the_owner(world: World) -> None:
    soon = compliance.sign(
        world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance", 10
    )
    compliance.sign(world.db, world.blake, MODEL, 1, "business accepted", "Blake Business", 365)
    assert compliance.remind_expiring(world.db) == 1
    assert compliance.remind_expiring(world.db) == 0
    with world.db.read() as session:
        notes = session.exec(
            select(Notification).where(Notification.kind == "signoff_expiring")
        ).all()
    assert [n.user_id for n in notes] == [world.dana.user_id]
    assert f"signoff={soon.id}" in notes[0].link
    assert "compliance reviewed" in notes[0].title
    later = utcnow() + timedelta(days=30)
    assert compliance.remind_expiring(world.db, now=later) == 0  # the 10-day one has expired
    status = compliance.version_compliance(world.db, SYSTEM, MODEL, 1)
    assert [v.signoff.id for v in status.expiring] == [soon.id]


# --- checklist work -------------------------------------------------------------------------


def _item(w: World, key: str) -> compliance.ItemView:
    lists = {c.key: c for c in compliance.checklists(w.db, SYSTEM, MODEL, 1)}
    return next(i for i in lists[INTERNAL].items if i.key == key)


def test_met_with_evidence_needs_no_reason(world: World) -> None:
    compliance.add_evidence(
        world.db, world.casey, MODEL, 1, INTERNAL, "peer_review",
        kind="review_thread", reference="v1 review thread",
    )  # fmt: skip
    compliance.update_item(
        world.db, world.casey, MODEL, 1, INTERNAL, "peer_review",
        status="met", row_version=_item(world, "peer_review").row_version,
    )  # fmt: skip
    item = _item(world, "peer_review")
    assert (item.status, item.na_reason) == ("met", "")


def test_item_rules_reason_conflict_and_evidence(world: World) -> None:
    with pytest.raises(InvalidInput, match="reason it does not apply"):
        compliance.update_item(
            world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
            status="not_applicable", row_version=0,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="cannot be met without evidence"):
        compliance.update_item(
            world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
            status="met", owner_id=world.riley.user_id, notes="See slices.", row_version=0,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="reason no evidence is needed"):
        compliance.update_item(
            world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
            status="met", no_evidence_reason="<b>\x00</b>", row_version=0,
        )  # fmt: skip
    assert _item(world, "fairness_reviewed").status == "open", "a refusal changes nothing"
    row = compliance.update_item(
        world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
        status="met", owner_id=world.riley.user_id, notes="See slices.",
        no_evidence_reason="Slices are on the evaluation tab of v1.", row_version=0,
    )  # fmt: skip
    assert _item(world, "fairness_reviewed").na_reason == "Slices are on the evaluation tab of v1."
    with pytest.raises(Conflict, match="Someone else changed"):
        compliance.update_item(
            world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
            status="open", row_version=0,
        )  # fmt: skip
    with pytest.raises(NotFound, match="does not apply"):
        compliance.update_item(
            world.db, world.casey, MODEL, 1, "no_such_list", "x", status="met", row_version=0
        )
    compliance.add_evidence(
        world.db, world.casey, MODEL, 1, INTERNAL, "fairness_reviewed",
        kind="fairness", reference="v1 fairness table",
    )  # fmt: skip
    doc = compliance.add_evidence(
        world.db, world.casey, MODEL, 1, INTERNAL, "model_card_complete",
        kind="document", document=b"%PDF-1.4 risk register", filename="register.pdf",
    )  # fmt: skip
    assert doc.document_sha256 and len(doc.document_sha256) == 64
    assert compliance.evidence_document(world.db, SYSTEM, doc.id or 0) == (
        "register.pdf",
        b"%PDF-1.4 risk register",
    )
    lists = {c.key: c for c in compliance.checklists(world.db, SYSTEM, MODEL, 1)}
    assert set(lists) == {"eu_ai_act_high_risk", "internal_policy", "iso_42001", "nist_ai_rmf",
                          "sr_11_7"}  # fmt: skip
    item = next(i for i in lists[INTERNAL].items if i.key == "fairness_reviewed")
    assert (item.status, item.owner, item.row_version) == ("met", "Riley Reviewer", row.row_version)
    assert [e.reference for e in item.evidence] == ["v1 fairness table"]


def test_permission_refusals_are_audited(world: World) -> None:
    attempts = [
        lambda: compliance.update_item(
            world.db, world.blake, MODEL, 1, INTERNAL, "peer_review", status="met", row_version=0
        ),
        lambda: compliance.add_evidence(
            world.db,
            world.riley,
            MODEL,
            1,
            INTERNAL,
            "peer_review",
            kind="review_thread",
            reference="thread",
        ),  # fmt: skip
        lambda: compliance.sign(
            world.db, world.riley, MODEL, 1, "business accepted", "Riley Reviewer"
        ),
        lambda: compliance.sign(world.db, world.dana, MODEL, 1, "validated", "Dana Scientist"),
        lambda: compliance.sign(world.db, world.blake, MODEL, 1, "validated", "Blake Business"),
        lambda: packs.export_pack(world.db, world.blake, MODEL, 1, "html"),
        lambda: compliance.save_template(world.db, world.casey, "{}"),
    ]
    for attempt in attempts:
        with pytest.raises((PermissionDenied, InvalidInput)):
            attempt()
    with world.db.read() as session:
        denied = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "permission.denied")
        ).one()
        assert session.exec(select(func.count()).select_from(Signoff)).one() == 0
    assert denied == 6  # the template text is refused as invalid before any permission check


def test_others_signature_may_be_revoked_only_with_compliance_work(world: World) -> None:
    s = compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance")
    with pytest.raises(PermissionDenied):
        compliance.revoke(world.db, world.blake, s.id or 0, "Not mine to keep.")
    compliance.revoke(world.db, world.casey, s.id or 0, "Validation to be redone.")


# --- templates ------------------------------------------------------------------------------


def test_template_sync_is_idempotent_and_admin_edits_are_kept(world: World) -> None:
    assert sorted(compliance.sync_templates(world.db)) == sorted(t.key for t in load_templates())
    assert compliance.sync_templates(world.db) == []
    internal = next(t for t in load_templates() if t.key == INTERNAL)
    edited = internal.to_dict()
    edited["items"] = edited["items"][:2]
    record = compliance.save_template(world.db, world.ada, json.dumps(edited), row_version=1)
    assert record.source == "app" and record.row_version == 2
    with pytest.raises(Conflict):
        compliance.save_template(world.db, world.ada, json.dumps(edited), row_version=1)
    with pytest.raises(InvalidInput, match="items"):
        compliance.save_template(world.db, world.ada, json.dumps({**edited, "items": []}))
    assert compliance.sync_templates(world.db) == []
    with world.db.read() as session:
        kept = session.exec(
            select(ChecklistTemplateRecord).where(ChecklistTemplateRecord.key == INTERNAL)
        ).one()
    assert len(kept.body["items"]) == 2
    lists = {c.key: c for c in compliance.checklists(world.db, SYSTEM, MODEL, 1)}
    assert len(lists[INTERNAL].items) == 2


# --- the gate and the queue -----------------------------------------------------------------


def test_gate_lists_exactly_what_is_missing(world: World) -> None:
    assert _gate(world) == []
    with pytest.raises(InvalidInput, match="missing_list is not one of"):
        _require(world, [INTERNAL, "missing_list"], ["approved for production", "validated"])
    _require(world, [INTERNAL], ["approved for production", "validated"])
    required = [
        i.key for i in compliance.checklists(world.db, SYSTEM, MODEL, 1)[1].items if i.required
    ]
    assert _gate(world) == [
        f"checklist 'Internal model release policy': {len(required)} of {len(required)} "
        "required items not met or marked not applicable with a reason ("
        + ", ".join(required)
        + ")",
        "sign-off 'approved for production' missing",
        "sign-off 'validated' missing",
    ]
    _complete(world, INTERNAL)
    compliance.sign(world.db, world.riley, MODEL, 1, "validated", "Riley Reviewer")
    assert _gate(world) == ["sign-off 'approved for production' missing"]
    queue = compliance.compliance_queue(world.db, SYSTEM)
    assert queue == []  # v1 is only registered, not in review or approved
    reviews.submit_for_review(world.db, world.dana, MODEL, 1)
    queue = compliance.compliance_queue(world.db, SYSTEM)
    assert [(q.model, q.number) for q in queue] == [(MODEL, 1)]
    assert "sign-off 'approved for production' missing" in queue[0].waiting_for
    assert not any(w.startswith("Internal model release policy") for w in queue[0].waiting_for)
    compliance.sign(world.db, world.casey, MODEL, 1, "approved for production", "Casey Compliance")
    assert _gate(world) == []


# --- pack and timeline ----------------------------------------------------------------------


def _pack_world(w: World) -> None:
    registry.update_card(
        w.db, w.dana, _model_id(w), {"purpose": HOSTILE, "limitations": "Small sample."},
        row_version=_row_version(w),
    )  # fmt: skip
    register(w.db, w.dana, 0.05)
    compliance.add_evidence(
        w.db, w.casey, MODEL, 2, INTERNAL, "model_card_complete", kind="model_card",
        reference="model card, purpose section",
    )  # fmt: skip
    compliance.update_item(
        w.db, w.casey, MODEL, 2, INTERNAL, "model_card_complete", status="met",
        notes=HOSTILE, row_version=1,
    )  # fmt: skip
    compliance.sign(w.db, w.casey, MODEL, 2, "compliance reviewed", "Casey Compliance")


def _model_id(w: World) -> int:
    with w.db.read() as session:
        return registry.model_row(session, MODEL).id or 0


def _row_version(w: World) -> int:
    with w.db.read() as session:
        return registry.model_row(session, MODEL).row_version


def test_html_pack_has_every_section_escaped_and_its_fingerprint(world: World) -> None:
    _pack_world(world)
    pack = packs.export_pack(world.db, world.casey, MODEL, 2, "html")
    text = pack.data.decode()
    assert pack.mime == "text/html" and pack.filename.endswith(".html")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in text
    for expected in (
        "Approval pack: eu-credit-scorer v2",
        "Casey Compliance",
        "compliance reviewed",
        "Champion comparison",
        "v2 (candidate) against v1 (champion)",
        "model card, purpose section",
        "Audit trail intact",
        pack.fingerprint,
    ):
        assert expected in text, expected
    assert text.count("data:image/png;base64,") == 3  # ROC, metrics, fairness
    with world.db.read() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "pack.exported")).one()
    assert event.details["fingerprint"] == pack.fingerprint


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_pdf_pack_pages_render_with_texts_and_charts(world: World, tmp_path: Path) -> None:
    _pack_world(world)
    pack = packs.export_pack(world.db, world.casey, MODEL, 2, "pdf")
    assert pack.data.startswith(b"%PDF")
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(pack.data)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    for expected in (
        "Approval pack: eu-credit-scorer v2",
        "Casey Compliance",
        "compliance reviewed",
        "Audit trail intact",
        "Pack fingerprint (SHA-256)",
        HOSTILE,
    ):
        assert expected in flat, expected
    assert pack.fingerprint[:40] in flat.replace(" ", "")
    images = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    assert len([ln for ln in images.splitlines()[2:] if ln.strip()]) >= 3
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    from PIL import Image

    coloured = 0
    for page in pages:
        pixels = np.asarray(Image.open(page).convert("RGB")).astype(int)
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        coloured += int((spread > 60).sum())  # chart colours, not black text on white
    assert coloured > 500


def test_timeline_is_chronological_and_covers_each_kind(world: World) -> None:
    reviews.submit_for_review(world.db, world.dana, MODEL, 1)
    reviews.add_comment(world.db, world.riley, MODEL, 1, "Looks fine to me.")
    reviews.decide(world.db, world.riley, MODEL, 1, "approve", "")
    s = compliance.sign(world.db, world.casey, MODEL, 1, "compliance reviewed", "Casey Compliance")
    compliance.revoke(world.db, world.casey, s.id or 0, "Redo.")
    entries = compliance.timeline(world.db, SYSTEM, MODEL)
    whens = [e.when.replace(tzinfo=None) for e in entries]
    assert whens == sorted(whens)
    kinds = [e.kind for e in entries]
    assert kinds.index("registration") < kinds.index("review") < kinds.index("comment")
    assert kinds.index("comment") < kinds.index("decision") < kinds.index("sign-off")
    signs = [e for e in entries if e.kind == "sign-off"]
    assert [e.actor for e in signs] == ["Casey Compliance", "Casey Compliance"]
    assert "revoked" in signs[1].summary and "Redo." in signs[1].summary
    assert kinds[0] == "model"
    assert len([k for k in kinds if k in ("comment", "decision")]) == 2  # no audit duplicates
    with world.db.read() as session:
        n = session.exec(select(func.count()).select_from(Signoff).where(col(Signoff.id) > 0)).one()
    assert n == 2


@pytest.mark.slow
def test_demo_seed_fills_checklists_with_expired_and_revoked_signoffs(seeded_db: Database) -> None:
    from core.demo.compliance import seed_compliance

    with seeded_db.read() as session:
        count = session.exec(select(func.count()).select_from(Signoff)).one()
    assert count > 0, "the demo seed signs off demo versions"
    assert seed_compliance(seeded_db) == []
    with seeded_db.read() as session:
        assert session.exec(select(func.count()).select_from(Signoff)).one() == count
    statuses = [
        v.status
        for model in ("credit-default-scorer", "bike-demand-forecaster")
        for n in (1, 2, 3)
        for v in compliance.signoffs(seeded_db, SYSTEM, model, n)
    ]
    assert statuses.count("expired") == 1 and statuses.count("revoked") == 1
    full = compliance.version_compliance(seeded_db, SYSTEM, "credit-default-scorer", 2)
    assert full.gate == [] and all(f.complete for f in full.frameworks)
    partial = compliance.version_compliance(seeded_db, SYSTEM, "credit-default-scorer", 3)
    assert partial.gate and any(0 < f.done < f.required_total for f in partial.frameworks)
