"""Roles and permissions: the product's matrix, team scope, and the require() check."""

from __future__ import annotations

import pytest

from core.auth import (
    ROLE_PERMISSIONS,
    SYSTEM,
    Grant,
    Permission,
    Principal,
    describe_roles,
    readable_team_ids,
)
from core.models import Role
from core.services.users import parse_role

P = Permission
EXPECTED: dict[Role, set[Permission]] = {
    Role.DATA_SCIENTIST: {
        P.REGISTER_MODEL,
        P.EDIT_MODEL,
        P.SUBMIT_REVIEW,
        P.SCORE,
        P.INGEST,
        P.RETRAIN,
        P.ARCHIVE,
        P.VIEW,
        P.COMMENT,
        P.MANAGE_OWN_TOKENS,
    },
    Role.REVIEWER: {
        P.DECIDE,
        P.SIGN_OFF,
        P.DEPLOY,
        P.SCORE,
        P.INGEST,
        P.MANAGE_MONITORING,
        P.VIEW_AUDIT,
        P.VIEW,
        P.COMMENT,
        P.MANAGE_OWN_TOKENS,
    },
    Role.BUSINESS: {P.VIEW, P.SIGN_OFF, P.COMMENT, P.MANAGE_OWN_TOKENS},
    Role.COMPLIANCE: {
        P.DECIDE,
        P.COMPLIANCE_WORK,
        P.SIGN_OFF,
        P.EXPORT_REPORTS,
        P.VIEW_AUDIT,
        P.VIEW,
        P.COMMENT,
        P.MANAGE_OWN_TOKENS,
    },
    Role.ADMIN: set(Permission),
}


def person(*grants: Grant) -> Principal:
    return Principal(7, "pat@example.com", "Pat", grants)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_permissions_are_the_product_matrix(role: Role) -> None:
    assert set(ROLE_PERMISSIONS[role]) == EXPECTED[role]


def test_only_admins_manage_people_teams_and_policies() -> None:
    for permission in (P.MANAGE_USERS, P.MANAGE_TEAMS, P.MANAGE_POLICIES):
        assert {r for r in Role if permission in ROLE_PERMISSIONS[r]} == {Role.ADMIN}


def test_readable_teams_follow_the_grants() -> None:
    assert readable_team_ids(person()) == frozenset()
    assert readable_team_ids(person(Grant(Role.BUSINESS, 3), Grant(Role.REVIEWER, 5))) == {3, 5}
    assert readable_team_ids(person(Grant(Role.REVIEWER, 5), Grant(Role.COMPLIANCE, None))) is None


def test_no_role_means_no_permission() -> None:
    nobody = person()
    assert not any(nobody.can(p) or nobody.can_anywhere(p) for p in Permission)
    assert nobody.roles() == set()


def test_global_grant_applies_in_every_team() -> None:
    reviewer = person(Grant(Role.REVIEWER, None))
    assert reviewer.can(P.DECIDE) and reviewer.can(P.DECIDE, team_id=3)
    assert not reviewer.can(P.REGISTER_MODEL, team_id=3)


def test_team_grant_applies_only_in_its_team() -> None:
    scientist = person(Grant(Role.DATA_SCIENTIST, 1))
    assert scientist.can(P.REGISTER_MODEL, team_id=1)
    assert not scientist.can(P.REGISTER_MODEL, team_id=2)
    assert not scientist.can(P.REGISTER_MODEL)  # team-less actions need a global grant
    assert scientist.can_anywhere(P.REGISTER_MODEL)
    assert scientist.roles(1) == {Role.DATA_SCIENTIST} and scientist.roles(2) == set()


def test_several_roles_add_up() -> None:
    both = person(Grant(Role.BUSINESS, None), Grant(Role.REVIEWER, 4))
    assert both.can(P.SIGN_OFF, team_id=9)
    assert both.can(P.DEPLOY, team_id=4) and not both.can(P.DEPLOY, team_id=9)
    assert both.all_roles() == {Role.BUSINESS, Role.REVIEWER}


def test_system_principal_is_an_admin() -> None:
    assert all(SYSTEM.can(p) for p in Permission)
    assert SYSTEM.label == "Quorum <system@quorum>"


def test_describe_roles_is_readable() -> None:
    text = describe_roles([Grant(Role.REVIEWER, 2), Grant(Role.ADMIN, None)])
    assert text == "Admin, Reviewer (team 2)"
    assert describe_roles([]) == ""


@pytest.mark.parametrize(
    ("raw", "role"),
    [
        ("admin", Role.ADMIN),
        ("Data Scientist", Role.DATA_SCIENTIST),
        ("data-scientist", Role.DATA_SCIENTIST),
        ("business", Role.BUSINESS),
        ("compliance", Role.COMPLIANCE),
        (" REVIEWER ", Role.REVIEWER),
    ],
)
def test_parse_role_accepts_labels_and_aliases(raw: str, role: Role) -> None:
    assert parse_role(raw) is role


def test_parse_role_lists_the_choices() -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="data_scientist, reviewer"):
        parse_role("superuser")
