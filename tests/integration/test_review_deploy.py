"""Review and deployment rules on SQLite and PostgreSQL: separation of duties, reasons, the
approval policy, stale approvals, promotion, rollback, history, mentions and the queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import col, select

from core import audit_anchor, demo
from core.auth import SYSTEM, Principal
from core.config import get_settings
from core.db import Database
from core.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from core.models import (
    AuditEvent,
    Decision,
    Deployment,
    Evaluation,
    ModelVersion,
    Notification,
    PendingChange,
    Role,
    VersionState,
)
from core.services import changes, deployments, portfolio, registry, reviews, users, versions

PrincipalFactory = Callable[[Role | None], Principal]
MEDIUM = "toy-scorer"
HIGH = "credit-default-scorer"  # created by the people_db fixture, high risk, target "default"


def fit(seed: int, target: str) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(160, 3)), columns=["income", "debt", "age"])
    frame[target] = (frame["debt"] - frame["income"] + rng.normal(size=160) > 0).astype(int)
    features = frame[["income", "debt", "age"]]
    model = LogisticRegression(C=1.0 + seed).fit(features, frame[target])
    return sio.dumps(model), frame.to_csv(index=False).encode()


@dataclass
class People:
    dana: Principal  # data scientist, registers everything
    riley: Principal  # reviewer
    morgan: Principal  # reviewer
    casey: Principal  # compliance officer
    blake: Principal  # business stakeholder
    ada: Principal  # admin
    nobody: Principal


@pytest.fixture
def people(people_db: Database, principal: PrincipalFactory) -> People:
    dana = principal(Role.DATA_SCIENTIST)
    registry.create_model(
        people_db,
        dana,
        registry.ModelSpec(
            name=MEDIUM, team=demo.DEMO_TEAM, task="binary_classification", target="y"
        ),
    )
    return People(
        dana=dana,
        riley=principal(Role.REVIEWER),
        morgan=users.principal_by_email(people_db, "morgan@demo.quorum"),
        casey=principal(Role.COMPLIANCE),
        blake=principal(Role.BUSINESS),
        ada=principal(Role.ADMIN),
        nobody=principal(None),
    )


def register(db: Database, actor: Principal, model: str = MEDIUM, seed: int = 0) -> ModelVersion:
    target = "default" if model == HIGH else "y"
    model_bytes, eval_bytes = fit(seed, target)
    upload = versions.VersionUpload(
        model=model,
        model_file=model_bytes,
        model_filename="model.skops",
        eval_file=eval_bytes,
        eval_filename="evaluation.csv",
    )
    return versions.register_version(db, actor, upload)


def approved(db: Database, p: People, model: str = MEDIUM, seed: int = 0) -> int:
    """Register, submit and approve a version under its policy; returns its number."""
    number = register(db, p.dana, model, seed).number
    reviews.submit_for_review(db, p.dana, model, number)
    reviews.decide(db, p.riley, model, number, "approve", "looks right")
    if model == HIGH:
        reviews.decide(db, p.casey, model, number, "approve", "documentation complete")
    return number


def state_of(db: Database, model: str, number: int) -> str:
    with db.read() as session:
        return registry.get_version(session, registry.model_row(session, model), number).state


def live_rows(db: Database, model: str, env: str) -> list[Deployment]:
    with db.read() as session:
        model_id = registry.model_row(session, model).id
        return list(
            session.exec(
                select(Deployment).where(
                    Deployment.model_id == model_id,
                    Deployment.environment == env,
                    col(Deployment.live_until).is_(None),
                )
            )
        )


def decisions(db: Database) -> list[Decision]:
    with db.read() as session:
        return list(session.exec(select(Decision)))


# --- separation of duties and reasons ---------------------------------------------------------


def test_a_reviewer_who_registered_a_version_cannot_decide_on_it(
    people_db: Database, people: People
) -> None:
    users.grant_role(people_db, people.ada, people.dana.user_id, Role.REVIEWER)
    dana = users.principal_by_email(people_db, "dana@demo.quorum")
    assert Role.REVIEWER in dana.all_roles()
    register(people_db, dana)
    reviews.submit_for_review(people_db, dana, MEDIUM, 1)
    assert all(item.model != MEDIUM for item in reviews.review_queue(people_db, dana))

    for kind in ("approve", "request_changes", "reject"):
        with pytest.raises(InvalidInput) as refused:
            reviews.decide(people_db, dana, MEDIUM, 1, kind, "my own work is fine")
        assert "separation of duties" in refused.value.user_message
    assert decisions(people_db) == []
    assert state_of(people_db, MEDIUM, 1) == VersionState.IN_REVIEW

    reviews.decide(people_db, people.riley, MEDIUM, 1, "approve")
    assert state_of(people_db, MEDIUM, 1) == VersionState.APPROVED


@pytest.mark.parametrize("kind", ["request_changes", "reject"])
def test_request_changes_and_reject_need_a_reason(
    people_db: Database, people: People, kind: str
) -> None:
    register(people_db, people.dana)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, 1)
    for reason in ("", "   "):
        with pytest.raises(InvalidInput) as refused:
            reviews.decide(people_db, people.riley, MEDIUM, 1, kind, reason)
        assert "reason" in refused.value.user_message
    assert decisions(people_db) == []
    assert state_of(people_db, MEDIUM, 1) == VersionState.IN_REVIEW

    reviews.decide(people_db, people.riley, MEDIUM, 1, kind, "Calibration is off on segment B.")
    expected = {"reject": VersionState.REJECTED, "request_changes": VersionState.CHANGES_REQUESTED}
    assert state_of(people_db, MEDIUM, 1) == expected[kind]
    inbox = portfolio.inbox(people_db, people.dana)
    assert any("segment B" in n.body for n in inbox), "the registrant hears why"


def test_decision_on_a_version_not_in_review_is_an_invalid_transition(
    people_db: Database, people: People
) -> None:
    register(people_db, people.dana)
    with pytest.raises(InvalidTransition) as refused:
        reviews.decide(people_db, people.riley, MEDIUM, 1, "approve")
    assert "registered" in refused.value.user_message
    with pytest.raises(InvalidInput):
        reviews.decide(people_db, people.riley, MEDIUM, 1, "maybe", "?")


# --- approval policy ---------------------------------------------------------------------------


def test_high_risk_needs_a_reviewer_and_a_compliance_officer(
    people_db: Database, people: People
) -> None:
    register(people_db, people.dana, HIGH)
    reviews.submit_for_review(people_db, people.dana, HIGH, 1)
    reviews.decide(people_db, people.riley, HIGH, 1, "approve")
    reviews.decide(people_db, people.morgan, HIGH, 1, "approve")
    assert state_of(people_db, HIGH, 1) == VersionState.IN_REVIEW, "two reviewers are not enough"

    blockers = deployments.readiness(people_db, SYSTEM, HIGH, 1)
    assert any("compliance officer" in b for b in blockers)
    with pytest.raises(InvalidTransition) as refused:
        deployments.promote(people_db, people.riley, HIGH, 1, "production")
    assert "in review" in refused.value.user_message
    assert live_rows(people_db, HIGH, "production") == []

    reviews.decide(people_db, people.casey, HIGH, 1, "approve")
    assert state_of(people_db, HIGH, 1) == VersionState.APPROVED
    assert deployments.readiness(people_db, SYSTEM, HIGH, 1) == []
    deployments.promote(people_db, people.riley, HIGH, 1, "production")
    assert deployments.status(people_db, SYSTEM, HIGH)["production"] == 1


def test_an_approval_stops_counting_when_the_evaluation_or_artifact_changes(
    people_db: Database, people: People
) -> None:
    number = approved(people_db, people)
    assert deployments.readiness(people_db, SYSTEM, MEDIUM, number) == []

    with people_db.write() as session:
        ev = session.exec(select(Evaluation)).one()
        ev.dataset_sha256 = "0" * 64
        session.add(ev)
    with people_db.read() as session:
        model = registry.model_row(session, MEDIUM)
        status = reviews.policy_status(session, model, registry.get_version(session, model, 1))
    assert status.counted == [] and status.stale == ["Riley Reviewer"]
    assert not status.satisfied
    with pytest.raises(InvalidInput) as refused:
        deployments.promote(people_db, people.riley, MEDIUM, number, "production")
    assert any("files changed" in d for d in refused.value.details)

    with people_db.write() as session:
        ev = session.exec(select(Evaluation)).one()
        version = session.exec(select(ModelVersion)).one()
        ev.dataset_sha256 = (
            session.exec(select(Decision)).one().evaluation_sha256
        )  # evaluation restored ...
        version.artifact_sha256 = "f" * 64  # ... but now the artifact differs
        session.add_all([ev, version])
    assert any(
        "files changed" in b for b in deployments.readiness(people_db, SYSTEM, MEDIUM, number)
    )


def test_update_policy_validation_and_permission(people_db: Database, people: People) -> None:
    def update(actor: Principal, tier: str = "medium", n: int = 2, roles=None, rv: int = 0):
        return reviews.update_policy(
            people_db,
            actor,
            tier,
            min_approvals=n,
            required_roles=["reviewer"] if roles is None else roles,
            row_version=rv,
        )

    refusals = {
        "'extreme' is not a risk tier": lambda: update(people.ada, tier="extreme"),
        "between 1 and 10": lambda: update(people.ada, n=0),
        "between 1 and 10 ": lambda: update(people.ada, n=11),
        "Roles that must be among the approvers: wizard is not one of": lambda: update(
            people.ada, roles=["wizard"]
        ),
        "raise the number of approvals": lambda: update(
            people.ada, n=1, roles=["reviewer", "compliance_officer"]
        ),
    }
    for expected, call in refusals.items():
        with pytest.raises(InvalidInput) as refused:
            call()
        assert expected.strip() in refused.value.user_message
    for actor in (people.riley, people.dana, people.casey, people.nobody):
        with pytest.raises(PermissionDenied):
            update(actor)
    with people_db.read() as session:
        denials = session.exec(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).all()
    assert len(denials) == 4

    proposal = update(people.ada)
    assert isinstance(proposal, PendingChange), "a policy change waits for a second admin"
    with people_db.read() as session:
        assert reviews.policy_for(session, "medium").min_approvals == 1
    with pytest.raises(InvalidInput, match="another admin must confirm"):
        changes.confirm(people_db, people.ada, proposal.id or 0)
    second = users.create_user(people_db, people.ada, "root@demo.quorum", "Root Second")
    users.grant_role(people_db, people.ada, second.id or 0, Role.ADMIN)
    changes.confirm(
        people_db, users.principal_by_email(people_db, "root@demo.quorum"), proposal.id or 0
    )
    with people_db.read() as session:
        policy = reviews.policy_for(session, "medium")
    assert (policy.min_approvals, policy.required_roles, policy.row_version) == (2, ["reviewer"], 1)
    with pytest.raises(Conflict):
        update(people.ada, n=3, rv=0)

    register(people_db, people.dana)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, 1)
    reviews.decide(people_db, people.riley, MEDIUM, 1, "approve")
    assert state_of(people_db, MEDIUM, 1) == VersionState.IN_REVIEW, "now two are needed"
    reviews.decide(people_db, people.morgan, MEDIUM, 1, "approve")
    assert state_of(people_db, MEDIUM, 1) == VersionState.APPROVED


# --- promotion and rollback -------------------------------------------------------------------


def test_production_refused_under_quorum_with_missing_items(
    people_db: Database, people: People
) -> None:
    register(people_db, people.dana)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, 1)
    assert any("0 of 1 approvals" in b for b in deployments.readiness(people_db, SYSTEM, MEDIUM, 1))
    with pytest.raises(InvalidTransition, match="in review"):
        deployments.promote(people_db, people.riley, MEDIUM, 1, "production")
    with pytest.raises(InvalidTransition):
        deployments.promote(people_db, people.riley, MEDIUM, 1, "staging")
    with pytest.raises(InvalidInput):
        deployments.promote(people_db, people.riley, MEDIUM, 1, "moon")
    assert deployments.status(people_db, SYSTEM, MEDIUM) == {"staging": None, "production": None}


def test_one_live_version_per_model_and_environment(people_db: Database, people: People) -> None:
    first, second = approved(people_db, people, seed=0), approved(people_db, people, seed=1)
    deployments.promote(people_db, people.riley, MEDIUM, first, "production")
    deployments.promote(people_db, people.riley, MEDIUM, first, "staging")
    deployments.promote(people_db, people.riley, MEDIUM, second, "production", "better recall")
    with pytest.raises(Conflict):
        deployments.promote(people_db, people.riley, MEDIUM, second, "production")

    (live,) = live_rows(people_db, MEDIUM, "production")
    assert len(live_rows(people_db, MEDIUM, "staging")) == 1
    assert deployments.status(people_db, SYSTEM, MEDIUM) == {"staging": first, "production": second}
    with people_db.read() as session:
        replaced = session.exec(
            select(Deployment).where(
                Deployment.environment == "production", col(Deployment.live_until).is_not(None)
            )
        ).one()
    assert replaced.replaced_by_id == live.id
    assert replaced.live_until is not None and replaced.live_until <= live.live_from.replace(
        tzinfo=replaced.live_until.tzinfo
    )
    rows = deployments.history(people_db, SYSTEM, MEDIUM, "production")
    assert [(r.version, r.action) for r in rows] == [(second, "promote"), (first, "promote")]
    assert rows[0].reason == "better recall"


def test_rollback_goes_back_and_a_second_rollback_does_not_bounce(
    people_db: Database, people: People
) -> None:
    numbers = [approved(people_db, people, seed=s) for s in (0, 1, 2)]
    for n in numbers:
        deployments.promote(people_db, people.riley, MEDIUM, n, "production")
    with pytest.raises(InvalidInput):
        deployments.rollback(people_db, people.riley, MEDIUM, "production", "")

    deployments.rollback(people_db, people.riley, MEDIUM, "production", "v3 misbehaves")
    assert deployments.status(people_db, SYSTEM, MEDIUM)["production"] == 2
    deployments.rollback(people_db, people.riley, MEDIUM, "production", "v2 misbehaves too")
    assert deployments.status(people_db, SYSTEM, MEDIUM)["production"] == 1, "not back to v3"
    with pytest.raises(InvalidInput) as nothing:
        deployments.rollback(people_db, people.riley, MEDIUM, "production", "again")
    assert "no earlier version" in nothing.value.user_message
    assert len(live_rows(people_db, MEDIUM, "production")) == 1
    with pytest.raises(InvalidInput):
        deployments.rollback(people_db, people.riley, MEDIUM, "staging", "nothing live")
    actions = [r.action for r in deployments.history(people_db, SYSTEM, MEDIUM, "production")]
    assert actions == ["rollback", "rollback", "promote", "promote", "promote"]
    with people_db.read() as session:
        assert audit_anchor.verify(session, get_settings()).intact


def test_rollback_target_names_the_version_a_rollback_restores(
    people_db: Database, people: People
) -> None:
    numbers = [approved(people_db, people, seed=s) for s in (0, 1, 2)]
    assert deployments.rollback_target(people_db, SYSTEM, MEDIUM, "production") is None, (
        "nothing live"
    )
    deployments.promote(people_db, people.riley, MEDIUM, numbers[0], "production")
    assert deployments.rollback_target(people_db, SYSTEM, MEDIUM, "production") is None, (
        "nothing earlier"
    )
    for n in numbers[1:]:
        deployments.promote(people_db, people.riley, MEDIUM, n, "production")
    deployments.promote(people_db, people.riley, MEDIUM, numbers[2], "staging")
    assert deployments.rollback_target(people_db, SYSTEM, MEDIUM, "production") == numbers[1]
    assert deployments.rollback_target(people_db, SYSTEM, MEDIUM, "staging") is None
    for expected in (numbers[1], numbers[0]):
        target = deployments.rollback_target(people_db, SYSTEM, MEDIUM, "production")
        deployments.rollback(people_db, people.riley, MEDIUM, "production", "worse at night")
        assert target == expected == deployments.status(people_db, SYSTEM, MEDIUM)["production"]
    assert deployments.rollback_target(people_db, SYSTEM, MEDIUM, "production") is None
    with pytest.raises(InvalidInput):
        deployments.rollback_target(people_db, SYSTEM, MEDIUM, "moon")


def test_live_at_answers_what_was_live_on_a_date(people_db: Database, people: People) -> None:
    for seed in (0, 1, 2):
        register(people_db, people.dana, seed=seed)
    jan, feb, mar = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    with people_db.write() as session:
        model = registry.model_row(session, MEDIUM)
        ids = [v.id for v in sorted(registry.versions_of(session, model.id or 0), key=_number)]
        periods = [(ids[0], jan, feb), (ids[1], feb, mar), (ids[2], mar, None)]
        for version_id, start, end in periods:
            session.add(
                Deployment(
                    model_id=model.id or 0,
                    version_id=version_id or 0,
                    environment="production",
                    action="promote",
                    actor_id=people.riley.user_id,
                    live_from=start,
                    live_until=end,
                )
            )

    def at(when: datetime, env: str = "production") -> int | None:
        return deployments.live_at(people_db, SYSTEM, MEDIUM, env, when)

    assert at(jan - timedelta(days=1)) is None
    assert at(jan) == 1
    assert at(datetime(2024, 1, 15, 12, tzinfo=UTC)) == 1
    assert at(feb - timedelta(seconds=1)) == 1
    assert at(feb) == 2
    assert at(datetime(2024, 2, 20, tzinfo=UTC)) == 2
    assert at(mar) == 3
    assert at(datetime.now(UTC)) == 3
    assert at(datetime(2024, 2, 20, tzinfo=UTC), "staging") is None


def _number(version: ModelVersion) -> int:
    return version.number


# --- discussion and the queue ------------------------------------------------------------------


def test_mentions_land_in_the_mentioned_inbox(people_db: Database, people: People) -> None:
    register(people_db, people.dana)
    body = "<b>Recall</b> on segment B? @dana and @casey@demo.quorum, also @riley and @ghost"
    comment = reviews.add_comment(
        people_db, people.riley, MEDIUM, 1, body, anchor="metric: recall (segment B)"
    )
    assert comment.body == body, "stored as the plain text typed"

    def mentions(p: Principal) -> list[Notification]:
        return [n for n in portfolio.inbox(people_db, p) if n.kind == "mention"]

    (for_dana,) = mentions(people.dana)
    assert "Riley Reviewer mentioned you" in for_dana.title and "segment B" in for_dana.body
    assert len(mentions(people.casey)) == 1
    assert mentions(people.riley) == [], "no notification for mentioning yourself"
    assert mentions(people.morgan) == [] and mentions(people.blake) == []

    reply = reviews.add_comment(
        people_db, people.dana, MEDIUM, 1, "Added the slice.", parent_id=comment.id
    )
    thread = reviews.comments_of(people_db, SYSTEM, MEDIUM, 1)
    assert [(c.author, c.comment.anchor) for c in thread] == [
        ("Riley Reviewer", "metric: recall (segment B)"),
        ("Dana Scientist", ""),
    ]
    assert thread[1].comment.parent_id == comment.id == reply.parent_id
    with pytest.raises(InvalidInput):
        reviews.add_comment(people_db, people.riley, MEDIUM, 1, "   ")


def test_review_queue_contents_per_role(people_db: Database, people: People) -> None:
    register(people_db, people.dana, seed=0)
    register(people_db, people.dana, seed=1)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, 1)

    def queue(p: Principal) -> list[tuple[str, int]]:
        return [(i.model, i.number) for i in reviews.review_queue(people_db, p)]

    assert queue(people.riley) == [(MEDIUM, 1)]
    assert queue(people.morgan) == [(MEDIUM, 1)]
    assert queue(people.casey) == [(MEDIUM, 1)], "compliance officers may decide too"
    assert queue(people.ada) == [(MEDIUM, 1)]
    assert queue(people.dana) == [] and queue(people.blake) == [] and queue(people.nobody) == []
    (item,) = reviews.review_queue(people_db, people.riley)
    assert item.registered_by == "Dana Scientist"
    assert item.status[0].startswith("0 of 1 approvals")
    requests = [n for n in portfolio.inbox(people_db, people.riley) if n.version_id]
    assert [n.kind for n in requests] == ["review_requested"]

    reviews.decide(people_db, people.casey, MEDIUM, 1, "request_changes", "Add a slice table.")
    assert queue(people.riley) == [] and queue(people.casey) == []
    assert portfolio.inbox(people_db, people.riley) == [], "a finished review leaves the inbox"
    reviews.submit_for_review(people_db, people.dana, MEDIUM, 1, note="slice table added")
    assert queue(people.casey) == [(MEDIUM, 1)], "a new round asks everyone again"
