"""Every statement the approval pack makes is about the version it describes (issue 14 item 7),
checked on a model built here with a version live in production (v2), one that was (v1) and one
that never was (v3); the high-risk card gaps (issue 18); and a PDF render that fetches nothing."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from core import reports
from core.auth import OPERATOR, SYSTEM, Principal
from core.db import Database
from core.models import Alert, MLModel, utcnow
from core.packdata import PackData
from core.services import compliance, deployments, registry, reviews, users, versions
from core.services.compliance.pack import assemble_pack

MODEL = "statement-scorer"
HIGH_BARE = "bare-high-scorer"


@dataclass
class World:
    db: Database
    dana: Principal
    riley: Principal
    casey: Principal
    packs: dict[int, PackData]


def _register(db: Database, dana: Principal, model: str, seed: int, *, inverted: bool) -> int:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["income", "debt"])
    frame["default"] = (frame["debt"] > frame["income"]).astype(int)
    target = 1 - frame["default"] if inverted else frame["default"]
    estimator = LogisticRegression().fit(frame[["income", "debt"]], target)
    upload = versions.VersionUpload(
        model=model,
        model_file=sio.dumps(estimator),
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )
    return versions.register_version(db, dana, upload).number


def _approve(w: World, number: int) -> None:
    reviews.submit_for_review(w.db, w.dana, MODEL, number)
    reviews.decide(w.db, w.riley, MODEL, number, "approve", f"fine for v{number}")


def _alert(db: Database, number: int, status: str, message: str) -> None:
    with db.write() as session:
        model = registry.model_row(session, MODEL)
        version = registry.get_version(session, model, number)
        session.add(
            Alert(
                model_id=model.id or 0,
                version_id=version.id or 0,
                environment="production",
                window_start=utcnow(),
                kind="drift",
                metric="income",
                message=message,
                status=status,
                basis="realised" if status == "open" else "",
            )
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from core import demo, migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('pack') / 'quorum.db'}"
    migrate.upgrade(url)  # one store for the module: the statements do not depend on the backend
    db = Database(url)
    demo.seed(db, with_models=False)
    who = {n: users.principal_by_email(db, f"{n}@demo.quorum") for n in ("dana", "riley", "casey")}
    registry.create_model(
        db,
        who["dana"],
        registry.ModelSpec(
            name=MODEL,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            purpose="Scores applications.",
            risk_tier="medium",
            target="default",
            goal_metric="roc_auc",
            goal_operator=">=",
            goal_target=0.8,
        ),
    )
    w = World(db, who["dana"], who["riley"], who["casey"], {})
    for seed in (1, 2):
        number = _register(db, w.dana, MODEL, seed, inverted=False)
        _approve(w, number)
        deployments.promote(db, w.riley, MODEL, number, "production", f"release {number}")
    assert _register(db, w.dana, MODEL, 3, inverted=True) == 3  # a poor model, never live
    _alert(db, 1, "resolved", "Income drifted in the first weeks.")
    _alert(db, 2, "open", "Income drifts this week.")
    with db.read() as session:
        row_version = reviews.policy_for(session, "medium").row_version
    reviews.update_policy(
        db, OPERATOR, "medium", required_signoffs=["validated"], row_version=row_version
    )
    first = compliance.checklists(db, SYSTEM, MODEL, 2)[0]
    item = first.items[0]
    compliance.update_item(
        db, w.casey, MODEL, 2, first.key, item.key, status="met",
        no_evidence_reason="Checked in the release meeting.", row_version=item.row_version,
    )  # fmt: skip
    compliance.sign(db, w.riley, MODEL, 2, "validated", "Riley Reviewer")  # after the evidence
    w.packs = {n: assemble_pack(db, w.casey, MODEL, n) for n in (1, 2, 3)}
    return w


def _production(pack: PackData) -> str:
    return next(s.status for s in pack.verdict.live if s.environment == "production")


def _text(pack: PackData) -> str:
    return reports.render_html(pack)


# --- one test per statement -----------------------------------------------------------------


def test_live_status_is_the_described_versions_own(world: World) -> None:
    p1, p2, p3 = (world.packs[n] for n in (1, 2, 3))
    assert [_production(p) for p in (p1, p2, p3)] == ["was live", "live", "never"]
    assert "v2 is live in production since" in _text(p2)
    assert "v1 is not live in production; it was live there from" in _text(p1)
    assert "v3 has never been live in production" in _text(p3)
    for pack in (p1, p2, p3):  # the v1 pack once said this while v1 was live
        assert "no version is live in production" not in _text(pack)
    assert p2.comparison.basis == "v2 itself is live in production; v1 is its parent" or (
        not p2.comparison.available and "v2 itself is live" in p2.comparison.reason
    )
    assert p1.comparison.basis == "v2 is live in production"


def test_approvals_and_decisions_are_this_versions(world: World) -> None:
    for n in (1, 2):
        pack = world.packs[n]
        assert [d.reason for d in pack.decisions] == [f"fine for v{n}"]
        assert pack.verdict.approvals.ok is True
        assert f"Review round 1 of v{n}: 1 approval (Riley Reviewer)" in pack.verdict.approvals.text
    assert world.packs[3].decisions == []
    assert world.packs[3].verdict.approvals == world.packs[3].verdict.approvals.__class__(
        "v3 has no review decisions.", False
    )


def test_signoffs_are_this_versions(world: World) -> None:
    assert [(s.meaning, s.printed_name) for s in world.packs[2].signoffs] == [
        ("validated", "Riley Reviewer")
    ]
    assert world.packs[2].verdict.signatures.ok is True
    for n in (1, 3):
        assert world.packs[n].signoffs == []
        assert world.packs[n].verdict.signatures.text == "No one has signed this version."


def test_gate_verdict_is_this_versions(world: World) -> None:
    assert world.packs[2].gate == [] and world.packs[2].verdict.gate.ok is True
    for n in (1, 3):
        assert [g.text for g in world.packs[n].gate] == ["sign-off 'validated' missing"]
        assert world.packs[n].verdict.gate.ok is False
        assert "sign-off 'validated' missing" in [r.text for r in world.packs[n].verdict.open_risks]


def test_goal_met_is_judged_on_this_versions_evaluation(world: World) -> None:
    assert world.packs[1].verdict.goal.ok is True
    assert world.packs[2].verdict.goal.ok is True
    assert world.packs[3].verdict.goal.ok is False
    assert world.packs[3].verdict.goal.text.endswith("not met.")
    assert "goal is at least 0.80" in world.packs[3].verdict.goal.text


def test_incidents_are_this_versions(world: World) -> None:
    p1, p2, p3 = (world.packs[n] for n in (1, 2, 3))
    assert [i.message for i in p1.incidents] == ["Income drifted in the first weeks."]
    assert p1.verdict.incidents.ok is True and "0 open" in p1.verdict.incidents.text
    assert [i.message for i in p2.incidents] == ["Income drifts this week."]
    assert p2.verdict.incidents.ok is False and "1 open (drift)" in p2.verdict.incidents.text
    assert any("Income drifts this week." in r.text for r in p2.verdict.open_risks)
    assert p3.incidents == [] and "never been live" in p3.verdict.incidents.text


def test_checklist_status_is_this_versions(world: World) -> None:
    first = {n: world.packs[n].checklists[0].items[0].status for n in (1, 2, 3)}
    assert first == {1: "Not started", 2: "Met", 3: "Not started"} or (
        first[2] == "Met" and first[1] != "Met" and first[3] != "Met"
    )


def test_card_sections_not_required_are_named_not_flagged(world: World) -> None:
    pack = world.packs[2]
    assert [s.required for s in pack.card] == [False] * 6  # medium tier requires none
    assert pack.verdict.card.ok is None
    assert "intended use" in pack.verdict.card.text
    html = _text(pack)
    assert "Not written yet" not in html and "Not written." in html
    assert html.startswith("<!DOCTYPE html>")


def test_appendices_hold_only_this_versions_deployments_and_audit(world: World) -> None:
    p1 = world.packs[1]
    assert [d.environment for d in p1.deployments] == ["production"]
    assert p1.deployments[0].live_until_utc != "now"
    assert world.packs[3].deployments == []
    for row in p1.audit:
        assert f"{MODEL} v2" not in row.summary and f"{MODEL} v3" not in row.summary, row
    assert p1.audit and world.packs[3].audit


def test_pdf_opens_with_the_verdict_page(world: World, tmp_path: Path) -> None:
    pdf = tmp_path / "v1.pdf"
    pdf.write_bytes(reports.render_pdf(world.packs[1]))
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(first.split())
    for expected in (
        "Verdict",
        "v1 is not live in production; it was live there from",
        "Approvers and their decisions",
        "Open risks",
        "Artifact fingerprint (SHA-256)",
    ):
        assert expected in flat, expected
    assert "Appendix" not in flat and "Checklists and evidence" not in flat
    everything = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    words = set(" ".join(everything.split()).split(" "))
    assert "Approval" in words and "policy" in words


# --- high-risk card gaps --------------------------------------------------------------------


def test_high_risk_pack_flags_empty_sections_and_the_gate_links_to_the_card(world: World) -> None:
    from core import demo

    registry.create_model(
        world.db,
        world.dana,
        registry.ModelSpec(
            name=HIGH_BARE, team=demo.DEMO_TEAM, task="binary_classification",
            purpose="Scores.", risk_tier="high", target="default",
        ),
    )  # fmt: skip
    _register(world.db, world.dana, HIGH_BARE, 4, inverted=False)
    pack = assemble_pack(world.db, world.casey, HIGH_BARE, 1)
    flagged = [s.key for s in pack.card if s.required and s.empty]
    assert flagged == ["intended_use", "limitations", "data", "ethics", "caveats"]
    gaps = [g for g in pack.gate if g.text.startswith("model card section")]
    assert [g.link for g in gaps] == [f"/Models?model={HIGH_BARE}"] * 5
    assert "model card section 'intended use' is empty" in gaps[0].text
    html = _text(pack)
    assert html.count("Empty, and the high-risk policy requires it before production.") == 5
    assert "Not written yet" not in html
    with world.db.read() as session:
        model = session.exec(
            __import__("sqlmodel").select(MLModel).where(MLModel.name == HIGH_BARE)
        ).one()
        card = {"purpose": "Scores.", **{k: f"Written {k}." for k in reports_sections()}}
    registry.update_card(world.db, world.dana, model.id or 0, card, row_version=model.row_version)
    again = assemble_pack(world.db, world.casey, HIGH_BARE, 1)
    assert not [g for g in again.gate if g.text.startswith("model card section")]
    assert again.verdict.card.ok is True


def reports_sections() -> tuple[str, ...]:
    from core.policy import CARD_SECTIONS

    return CARD_SECTIONS


# --- the PDF renderer fetches nothing -------------------------------------------------------


def _environ_values() -> list[str]:
    raw = Path("/proc/self/environ").read_bytes().split(b"\0")
    values = [v.split(b"=", 1)[1].decode(errors="ignore") for v in raw if b"=" in v]
    return [v for v in values if len(v) >= 12]


def test_card_that_embeds_proc_environ_leaks_nothing(world: World, tmp_path: Path) -> None:
    secret = tmp_path / "secret.css"
    secret.write_text('body::before { content: "SECRET-FROM-FILE"; }')
    hostile = (
        '<img src="/proc/self/environ"> <img src="file:///proc/self/environ"> '
        "![env](/proc/self/environ) <link rel=stylesheet href='file:///proc/self/environ'> "
        f"<link rel=stylesheet href='file://{secret}'> "
        "<style>body{background:url(file:///proc/self/environ)}</style> "
        '<img src="http://127.0.0.1:9/x.png">'
    )
    with world.db.read() as session:
        model = registry.model_row(session, MODEL)
    registry.update_card(
        world.db, world.dana, model.id or 0,
        {"purpose": "Scores applications.", "limitations": hostile},
        row_version=model.row_version,
    )  # fmt: skip
    pack = assemble_pack(world.db, world.casey, MODEL, 3)
    html = reports.render_html(pack)
    assert '<img src="/proc' not in html and "<link rel=stylesheet" not in html
    assert "&lt;img src=&#34;/proc/self/environ&#34;&gt;" in html
    fetcher = reports.data_only_fetcher()
    data = reports.pdf_from_html(html, fetcher)
    assert fetcher.refused == []  # escaped: nothing in the card even became a URL
    text = _pdf_text(data, tmp_path)
    assert "/proc/self/environ" in text  # shown as text, never embedded

    # the same hostile markup unescaped, straight to the renderer: every URL refused
    fetcher = reports.data_only_fetcher()
    raw = f"<html><body><p>hello</p>{hostile}<img src='{pack.charts[0].data_uri}'></body></html>"
    data = reports.pdf_from_html(raw, fetcher)
    assert "file:///proc/self/environ" in fetcher.refused
    assert f"file://{secret}" in fetcher.refused
    assert "http://127.0.0.1:9/x.png" in fetcher.refused
    assert not any(u.startswith("data:") for u in fetcher.refused)
    text = _pdf_text(data, tmp_path)
    assert "SECRET-FROM-FILE" not in text and "hello" in text
    for value in _environ_values() + [os.environ.get("PATH", "PATH-VALUE-UNSET")]:
        assert value not in text and value.encode() not in data
    images = subprocess.run(
        ["pdfimages", "-list", str(tmp_path / "out.pdf")], capture_output=True, text=True
    ).stdout
    kinds = [ln.split()[2] for ln in images.splitlines()[2:] if ln.strip()]
    assert kinds.count("image") == 1  # the data: chart only (its alpha channel is an smask)


def _pdf_text(data: bytes, tmp_path: Path) -> str:
    pdf = tmp_path / "out.pdf"
    pdf.write_bytes(data)
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    return out.stdout
