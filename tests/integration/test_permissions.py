"""R1: every mutating service x every role. Allowed roles succeed; everyone else is refused,
the store is left exactly as it was, and the refusal itself is audited once.

To cover a new mutating service, append one `ServiceCase` to CASES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlmodel import select

from core import audit, audit_anchor
from core.auth import ROLE_PERMISSIONS, Permission, Principal
from core.config import get_settings
from core.db import Database
from core.errors import NotFound, PermissionDenied
from core.models import AccessToken, Role, RoleGrant, Team, User
from core.services import registry, users

PrincipalFactory = Callable[[Role | None], Principal]
ALL_ROLES: tuple[Role | None, ...] = (*Role, None)


@dataclass
class World:
    """The objects each call acts on, made before any snapshot so the call is the only change.
    Every actor gets objects of its own, so one role's success cannot get in another's way."""

    db: Database
    team: Team
    target: User  # a person other than the actor, for admin actions
    target_grant_id: int
    credit_model_id: int
    own_token: dict[int, int] = field(default_factory=dict)  # user id -> a token of theirs
    own_model: dict[int, int] = field(default_factory=dict)  # user id -> a model to archive
    someone_elses_token_id: int = 0
    service_account_id: int = 0

    def row_version(self, model_id: int) -> int:
        with self.db.read() as session:
            return registry.model_row(session, model_id).row_version


Call = Callable[[World, Principal], Any]


@dataclass(frozen=True)
class ServiceCase:
    name: str
    permission: Permission
    call: Call


CASES: list[ServiceCase] = [
    ServiceCase(
        "users.create_team",
        Permission.MANAGE_TEAMS,
        lambda w, p: users.create_team(w.db, p, f"fraud-{p.user_id}", "Card fraud models"),
    ),
    ServiceCase(
        "users.create_user",
        Permission.MANAGE_USERS,
        lambda w, p: users.create_user(w.db, p, f"new.{p.user_id}@example.com", "New Person"),
    ),
    ServiceCase(
        "users.set_active",
        Permission.MANAGE_USERS,
        lambda w, p: users.set_active(w.db, p, w.target.id or 0, False),
    ),
    ServiceCase(
        "users.grant_role",
        Permission.MANAGE_USERS,
        lambda w, p: users.grant_role(w.db, p, w.target.id or 0, Role.REVIEWER),
    ),
    ServiceCase(
        "users.revoke_grant",
        Permission.MANAGE_USERS,
        lambda w, p: users.revoke_grant(w.db, p, w.target_grant_id),
    ),
    ServiceCase(
        "users.create_token",
        Permission.MANAGE_OWN_TOKENS,
        lambda w, p: users.create_token(w.db, p, "laptop"),
    ),
    ServiceCase(
        "users.revoke_token (own)",
        Permission.MANAGE_OWN_TOKENS,
        lambda w, p: users.revoke_token(w.db, p, w.own_token[p.user_id]),
    ),
    ServiceCase(
        "users.revoke_token (someone else's)",
        Permission.MANAGE_USERS,
        lambda w, p: users.revoke_token(w.db, p, w.someone_elses_token_id),
    ),
    ServiceCase(
        "registry.create_model",
        Permission.REGISTER_MODEL,
        lambda w, p: registry.create_model(
            w.db,
            p,
            registry.ModelSpec(name=f"churn-{p.user_id}", team=w.team.name, task="regression"),
        ),
    ),
    ServiceCase(
        "registry.update_card",
        Permission.EDIT_MODEL,
        lambda w, p: registry.update_card(
            w.db,
            p,
            w.credit_model_id,
            {"purpose": f"Price loans by risk ({p.user_id}).", "limitations": "EU only."},
            row_version=w.row_version(w.credit_model_id),
        ),
    ),
    ServiceCase(
        "registry.update_model",
        Permission.EDIT_MODEL,
        lambda w, p: registry.update_model(
            w.db,
            p,
            "credit-default-scorer",
            registry.ModelChanges(tags={"owner": str(p.user_id)}, goal_target=0.8),
            reason="a new goal agreed with the business",
        ),
    ),
    ServiceCase(
        "users.create_service_account",
        Permission.MANAGE_USERS,
        lambda w, p: users.create_service_account(
            w.db, p, f"ci-{p.user_id}", w.team.name, Role.DATA_SCIENTIST
        ),
    ),
    ServiceCase(
        "users.revoke_service_account",
        Permission.MANAGE_USERS,
        lambda w, p: users.revoke_service_account(w.db, p, w.service_account_id),
    ),
    ServiceCase(
        "registry.archive_model",
        Permission.ARCHIVE,
        lambda w, p: registry.archive_model(w.db, p, w.own_model[p.user_id], "Replaced."),
    ),
]


def allowed_roles(permission: Permission) -> set[Role]:
    return {role for role, granted in ROLE_PERMISSIONS.items() if permission in granted}


def _world(db: Database, actors: list[Principal]) -> World:
    with db.read() as session:
        team = users.team_by_name(session, "risk-analytics")
        target = users.user_by_email(session, "sam@demo.quorum")
        grant = session.exec(select(RoleGrant).where(RoleGrant.user_id == target.id)).one()
        credit = registry.model_row(session, "credit-default-scorer")
    world = World(db, team, target, grant.id or 0, credit.id or 0)
    owner = next(a for a in actors if a.email == "dana@demo.quorum")
    for actor in actors:
        world.own_token[actor.user_id] = _token_for(db, actor.email)
        spec = registry.ModelSpec(
            name=f"old-model-{actor.user_id}", team=team.name, task="regression"
        )
        world.own_model[actor.user_id] = registry.create_model(db, owner, spec).id or 0
    world.someone_elses_token_id = _token_for(db, target.email)
    admin = next(a for a in actors if a.email == "ada@demo.quorum")
    made = users.create_service_account(db, admin, "ci-prepared", team.name, Role.REVIEWER)
    world.service_account_id = made.account.id
    return world


def _token_for(db: Database, address: str) -> int:
    return users.issue_token_as_operator(db, address, "prepared").token.id or 0


_reflected: dict[str, MetaData] = {}


def _schema(db: Database) -> MetaData:
    """The store's tables as the migrations made them (reflected once per backend)."""
    dialect = db.engine.dialect.name
    if dialect not in _reflected:
        metadata = MetaData()
        metadata.reflect(db.engine)
        _reflected[dialect] = metadata
    return _reflected[dialect]


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the store, in primary-key order."""
    metadata = _schema(db)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for name, table in metadata.tables.items():
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [tuple(r) for r in conn.execute(table.select().order_by(*order))]
    return rows


def assert_allowed(case: ServiceCase, world: World, actor: Principal) -> None:
    before = snapshot(world.db)
    case.call(world, actor)
    after = snapshot(world.db)
    new_events = after["audit_event"][len(before["audit_event"]) :]
    assert new_events, "an allowed mutation writes its audit event"
    assert any(after[t] != rows for t, rows in before.items() if t != "audit_event")
    with world.db.read() as session:
        newest = audit.query(session, audit.AuditFilter(limit=len(new_events)))
    assert all(e.actor_id == actor.user_id for e in newest)
    assert all(e.action != "permission.denied" for e in newest)


def assert_refused(case: ServiceCase, world: World, actor: Principal) -> None:
    before = snapshot(world.db)
    with pytest.raises(PermissionDenied) as refused:
        case.call(world, actor)
    assert "permission" in refused.value.user_message
    assert refused.value.permission == case.permission.name
    after = snapshot(world.db)
    for table, rows in before.items():
        if table != "audit_event":
            assert after[table] == rows, f"{case.name} changed {table} although it was refused"
    assert after["audit_event"][: len(before["audit_event"])] == before["audit_event"]
    assert len(after["audit_event"]) == len(before["audit_event"]) + 1
    with world.db.read() as session:
        (denial,) = audit.query(session, audit.AuditFilter(limit=1))
        assert audit_anchor.verify(session, get_settings()).intact
    assert denial.action == "permission.denied"
    assert denial.actor_id == actor.user_id
    assert denial.object_id == case.permission.name
    assert actor.email in denial.summary


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_permission_matrix(
    case: ServiceCase, people_db: Database, principal: PrincipalFactory, subtests: Any
) -> None:
    """One store per service; refused roles first (they change nothing but the audit
    trail, which each check accounts for), then the allowed ones on their own objects."""
    actors = {role: principal(role) for role in ALL_ROLES}
    world = _world(people_db, list(actors.values()))
    allowed = allowed_roles(case.permission)
    ordered = sorted(ALL_ROLES, key=lambda r: r in allowed)
    for role in ordered:
        with subtests.test(role="no_role" if role is None else role.value):
            if role in allowed:
                assert_allowed(case, world, actors[role])
            else:
                assert_refused(case, world, actors[role])


def test_every_mutating_service_is_in_the_matrix() -> None:
    """A new public function in users/registry that writes must get a ServiceCase."""
    covered = {c.name.split(" ")[0] for c in CASES}
    expected = {
        "users.create_team",
        "users.create_user",
        "users.set_active",
        "users.grant_role",
        "users.revoke_grant",
        "users.create_token",
        "users.revoke_token",
        "registry.create_model",
        "registry.update_card",
        "registry.archive_model",
        "registry.update_model",
        "users.create_service_account",
        "users.revoke_service_account",
    }
    assert expected <= covered


def test_every_role_is_allowed_something_and_refused_something() -> None:
    for role in Role:
        outcomes = {role in allowed_roles(c.permission) for c in CASES}
        if role is Role.ADMIN:
            assert outcomes == {True}
        else:
            assert outcomes == {True, False}, role


def test_deactivated_user_loses_every_permission_at_once(
    people_db: Database, principal: PrincipalFactory
) -> None:
    admin = principal(Role.ADMIN)
    dana = principal(Role.DATA_SCIENTIST)
    users.set_active(people_db, admin, dana.user_id, False)
    with pytest.raises(PermissionDenied):
        users.create_token(people_db, dana, "after deactivation")
    with people_db.read() as session:
        assert session.exec(select(AccessToken)).all() == []


def test_revoked_role_is_refused_on_the_next_action(
    people_db: Database, principal: PrincipalFactory
) -> None:
    admin = principal(Role.ADMIN)
    dana = principal(Role.DATA_SCIENTIST)  # holds her grants as read now
    with people_db.read() as session:
        (grant,) = users.grants_of(session, dana.user_id)
    users.revoke_grant(people_db, admin, grant.id or 0)
    spec = registry.ModelSpec(name="stale-session-model", team="risk-analytics", task="regression")
    with pytest.raises(PermissionDenied):
        registry.create_model(people_db, dana, spec)


def test_team_scoped_role_does_not_reach_other_teams(
    people_db: Database, principal: PrincipalFactory
) -> None:
    admin = principal(Role.ADMIN)
    users.create_team(people_db, admin, "other-team")
    dana = principal(Role.DATA_SCIENTIST)
    spec = registry.ModelSpec(name="outside-model", team="other-team", task="regression")
    with pytest.raises(NotFound) as refused:
        registry.create_model(people_db, dana, spec)
    assert refused.value.user_message.startswith("No team named 'other-team' is visible to you")
    with people_db.read() as session:
        other = users.team_by_name(session, "other-team")
    users.grant_role(people_db, admin, dana.user_id, Role.DATA_SCIENTIST, other.id)
    assert registry.create_model(people_db, dana, spec).team_id == other.id
