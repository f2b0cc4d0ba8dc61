"""Service accounts in core: one role in one team, refused what only a person may do whatever
role they hold, named (with their token) in every audit event, revocable at once."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core import audit_anchor
from core.auth import PERSON_ONLY, Permission, Principal, require
from core.config import get_settings
from core.db import Database
from core.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from core.models import AuditEvent, Role
from core.services import registry, users

TEAM = "risk-analytics"


def _admin(db: Database) -> Principal:
    return users.principal_by_email(db, "ada@demo.quorum")


def test_a_service_account_acts_within_its_role_and_is_named_with_its_token(
    people_db: Database,
) -> None:
    new = users.create_service_account(
        people_db, _admin(people_db), "ci-train", TEAM, "data_scientist"
    )
    bearer = users.authenticate_bearer(people_db, new.secret)
    assert bearer.kind == "service" and bearer.token_name == "ci-train"
    ci = bearer.principal
    spec = registry.ModelSpec(name="ci-made", team=TEAM, task="regression")
    registry.create_model(people_db, ci, spec)
    with people_db.read() as session:
        (event,) = session.exec(select(AuditEvent).where(AuditEvent.actor_id == ci.user_id))
    assert event.actor_label == (
        f"service account ci-train <ci-train@{users.SERVICE_DOMAIN}> via token 'ci-train'"
    )
    assert event.actor_id == ci.user_id


@pytest.mark.parametrize("permission", sorted(PERSON_ONLY, key=str))
def test_person_only_permissions_are_refused_even_to_an_admin_grant(
    people_db: Database, permission: Permission
) -> None:
    new = users.create_service_account(people_db, _admin(people_db), "ci-any", TEAM, "reviewer")
    ci = users.authenticate_token(people_db, new.secret)
    users.grant_role(people_db, _admin(people_db), ci.user_id, Role.ADMIN)
    with people_db.read() as session, pytest.raises(PermissionDenied) as refused:
        require(session, ci, permission, what="here")
    assert "service account cannot" in refused.value.user_message


def test_only_machine_roles_and_a_bounded_expiry(people_db: Database) -> None:
    admin = _admin(people_db)
    for role in ("admin", "compliance_officer", "business_stakeholder"):
        with pytest.raises(InvalidInput):
            users.create_service_account(people_db, admin, "ci-x", TEAM, role)
    with pytest.raises(InvalidInput):
        users.create_service_account(people_db, admin, "ci-x", TEAM, "reviewer", days=0)
    with pytest.raises(InvalidInput):
        users.create_service_account(people_db, admin, "../x", TEAM, "reviewer")


def test_revoking_stops_the_token_at_once_and_it_cannot_sign_in(people_db: Database) -> None:
    admin = _admin(people_db)
    new = users.create_service_account(people_db, admin, "ci-gone", TEAM, "data_scientist")
    assert [a.name for a in users.list_service_accounts(people_db, admin)] == ["ci-gone"]
    users.revoke_service_account(people_db, admin, new.account.id)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)
    assert users.list_service_accounts(people_db, admin)[0].active is False
    claims = {"sub": "x", "email": f"ci-gone@{users.SERVICE_DOMAIN}", "name": "x"}
    with pytest.raises(AuthenticationFailed):
        users.sign_in_from_claims(people_db, claims)
    with people_db.read() as session:
        assert audit_anchor.verify(session, get_settings()).intact
