"""Periodic revalidation: a live version past its policy date shows overdue and its people are
told once; a revalidation is a review round of the live version with its own decisions and
sign-offs; a failed one keeps the version live, flags it, opens a high finding and blocks
its re-promotion, and a rollback to it, until the finding is closed."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlmodel import col, select

from core import policy
from core.db import Database
from core.errors import Conflict, InvalidInput, PermissionDenied, QuorumError
from core.models import (
    Finding,
    ModelVersion,
    Notification,
    Revalidation,
    Role,
    VersionState,
    utcnow,
)
from core.services import compliance, deployments, findings, registry, revalidation, users
from tests.integration import test_gate_policy
from tests.integration.test_gate_policy import MEDIUM, People, approved

people = test_gate_policy.people  # the fixture: the demo people and a medium-risk model
PROD = deployments.PRODUCTION


def _live_v1(db: Database, p: People) -> int:
    number = approved(db, p, MEDIUM, 1)
    deployments.promote(db, p.riley, MEDIUM, number, PROD, "first release")
    return number


def _due(db: Database, p: People) -> revalidation.RevalidationStatus:
    status = revalidation.model_revalidation(db, p.casey, MEDIUM)
    assert status is not None and status.due_on is not None
    return status


def _at(day: object) -> datetime:
    return datetime.combine(day, datetime.min.time()).replace(tzinfo=utcnow().tzinfo)  # type: ignore[arg-type]


def _inbox(db: Database, kind: str) -> list[tuple[int, str]]:
    with db.read() as session:
        rows = session.exec(
            select(Notification).where(Notification.kind == kind).order_by(col(Notification.id))
        ).all()
        return [(n.user_id, n.title) for n in rows]


def test_interval_defaults_per_tier() -> None:
    assert [policy.defaults(t).revalidation_months for t in ("high", "medium", "low")] == [
        12,
        24,
        None,
    ]


def test_a_version_past_its_date_shows_overdue_and_its_people_are_told_once(
    people_db: Database, people: People
) -> None:
    p = people
    _live_v1(people_db, p)
    status = _due(people_db, p)
    assert status.due_on == revalidation.add_months(utcnow().date(), 24)
    assert not status.overdue
    due = status.due_on
    assert due is not None
    assert revalidation.notify_due(people_db, now=_at(due - timedelta(days=40))) == 0
    assert revalidation.notify_due(people_db, now=_at(due - timedelta(days=30))) == 1
    assert revalidation.notify_due(people_db, now=_at(due - timedelta(days=29))) == 0
    assert revalidation.notify_due(people_db, now=_at(due)) == 1
    assert revalidation.notify_due(people_db, now=_at(due + timedelta(days=3))) == 0
    told = _inbox(people_db, "revalidation.due")
    assert sorted(u for u, _ in told) == sorted([p.dana.user_id, p.casey.user_id] * 2)
    late = revalidation.revalidation_overview(people_db, p.dana, today=due + timedelta(days=1))
    assert [(r.model, r.overdue) for r in late] == [(MEDIUM, True)]
    assert "overdue" in late[0].label
    fraud = users.create_team(people_db, p.ada, "fraud", "Card fraud")
    rex = users.create_user(people_db, p.ada, "rex@demo.quorum", "Rex Reviewer")
    users.grant_role(people_db, p.ada, rex.id or 0, Role.REVIEWER, fraud.id)
    rex_p = users.principal_by_email(people_db, "rex@demo.quorum")
    assert revalidation.revalidation_overview(people_db, rex_p, today=due) == []


def test_a_revalidation_is_a_round_with_its_own_decisions_and_signoffs(
    people_db: Database, people: People
) -> None:
    p = people
    number = _live_v1(people_db, p)
    compliance.sign(people_db, p.riley, MEDIUM, number, "validated", "Riley Reviewer")
    with pytest.raises(PermissionDenied):
        revalidation.start_revalidation(people_db, p.dana, MEDIUM, number, "annual")
    row = revalidation.start_revalidation(people_db, p.morgan, MEDIUM, number, "annual")
    assert row.review_round == 2 and row.prior_round == 1
    with pytest.raises(Conflict):
        revalidation.start_revalidation(people_db, p.casey, MEDIUM, number, "again")
    with people_db.read() as session:
        model = registry.model_row(session, MEDIUM)
        version = registry.get_version(session, model, number)
        assert deployments.production_blockers(session, model, version) == []
    queue = revalidation.open_revalidations(people_db, p.riley)
    assert [(r.model, r.open_round) for r in queue] == [(MEDIUM, 2)]
    with pytest.raises(InvalidInput, match="approved or rejected"):
        from core.services import reviews

        reviews.decide(people_db, p.riley, MEDIUM, number, "request_changes", "redo")
    compliance.sign(people_db, p.riley, MEDIUM, number, "validated", "Riley Reviewer")
    reviews.decide(people_db, p.riley, MEDIUM, number, "approve", "still sound")
    with pytest.raises(Conflict):
        reviews.decide(people_db, p.riley, MEDIUM, number, "approve", "twice")
    rounds = revalidation.revalidation_rounds(people_db, p.casey, MEDIUM, number)
    assert [(r.round, r.status) for r in rounds] == [(2, "passed")]
    assert [d[:2] for d in rounds[0].decisions] == [("Riley Reviewer", "approve")]
    assert [s[:2] for s in rounds[0].signoffs] == [("Riley Reviewer", "validated")]
    status = _due(people_db, p)
    assert status.validated_on == utcnow().date() and not status.failed
    assert revalidation.open_revalidations(people_db, p.riley) == []
    assert deployments.status(people_db, p.riley, MEDIUM)[PROD] == number


def test_a_failed_revalidation_keeps_it_live_flags_it_and_blocks_repromotion(
    people_db: Database, people: People
) -> None:
    p = people
    number = _live_v1(people_db, p)
    revalidation.start_revalidation(people_db, p.casey, MEDIUM, number, "annual")
    from core.services import reviews

    reviews.decide(people_db, p.morgan, MEDIUM, number, "reject", "Performance fell below goal")
    assert deployments.status(people_db, p.riley, MEDIUM)[PROD] == number
    with people_db.read() as session:
        version = session.exec(select(ModelVersion).where(ModelVersion.number == number)).first()
        assert version is not None and version.state == VersionState.APPROVED
        found = session.exec(select(Finding)).all()
        pack = revalidation.revalidation_for_pack(session, p.casey, version.id or 0)
    assert [(f.severity, f.owner_id, f.source) for f in found] == [
        ("high", p.dana.user_id, "revalidation")
    ]
    fid = found[0].id or 0
    overview = revalidation.revalidation_overview(people_db, p.dana)
    assert overview[0].failed and overview[0].finding_id == fid
    assert pack is not None and pack["failed"] and pack["rounds"][0]["status"] == "failed"
    told = {u for u, _ in _inbox(people_db, "revalidation.failed")}
    assert told == {p.dana.user_id, p.casey.user_id}

    v2 = approved(people_db, p, MEDIUM, 2)
    deployments.promote(people_db, p.riley, MEDIUM, v2, PROD, "replacement")
    with pytest.raises(InvalidInput) as refused:
        deployments.promote(people_db, p.riley, MEDIUM, number, PROD, "back again")
    assert any(f"finding #{fid}" in line for line in refused.value.details)
    with pytest.raises(InvalidInput, match=f"failed revalidation .* finding #{fid} is still open"):
        deployments.rollback(people_db, p.riley, MEDIUM, PROD, "v2 misbehaves")
    assert deployments.status(people_db, p.riley, MEDIUM)[PROD] == v2
    findings.answer_finding(people_db, p.dana, fid, "Retrained on recent data.")
    findings.close_finding(people_db, p.morgan, fid, "accepted")
    deployments.rollback(people_db, p.riley, MEDIUM, PROD, "finding closed, v2 misbehaves")
    assert deployments.status(people_db, p.riley, MEDIUM)[PROD] == number


def test_two_validators_starting_at_once_open_one_round(
    people_db: Database, people: People
) -> None:
    p = people
    number = _live_v1(people_db, p)
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def start(actor: object) -> None:
        barrier.wait()
        try:
            outcomes.append(
                revalidation.start_revalidation(people_db, actor, MEDIUM, number, "race")  # type: ignore[arg-type]
            )
        except QuorumError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=start, args=(a,)) for a in (p.morgan, p.casey)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, Revalidation) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1
    with people_db.read() as session:
        assert len(session.exec(select(Revalidation)).all()) == 1
        version = session.exec(select(ModelVersion).where(ModelVersion.number == number)).one()
        assert version.review_round == 2


def test_the_demo_shows_an_open_finding_and_an_overdue_revalidation(seeded_db: Database) -> None:
    casey = users.principal_by_email(seeded_db, "casey@demo.quorum")
    dana = users.principal_by_email(seeded_db, "dana@demo.quorum")
    overview = {r.model: r for r in revalidation.revalidation_overview(seeded_db, casey)}
    assert overview["bike-demand-forecaster"].overdue
    assert not overview["credit-default-scorer"].overdue
    owned = findings.my_findings(seeded_db, dana)
    assert [(f.model, f.status) for f in owned] == [("credit-default-scorer", "open")]
    told = {u for u, title in _inbox(seeded_db, "revalidation.due") if "bike" in title}
    assert told == {dana.user_id, casey.user_id}


def test_a_schema_2_policy_document_gains_the_blocking_severity_and_jobs_are_registered() -> None:
    from core import jobs, periodic

    older = policy.defaults("low").as_document()
    del older["blocking_finding_severity"]
    assert policy.from_document(older, 2, "low").blocking_finding_severity == "high"
    assert jobs.remind_overdue_findings and jobs.notify_revalidation_due
    every = {job.name: job.every for job in periodic.registered()}
    assert every["findings.remind_overdue"] == timedelta(hours=1)
    assert every["revalidation.notify_due"] == timedelta(hours=6)
