"""People: first sign-in, roles from the identity provider, personal access tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core import config
from core.auth import Principal
from core.db import Database
from core.errors import AuthenticationFailed, Conflict, InvalidInput, PermissionDenied
from core.models import AccessToken, AuditEvent, Role, RoleGrant, User, utcnow
from core.services import users

PrincipalFactory = Callable[[Role | None], Principal]
CLAIMS = {"sub": "oidc|alice", "email": "Alice@Example.com", "name": "Alice Analyst"}


def audit_actions(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq))).all())


def claim_grants(db: Database, user_id: int) -> set[str]:
    with db.read() as session:
        return {g.role for g in users.grants_of(session, user_id) if g.source == "claim"}


# --- first sign-in -------------------------------------------------------------------------


def test_first_login_creates_the_user_and_the_second_finds_them(db: Database) -> None:
    first = users.sign_in_from_claims(db, CLAIMS)
    assert first.email == "alice@example.com" and first.name == "Alice Analyst"
    assert first.grants == ()
    with db.read() as session:
        user = users.get_user(session, first.user_id)
    assert user.subject == "oidc|alice" and user.last_login_at is not None
    again = users.sign_in_from_claims(db, {**CLAIMS, "name": "Renamed"})
    assert again.user_id == first.user_id
    with db.read() as session:
        assert len(users.list_users(session)) == 1
    assert audit_actions(db) == ["user.created"]


def test_login_without_name_uses_the_mailbox(db: Database) -> None:
    principal = users.sign_in_from_claims(db, {"sub": "x1", "email": "bo@example.com"})
    assert principal.name == "bo"


def _allow_email_linking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUM_OIDC_LINK_VERIFIED_EMAILS", "true")
    config.reset_settings()


def test_takeover_by_an_unverified_email_is_refused(people_db: Database) -> None:
    """A new subject claiming the admin's email, unverified, neither links nor gains a role."""
    claims = {"iss": "https://idp.example", "sub": "mallory", "email": "ADA@demo.quorum",
              "email_verified": False}  # fmt: skip
    with people_db.read() as session:
        ada_before = users.user_by_email(session, "ada@demo.quorum")
    with pytest.raises(AuthenticationFailed, match="not verified this email"):
        users.sign_in_from_claims(people_db, claims, roles_claim="roles")
    with people_db.read() as session:
        ada = users.user_by_email(session, "ada@demo.quorum")
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "signin.refused"))
        assert len(refused.all()) == 1
        assert session.exec(select(User).where(User.subject == "mallory")).first() is None
    assert (ada.subject, ada.issuer) == (ada_before.subject, None)


def test_verified_email_links_only_when_an_admin_allowed_it(
    people_db: Database, principal: PrincipalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = users.create_user(people_db, principal(Role.ADMIN), "eve@example.com", "Eve")
    claims = {"iss": "https://idp.example", "sub": "eve-sub", "email": "eve@example.com",
              "email_verified": True}  # fmt: skip
    with pytest.raises(AuthenticationFailed, match="linking accounts by email is not allowed"):
        users.sign_in_from_claims(people_db, claims)
    _allow_email_linking(monkeypatch)
    with pytest.raises(AuthenticationFailed, match="not verified"):
        users.sign_in_from_claims(people_db, {**claims, "email_verified": "false"})
    signed_in = users.sign_in_from_claims(people_db, claims)
    assert signed_in.user_id == created.id
    with people_db.read() as session:
        user = users.get_user(session, created.id or 0)
    assert (user.issuer, user.subject) == ("https://idp.example", "eve-sub")
    assert "user.linked" in audit_actions(people_db)
    # once linked, another identity with the same verified email cannot take it over
    with pytest.raises(AuthenticationFailed, match="another sign-in identity"):
        users.sign_in_from_claims(people_db, {**claims, "sub": "eve-again"})


def test_accounts_are_told_apart_by_issuer_and_subject(db: Database) -> None:
    first = users.sign_in_from_claims(db, {**CLAIMS, "iss": "https://one.example"})
    with pytest.raises(AuthenticationFailed):  # same subject and email, another issuer
        users.sign_in_from_claims(db, {**CLAIMS, "iss": "https://two.example"})
    other = users.sign_in_from_claims(
        db, {**CLAIMS, "iss": "https://two.example", "email": "alice@two.example"}
    )
    assert other.user_id != first.user_id


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"email": "a@example.com"}, AuthenticationFailed),
        ({"sub": "s", "email": "not-an-address"}, InvalidInput),
        ({"sub": "s"}, InvalidInput),
    ],
)
def test_login_with_incomplete_claims_is_refused(
    db: Database, claims: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        users.sign_in_from_claims(db, claims)
    with db.read() as session:
        assert users.list_users(session) == []


def test_admin_emails_setting_makes_only_a_verified_first_login_an_admin(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUORUM_ADMIN_EMAILS", "root@example.com, alice@example.com")
    config.reset_settings()
    unverified = users.sign_in_from_claims(db, {**CLAIMS, "sub": "a2", "email": "root@example.com"})
    assert unverified.grants == ()
    principal = users.sign_in_from_claims(db, {**CLAIMS, "email_verified": True})
    assert principal.all_roles() == {Role.ADMIN}


def test_deactivated_user_is_refused_at_login(
    people_db: Database, principal: PrincipalFactory
) -> None:
    alice = users.sign_in_from_claims(people_db, CLAIMS)
    users.set_active(people_db, principal(Role.ADMIN), alice.user_id, False)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        users.sign_in_from_claims(people_db, CLAIMS)
    users.set_active(people_db, principal(Role.ADMIN), alice.user_id, True)
    assert users.sign_in_from_claims(people_db, CLAIMS).user_id == alice.user_id


# --- roles from an ID-token claim ------------------------------------------------------------


def test_claim_values_grant_roles_only_through_an_admins_mapping(
    people_db: Database, principal: PrincipalFactory
) -> None:
    admin = principal(Role.ADMIN)
    claims = {**CLAIMS, "roles": ["reviewer", "admin", "astronaut"]}
    first = users.sign_in_from_claims(people_db, claims, roles_claim="roles")
    assert first.grants == (), "a claim naming a role grants nothing without a mapping"
    with people_db.read() as session:
        team = users.team_by_name(session, "risk-analytics")
    users.add_role_mapping(people_db, admin, "astronaut", Role.REVIEWER, team.id)
    mapped = users.sign_in_from_claims(people_db, claims, roles_claim="roles")
    assert {(g.role, g.team_id) for g in mapped.grants} == {(Role.REVIEWER, team.id)}
    assert claim_grants(people_db, mapped.user_id) == {"reviewer"}

    unchanged = users.sign_in_from_claims(people_db, claims, roles_claim="roles")
    assert unchanged.grants == mapped.grants
    dropped = users.sign_in_from_claims(
        people_db, {**claims, "roles": "admin"}, roles_claim="roles"
    )
    assert dropped.grants == ()
    assert audit_actions(people_db).count("grant.synced") == 2, "only changes are recorded"
    assert "role_mapping.created" in audit_actions(people_db)

    # a claim value named 'admin' grants exactly what its mapping says, never admin itself
    users.add_role_mapping(people_db, admin, "admin", Role.BUSINESS, team.id)
    named = users.sign_in_from_claims(
        people_db, {**claims, "roles": ["admin"]}, roles_claim="roles"
    )
    assert {(g.role, g.team_id) for g in named.grants} == {(Role.BUSINESS, team.id)}
    users.remove_role_mapping(
        people_db,
        admin,
        next(m.id or 0 for m in users.role_mappings(people_db) if m.claim_value == "admin"),
    )

    (mapping,) = users.role_mappings(people_db)
    users.sign_in_from_claims(people_db, claims, roles_claim="roles")
    users.remove_role_mapping(people_db, admin, mapping.id or 0)
    assert claim_grants(people_db, mapped.user_id) == set(), "removing a mapping withdraws it"
    with pytest.raises(PermissionDenied):
        users.add_role_mapping(people_db, principal(Role.REVIEWER), "x", Role.ADMIN)


def test_claim_sync_leaves_grants_from_the_store_alone(db: Database) -> None:
    alice = users.sign_in_from_claims(db, CLAIMS)
    with db.write() as session:
        session.add(RoleGrant(user_id=alice.user_id, role=Role.COMPLIANCE, source="store"))
    after = users.sign_in_from_claims(db, {**CLAIMS, "roles": []}, roles_claim="roles")
    assert after.all_roles() == {Role.COMPLIANCE}


def test_claim_is_ignored_when_no_claim_is_configured(db: Database) -> None:
    principal = users.sign_in_from_claims(db, {**CLAIMS, "roles": ["admin"]})
    assert principal.grants == ()


# --- personal access tokens ----------------------------------------------------------------


def test_token_is_shown_once_and_stored_hashed(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    new = users.create_token(people_db, dana, "laptop CLI", days=30)
    assert new.secret.startswith(users.TOKEN_PREFIX) and len(new.secret) > 40
    with people_db.read() as session:
        stored = session.exec(select(AccessToken)).one()
        row = session.connection().execute(AccessToken.__table__.select()).one()  # type: ignore[attr-defined]
        trail = session.exec(select(AuditEvent)).all()
    assert stored.token_hash != new.secret and len(stored.token_hash) == 64
    assert all(new.secret not in str(value) for value in row)
    assert all(new.secret not in e.summary + str(e.details) for e in trail)
    assert stored.prefix == new.secret[:10]
    assert stored.expires_at is not None
    assert timedelta(days=29) < stored.expires_at - utcnow() <= timedelta(days=30)
    assert "token.created" in audit_actions(people_db)


def test_authenticate_token_acts_as_its_owner(
    people_db: Database, principal: PrincipalFactory
) -> None:
    riley = principal(Role.REVIEWER)
    new = users.create_token(people_db, riley, "ci")
    acting = users.authenticate_token(people_db, new.secret)
    assert acting.user_id == riley.user_id and acting.all_roles() == {Role.REVIEWER}
    with people_db.read() as session:
        assert session.get(AccessToken, new.token.id).last_used_at is not None


@pytest.mark.parametrize("secret", ["", "qrm_", "qrm_not-a-real-token", "ghp_abcdef", "  "])
def test_unknown_tokens_are_refused(people_db: Database, secret: str) -> None:
    with pytest.raises(AuthenticationFailed, match="QUORUM_TOKEN"):
        users.authenticate_token(people_db, secret)


def test_revoked_token_is_refused(people_db: Database, principal: PrincipalFactory) -> None:
    blake = principal(Role.BUSINESS)
    new = users.create_token(people_db, blake, "old")
    users.revoke_token(people_db, blake, new.token.id or 0)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)
    with pytest.raises(Conflict):
        users.revoke_token(people_db, blake, new.token.id or 0)
    assert audit_actions(people_db)[-1] == "token.revoked"


def test_admin_revokes_someone_elses_token(
    people_db: Database, principal: PrincipalFactory
) -> None:
    new = users.create_token(people_db, principal(Role.DATA_SCIENTIST), "leaked")
    users.revoke_token(people_db, principal(Role.ADMIN), new.token.id or 0)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)


def test_expired_token_is_refused(people_db: Database, principal: PrincipalFactory) -> None:
    new = users.create_token(people_db, principal(Role.COMPLIANCE), "short", days=1)
    with people_db.write() as session:
        token = session.get(AccessToken, new.token.id)
        assert token is not None
        token.expires_at = utcnow() - timedelta(seconds=1)
        session.add(token)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)


def test_token_of_a_deactivated_user_is_refused(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    new = users.create_token(people_db, dana, "laptop")
    users.set_active(people_db, principal(Role.ADMIN), dana.user_id, False)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)


def test_tokens_depend_on_the_secret_key(
    people_db: Database, principal: PrincipalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = users.create_token(people_db, principal(Role.REVIEWER), "ci")
    monkeypatch.setenv("QUORUM_SECRET_KEY", "another-secret-key-of-sufficient-length!")
    config.reset_settings()
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(people_db, new.secret)


@pytest.mark.parametrize("days", [0, 367, -5])
def test_token_lifetime_must_be_between_one_and_366_days(
    people_db: Database, principal: PrincipalFactory, days: int
) -> None:
    with pytest.raises(InvalidInput, match="366"):
        users.create_token(people_db, principal(Role.REVIEWER), "x", days=days)


def test_operator_token_is_audited_as_the_operator(people_db: Database) -> None:
    new = users.issue_token_as_operator(people_db, "ada@demo.quorum")
    assert users.authenticate_token(people_db, new.secret).email == "ada@demo.quorum"
    with people_db.read() as session:
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    assert last is not None and last.action == "token.created"
    assert last.actor_label.startswith("Operator") and "shell" in last.summary


# --- admin rules ---------------------------------------------------------------------------


def test_admin_rules_refuse_self_harm_and_duplicates(
    people_db: Database, principal: PrincipalFactory
) -> None:
    ada = principal(Role.ADMIN)
    with pytest.raises(InvalidInput, match="your own account"):
        users.set_active(people_db, ada, ada.user_id, False)
    with people_db.read() as session:
        (own_admin,) = users.grants_of(session, ada.user_id)
    with pytest.raises(InvalidInput, match="your own admin role"):
        users.revoke_grant(people_db, ada, own_admin.id or 0)
    with pytest.raises(Conflict):
        users.grant_role(people_db, ada, ada.user_id, "admin")
    with pytest.raises(Conflict):
        users.create_user(people_db, ada, "DANA@demo.quorum", "Dana Again")
    with pytest.raises(InvalidInput, match="is not a role"):
        users.grant_role(people_db, ada, ada.user_id, "overlord")
    with people_db.read() as session:
        assert session.get(User, ada.user_id).is_active  # type: ignore[union-attr]


def test_grant_then_revoke_changes_what_the_person_may_do(
    people_db: Database, principal: PrincipalFactory
) -> None:
    ada = principal(Role.ADMIN)
    blake = principal(Role.BUSINESS)
    grant = users.grant_role(people_db, ada, blake.user_id, "compliance")
    assert users.principal_by_id(people_db, blake.user_id).all_roles() == {
        Role.BUSINESS,
        Role.COMPLIANCE,
    }
    users.revoke_grant(people_db, ada, grant.id or 0)
    assert users.principal_by_id(people_db, blake.user_id).all_roles() == {Role.BUSINESS}
    assert audit_actions(people_db)[-2:] == ["grant.created", "grant.revoked"]
