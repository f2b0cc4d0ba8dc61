"""Findings: raised by a reviewer, answered by their owner, closed or re-opened by a reviewer;
open findings of the policy's severity keep a version out of production; overdue ones reach the
owner's inbox once a day; another team never sees them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from core.db import Database
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.models import AuditEvent, Finding, FindingEvent, Notification, Role, utcnow
from core.packdata import PackData
from core.services import compliance, deployments, findings, users
from tests.integration import test_gate_policy
from tests.integration.test_gate_policy import MEDIUM, People, approved, set_policy

people = test_gate_policy.people  # the fixture: the demo people and a medium-risk model

PROD = deployments.PRODUCTION


def _raise(db: Database, p: People, number: int, severity: str = "high") -> int:
    row = findings.raise_finding(
        db,
        p.riley,
        MEDIUM,
        number,
        severity=severity,
        text="Calibration drifts above 0.7 on the holdout.",
        owner="dana@demo.quorum",
        due_on=utcnow().date() + timedelta(days=14),
        anchor="metric:roc_auc",
    )
    return row.id or 0


def _blocked(db: Database, p: People, number: int) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        deployments.promote(db, p.riley, MEDIUM, number, PROD, "go")
    return refused.value.details


def test_high_finding_blocks_the_gate_until_closed_and_again_when_reopened(
    people_db: Database, people: People
) -> None:
    p = people
    number = approved(people_db, p, MEDIUM, 1)
    fid = _raise(people_db, p, number)
    blockers = _blocked(people_db, p, number)
    assert any(f"finding #{fid}" in b and f"finding={fid}" in b for b in blockers), blockers
    state = compliance.version_compliance(people_db, p.casey, MEDIUM, number)
    assert any(f"#{fid}" in line for line in state.gate)

    findings.answer_finding(people_db, p.dana, fid, "Recalibrated with isotonic regression.")
    assert any(f"#{fid}" in b for b in _blocked(people_db, p, number)), "answered is not closed"
    findings.close_finding(people_db, p.riley, fid, "Checked the new calibration plot.")
    findings.reopen_finding(people_db, p.morgan, fid, "The plot was of the wrong version.")
    assert any(f"#{fid}" in b for b in _blocked(people_db, p, number))
    findings.close_finding(people_db, p.morgan, fid)
    deployments.promote(people_db, p.riley, MEDIUM, number, PROD, "findings closed")
    assert deployments.status(people_db, p.riley, MEDIUM)[PROD] == number

    view = findings.finding(people_db, p.dana, fid)
    assert [e.action for e in view.events] == ["raised", "answered", "closed", "reopened", "closed"]
    assert view.status == findings.CLOSED
    with people_db.read() as session:
        actions = [
            e.action
            for e in session.exec(select(AuditEvent).where(AuditEvent.object_type == "finding"))
        ]
    assert actions == [
        "finding.raised",
        "finding.answered",
        "finding.closed",
        "finding.reopened",
        "finding.closed",
    ]
    entries = compliance.timeline(people_db, p.casey, MEDIUM)
    assert sum(e.kind == "finding" for e in entries) == 5
    with people_db.read() as session:
        pack = findings.findings_for_pack(session, p.casey, view_version_id(people_db, fid))
    assert pack[0]["id"] == fid and len(pack[0]["history"]) == 5


def view_version_id(db: Database, fid: int) -> int:
    with db.read() as session:
        row = session.get(Finding, fid)
        assert row is not None
        return row.version_id


def test_the_policy_names_the_blocking_severity(people_db: Database, people: People) -> None:
    p = people
    number = approved(people_db, p, MEDIUM, 2)
    medium = _raise(people_db, p, number, "medium")
    deployments.promote(people_db, p.riley, MEDIUM, number, "staging", "medium does not block")
    with people_db.read() as session:
        from core.services.reviews import policy_for

        assert policy_for(session, "medium").fields.blocking_finding_severity == "high"
    set_policy(people_db, p, "medium", blocking_finding_severity="medium")
    assert any(f"#{medium}" in b for b in _blocked(people_db, p, number))
    set_policy(people_db, p, "medium", blocking_finding_severity="none")
    _raise(people_db, p, number, "high")
    deployments.promote(people_db, p.riley, MEDIUM, number, PROD, "nothing blocks")
    with pytest.raises(InvalidInput, match="Open findings that block production"):
        set_policy(people_db, p, "medium", blocking_finding_severity="severe")


def test_who_may_raise_answer_close(people_db: Database, people: People) -> None:
    p = people
    number = approved(people_db, p, MEDIUM, 3)
    with pytest.raises(PermissionDenied):
        findings.raise_finding(
            people_db,
            p.dana,
            MEDIUM,
            number,
            severity="low",
            text="x",
            owner="dana@demo.quorum",
            due_on=date.today() + timedelta(days=3),
        )
    with pytest.raises(InvalidInput, match="past"):
        findings.raise_finding(
            people_db,
            p.riley,
            MEDIUM,
            number,
            severity="low",
            text="x",
            owner="dana@demo.quorum",
            due_on="2001-01-01",
        )
    with pytest.raises(InvalidInput, match="Severity"):
        findings.raise_finding(
            people_db,
            p.riley,
            MEDIUM,
            number,
            severity="urgent",
            text="x",
            owner="dana@demo.quorum",
            due_on=date.today(),
        )
    fid = _raise(people_db, p, number, "low")
    with pytest.raises(InvalidInput, match="Only the owner"):
        findings.answer_finding(people_db, p.riley, fid, "I fixed it for Dana.")
    findings.answer_finding(
        people_db, p.dana, fid, "See the report.", document=b"%PDF-1.4 report", filename="fix.pdf"
    )
    with pytest.raises(PermissionDenied):
        findings.close_finding(people_db, p.dana, fid, "done")
    with pytest.raises(PermissionDenied):
        findings.close_finding(people_db, p.blake, fid, "done")
    findings.close_finding(people_db, p.casey, fid, "validator accepts")
    with people_db.read() as session:
        events = session.exec(select(FindingEvent).where(FindingEvent.finding_id == fid)).all()
        inbox = session.exec(
            select(Notification).where(
                Notification.kind == "finding.answered", Notification.user_id == p.riley.user_id
            )
        ).all()
    answered = [e for e in events if e.action == "answered"][0]
    assert answered.filename == "fix.pdf" and answered.evidence_sha256
    assert len(inbox) == 1


def test_another_team_never_sees_a_finding(people_db: Database, people: People) -> None:
    p = people
    number = approved(people_db, p, MEDIUM, 4)
    fraud = users.create_team(people_db, p.ada, "fraud", "Card fraud")
    rex = users.create_user(people_db, p.ada, "rex@demo.quorum", "Rex Reviewer")
    users.grant_role(people_db, p.ada, rex.id or 0, Role.REVIEWER, fraud.id)
    rex_p = users.principal_by_email(people_db, "rex@demo.quorum")
    with pytest.raises(InvalidInput, match="not a person of"):
        findings.raise_finding(
            people_db,
            p.riley,
            MEDIUM,
            number,
            severity="low",
            text="x",
            owner="rex@demo.quorum",
            due_on=date.today(),
        )
    fid = _raise(people_db, p, number)
    with pytest.raises(NotFound):
        findings.finding(people_db, rex_p, fid)
    with pytest.raises(NotFound):
        findings.findings(people_db, rex_p, MEDIUM)
    with pytest.raises(NotFound):
        findings.close_finding(people_db, rex_p, fid, "not mine")
    with people_db.read() as session:
        assert findings.findings_for_pack(session, rex_p, view_version_id(people_db, fid)) == []
    assert findings.my_findings(people_db, rex_p) == []
    assert [f.id for f in findings.my_findings(people_db, p.dana)] == [fid]


def test_overdue_findings_reach_the_owner_once_a_day(people_db: Database, people: People) -> None:
    p = people
    number = approved(people_db, p, MEDIUM, 5)
    fid = _raise(people_db, p, number, "medium")
    with people_db.write() as session:
        row = session.get(Finding, fid)
        assert row is not None
        row.due_on = utcnow().date() - timedelta(days=2)
        session.add(row)
    now = utcnow()
    assert findings.remind_overdue(people_db, now=now) == 1
    assert findings.remind_overdue(people_db, now=now) == 0
    assert findings.remind_overdue(people_db, now=now + timedelta(days=1)) == 1
    with people_db.read() as session:
        due = session.exec(select(Notification).where(Notification.kind == "finding.due")).all()
    assert [n.user_id for n in due] == [p.dana.user_id, p.dana.user_id]
    assert findings.findings(people_db, p.dana, MEDIUM, number)[0].overdue
    findings.close_finding(people_db, p.riley, fid, "withdrawn")
    assert findings.remind_overdue(people_db, now=now + timedelta(days=2)) == 0


def test_the_pack_states_the_versions_findings_and_its_revalidation(
    people_db: Database, people: People
) -> None:
    """The approval pack lists every finding of the version it describes with its history; an
    open one is an open risk on the verdict page, a closed one is not; once the version is live
    in production the pack says when it is due for revalidation."""
    from core.reports import render_html
    from core.services.compliance.pack import build_pack
    from core.services.registry import get_model, get_version

    p = people

    def pack(number: int) -> PackData:
        with people_db.read() as session:
            model = get_model(session, p.casey, MEDIUM)
            return build_pack(session, p.casey, model, get_version(session, model, number))

    number = approved(people_db, p, MEDIUM, 8)
    other = approved(people_db, p, MEDIUM, 9)
    fid = _raise(people_db, p, number, "medium")
    open_pack = pack(number)
    assert [(f.id, f.severity, f.status) for f in open_pack.findings] == [(fid, "medium", "open")]
    assert "raised by" in open_pack.findings[0].history
    assert any(f"finding #{fid}" in s.text for s in open_pack.verdict.open_risks)
    assert open_pack.revalidation is None  # never live in production: nothing is due
    assert f"#{fid}" in render_html(open_pack)
    assert pack(other).findings == []  # another version's finding is not this one's

    findings.close_finding(people_db, p.riley, fid, "Recalibrated and checked.")
    deployments.promote(people_db, p.riley, MEDIUM, number, PROD, "finding closed")
    closed_pack = pack(number)
    assert [f.status for f in closed_pack.findings] == ["closed"]
    assert not any(f"finding #{fid}" in s.text for s in closed_pack.verdict.open_risks)
    assert closed_pack.revalidation is not None
    assert "revalidation due" in closed_pack.revalidation.text
    assert closed_pack.revalidation.ok is True
    assert "Revalidation:" in render_html(closed_pack)
