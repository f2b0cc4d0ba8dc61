"""Every path to live goes through the gate; sign-offs follow the approval policy; the policy is
versioned, and what changed in it is in the trail and the pack."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlmodel import col, select

from core import demo, policy, reports
from core.auth import SYSTEM, Principal
from core.db import Database
from core.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from core.models import (
    ApprovalPolicyVersion,
    AuditEvent,
    Decision,
    Deployment,
    PendingChange,
    Role,
    Signoff,
    User,
    utcnow,
)
from core.packdata import PolicyChange
from core.services import changes, compliance, deployments, registry, reviews, users, versions
from core.services.compliance.pack import assemble_pack

MEDIUM = "gate-scorer"
HIGH = "credit-default-scorer"  # high risk, from the people_db fixture


@dataclass
class People:
    dana: Principal
    riley: Principal
    morgan: Principal
    casey: Principal
    blake: Principal
    ada: Principal


@pytest.fixture
def people(people_db: Database) -> People:
    who = {
        n: users.principal_by_email(people_db, f"{n}@demo.quorum")
        for n in ("dana", "riley", "morgan", "casey", "blake", "ada")
    }
    spec = registry.ModelSpec(
        name=MEDIUM, team=demo.DEMO_TEAM, task="binary_classification", target="default"
    )
    registry.create_model(people_db, who["dana"], spec)
    return People(**who)


def register(db: Database, actor: Principal, model: str, seed: int) -> int:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(120, 2)), columns=["income", "debt"])
    frame["default"] = (frame["debt"] > frame["income"]).astype(int)
    estimator = LogisticRegression(C=1.0 + seed).fit(frame[["income", "debt"]], frame["default"])
    upload = versions.VersionUpload(
        model=model,
        model_file=sio.dumps(estimator),
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="evaluation.csv",
    )
    return versions.register_version(db, actor, upload).number


def approved(db: Database, p: People, model: str, seed: int) -> int:
    number = register(db, p.dana, model, seed)
    reviews.submit_for_review(db, p.dana, model, number)
    reviews.decide(db, p.riley, model, number, "approve", "fine")
    if model == HIGH:
        reviews.decide(db, p.casey, model, number, "approve", "documented")
    return number


def second_admin(db: Database, p: People) -> Principal:
    with db.read() as session:
        known = session.exec(select(User).where(User.email == "root@demo.quorum")).first()
    if known is None:
        root = users.create_user(db, p.ada, "root@demo.quorum", "Root Second")
        users.grant_role(db, p.ada, root.id or 0, Role.ADMIN)
    return users.principal_by_email(db, "root@demo.quorum")


def set_policy(db: Database, p: People, tier: str, **values: Any) -> reviews.PolicyInForce:
    """Ada proposes, a second admin confirms: how a person changes a policy."""
    with db.read() as session:
        current = reviews.policy_for(session, tier)
    proposal = reviews.update_policy(
        db, p.ada, tier, row_version=current.version, reason="test", **values
    )
    assert isinstance(proposal, PendingChange)
    changes.confirm(db, second_admin(db, p), proposal.id or 0)
    with db.read() as session:
        return reviews.policy_for(session, tier)


def live(db: Database, model: str, env: str) -> int | None:
    return deployments.status(db, SYSTEM, model)[env]


def deployment_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as session:
        rows = session.exec(select(Deployment).order_by(col(Deployment.id))).all()
        return [(d.id, d.version_id, d.environment, d.live_until) for d in rows]


def set_state(db: Database, model: str, number: int, state: str) -> None:
    """What an insider with write access to the store would do."""
    with db.write() as session:
        version = registry.get_version(session, registry.model_row(session, model), number)
        version.state = state
        session.add(version)


# --- rollback and promotion ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["archived", "rejected"])
def test_rollback_never_restores_an_archived_or_rejected_version(
    people_db: Database, people: People, state: str
) -> None:
    first = approved(people_db, people, MEDIUM, 0)
    second = approved(people_db, people, MEDIUM, 1)
    deployments.promote(people_db, people.riley, MEDIUM, first, "staging")
    deployments.promote(people_db, people.riley, MEDIUM, second, "staging")
    if state == "archived":
        registry.archive_version(people_db, people.dana, MEDIUM, first, "Superseded by v2.")
    else:
        set_state(people_db, MEDIUM, first, state)
    before = deployment_rows(people_db)
    with pytest.raises(InvalidTransition) as refused:
        deployments.rollback(people_db, people.riley, MEDIUM, "staging", "v2 misbehaves")
    assert f"v{first}: it is {state}" in refused.value.user_message
    assert "never go live again" in refused.value.user_message
    assert deployment_rows(people_db) == before
    assert live(people_db, MEDIUM, "staging") == second


def test_rollback_succeeds_after_the_restored_versions_signoff_expired(
    people_db: Database, people: People
) -> None:
    set_policy(people_db, people, "high", required_signoffs=["validated"])
    first = approved(people_db, people, HIGH, 0)
    signature = compliance.sign(people_db, people.riley, HIGH, first, "validated", "Riley Reviewer")
    deployments.promote(people_db, people.riley, HIGH, first, "production", "release")
    second = approved(people_db, people, HIGH, 1)
    compliance.sign(people_db, people.riley, HIGH, second, "validated", "Riley Reviewer")
    deployments.promote(people_db, people.riley, HIGH, second, "production", "better recall")
    with people_db.write() as session:  # the first version's sign-off has expired since
        row = session.get(Signoff, signature.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(days=1)
        session.add(row)
    blockers = deployments.readiness(people_db, SYSTEM, HIGH, first)
    assert any("sign-off 'validated' missing" in b for b in blockers), "promotion would fail"
    with pytest.raises(InvalidInput, match="cannot go to production"):
        deployments.promote(people_db, people.riley, HIGH, first, "production")

    restored = deployments.rollback(people_db, people.riley, HIGH, "production", "incident 42")
    assert live(people_db, HIGH, "production") == first
    assert restored.gate["passed"] is True and restored.gate["basis"] == "rollback"
    with people_db.read() as session:
        original = session.get(Deployment, restored.gate["restored_from_deployment"])
    assert original is not None and original.gate["basis"] == "promotion"
    assert restored.gate["policy_version"] == original.gate["policy_version"] == 1


def test_promotion_checks_state_first_and_records_the_gate_it_passed(
    people_db: Database, people: People
) -> None:
    number = register(people_db, people.dana, MEDIUM, 0)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, number)
    with pytest.raises(InvalidTransition, match="in review"):
        deployments.promote(people_db, people.riley, MEDIUM, number, "production")
    reviews.decide(people_db, people.riley, MEDIUM, number, "approve")
    judged = set_policy(people_db, people, "medium", staging_first=True)
    with pytest.raises(InvalidInput) as refused:
        deployments.promote(people_db, people.riley, MEDIUM, number, "production")
    assert any("live in staging before production" in d for d in refused.value.details)
    deployments.promote(people_db, people.riley, MEDIUM, number, "staging")
    done = deployments.promote(people_db, people.riley, MEDIUM, number, "production")
    assert done.gate["passed"] is True
    assert done.gate["policy_version"] == judged.version == 1
    assert done.gate["policy_version_id"] == judged.version_id
    assert done.gate["artifact_sha256"]


# --- sign-offs under the policy -------------------------------------------------------------


def test_who_may_sign_follows_the_policy_and_never_the_registrant(
    people_db: Database, people: People
) -> None:
    number = approved(people_db, people, MEDIUM, 0)
    with pytest.raises(PermissionDenied, match="only a reviewer"):
        compliance.sign(people_db, people.blake, MEDIUM, number, "validated", "Blake Business")
    with pytest.raises(PermissionDenied):
        compliance.sign(people_db, people.casey, MEDIUM, number, "validated", "Casey Compliance")
    signed = compliance.sign(people_db, people.riley, MEDIUM, number, "validated", "Riley Reviewer")
    assert signed.role == "reviewer" and signed.policy_version_id is None  # built-in defaults
    accepted = compliance.sign(
        people_db, people.blake, MEDIUM, number, "business accepted", "Blake Business"
    )
    assert accepted.role == "business_stakeholder"

    # the registrant may not sign their own version, even holding a role that may sign
    with people_db.read() as session:
        team = users.team_by_name(session, demo.DEMO_TEAM)
    users.grant_role(people_db, people.ada, people.dana.user_id, Role.REVIEWER, team.id)
    with pytest.raises(InvalidInput, match="separation of duties"):
        compliance.sign(people_db, people.dana, MEDIUM, number, "validated", "Dana Scientist")

    judged = set_policy(
        people_db,
        people,
        "medium",
        signoff_roles={"validated": ["reviewer", "compliance_officer"]},
    )
    casey = compliance.sign(
        people_db, people.casey, MEDIUM, number, "validated", "Casey Compliance"
    )
    assert casey.policy_version_id == judged.version_id
    with people_db.read() as session:
        refusals = session.exec(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).all()
        signatures = session.exec(select(Signoff)).all()
    assert len(refusals) == 2 and all("sign 'validated'" in e.summary for e in refusals)
    assert {s.printed_name for s in signatures} == {
        "Riley Reviewer",
        "Blake Business",
        "Casey Compliance",
    }


# --- the policy is versioned ----------------------------------------------------------------


def test_a_policy_change_is_a_new_version_with_every_field_before_and_after(
    people_db: Database, people: People
) -> None:
    first = set_policy(people_db, people, "medium", min_approvals=2)
    with people_db.read() as session:
        saved_first = session.get(ApprovalPolicyVersion, first.version_id)
        assert saved_first is not None
        first_fields = dict(saved_first.fields)
    number = register(people_db, people.dana, MEDIUM, 0)
    reviews.submit_for_review(people_db, people.dana, MEDIUM, number)
    reviews.decide(people_db, people.riley, MEDIUM, number, "approve")
    second = set_policy(
        people_db, people, "medium", required_signoffs=["validated"], revalidation_months=6
    )
    assert (first.version, second.version) == (1, 2)
    with people_db.read() as session:
        rows = session.exec(
            select(ApprovalPolicyVersion).order_by(col(ApprovalPolicyVersion.version))
        ).all()
        (decision,) = session.exec(select(Decision)).all()
        events = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "policy.updated")
            .order_by(col(AuditEvent.seq))
        ).all()
    assert [r.version for r in rows] == [1, 2]
    assert rows[0].fields == first_fields, "an older version is never edited"
    assert decision.policy_version_id == first.version_id
    latest = events[-1].details
    assert set(latest["before"]) == set(latest["after"]) == set(policy.FIELD_NAMES)
    assert latest["before"]["required_signoffs"] == []
    assert latest["after"]["required_signoffs"] == ["validated"]
    assert latest["changed"] == {
        "required_signoffs": {"before": [], "after": ["validated"]},
        "revalidation_months": {"before": 24, "after": 6},
    }
    assert (latest["from_version"], latest["to_version"]) == (1, 2)

    with pytest.raises(InvalidInput, match="Unknown policy field"):
        set_policy(people_db, people, "medium", approvals_please=3)
    with pytest.raises(InvalidInput, match="between 1 and 10"):
        set_policy(people_db, people, "medium", min_approvals=0)
    with people_db.read() as session:
        assert len(session.exec(select(ApprovalPolicyVersion)).all()) == 2


def test_the_pack_shows_the_policy_at_each_decision_and_every_change(
    people_db: Database, people: People
) -> None:
    set_policy(people_db, people, "medium", revalidation_months=36)
    number = approved(people_db, people, MEDIUM, 0)
    set_policy(people_db, people, "medium", required_signoffs=["business accepted"])
    pack = assemble_pack(people_db, people.casey, MEDIUM, number)
    assert [d.policy for d in pack.decisions] == ["medium-risk policy v1"]
    assert pack.policy.in_force == "medium-risk policy v2"
    changes = {h.version: h.changes for h in pack.policy.history}
    assert changes[2] == [
        PolicyChange("Sign-offs required before production", "none", "business accepted")
    ]
    html = reports.render_html(pack)
    assert "Approval policy" in html and "medium-risk policy v1" in html
    assert "business accepted" in html


def test_documents_of_an_older_schema_are_upgraded() -> None:
    old = {"min_approvals": 2, "required_roles": ["reviewer"], "required_checklists": [],
           "required_signoffs": ["validated"]}  # fmt: skip
    fields = policy.from_document(old, 1, "high")
    assert fields.min_approvals == 2 and fields.required_signoffs == ["validated"]
    assert fields.signoff_roles["validated"] == ["reviewer"]
    assert (fields.staging_first, fields.revalidation_months) == (False, 12)


# --- four eyes on power ---------------------------------------------------------------------


def test_policy_change_self_grant_and_lower_risk_wait_for_a_second_admin(
    people_db: Database, people: People
) -> None:
    root = second_admin(people_db, people)
    with people_db.read() as session:
        team = users.team_by_name(session, demo.DEMO_TEAM)
        model = registry.model_row(session, HIGH)

    policy_change = reviews.update_policy(
        people_db, people.ada, "high", row_version=0, reason="stricter", min_approvals=3
    )
    self_grant = users.grant_role(people_db, people.ada, people.ada.user_id, Role.REVIEWER, team.id)
    lower = registry.set_risk_tier(
        people_db, people.dana, HIGH, "low", "pilot only", row_version=model.row_version
    )
    assert all(isinstance(c, PendingChange) for c in (policy_change, self_grant, lower))
    with people_db.read() as session:  # nothing took effect yet
        assert reviews.policy_for(session, "high").version == 0
        assert registry.model_row(session, HIGH).risk_tier == "high"
        assert all(g.role != Role.REVIEWER for g in users.grants_of(session, people.ada.user_id))

    for change in (policy_change, self_grant):
        with pytest.raises(InvalidInput, match="another admin must confirm"):
            changes.confirm(people_db, people.ada, change.id or 0)
    with pytest.raises(PermissionDenied):  # a data scientist is no admin
        changes.confirm(people_db, people.dana, lower.id or 0)

    for change in (policy_change, self_grant, lower):
        changes.confirm(people_db, root, change.id or 0)
    with people_db.read() as session:
        in_force = reviews.policy_for(session, "high")
        assert (in_force.version, in_force.min_approvals) == (1, 3)
        assert in_force.confirmed_by_id == root.user_id
        assert registry.model_row(session, HIGH).risk_tier == "low"
        assert any(g.role == Role.REVIEWER for g in users.grants_of(session, people.ada.user_id))
        actions = [
            e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        ]
    assert actions.count("change.proposed") == 3 and actions.count("change.confirmed") == 3
    with pytest.raises(Conflict):  # decided once
        changes.confirm(people_db, root, lower.id or 0)

    raise_back = registry.set_risk_tier(
        people_db, people.dana, HIGH, "high", "back to normal", row_version=model.row_version + 1
    )
    assert not isinstance(raise_back, PendingChange), "a higher tier takes effect at once"
    refused = reviews.update_policy(
        people_db, people.ada, "high", row_version=1, reason="lighter", min_approvals=1,
        required_roles=["reviewer"],
    )  # fmt: skip
    changes.refuse(people_db, root, refused.id or 0, "Too light for credit models.")
    with people_db.read() as session:
        assert reviews.policy_for(session, "high").version == 1
