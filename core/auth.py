"""Who may do what. Roles come from the store on every check, never from the session."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from sqlmodel import Session, col, select

from core.errors import PermissionDenied
from core.models import Role, RoleGrant, Team, User


class Permission(StrEnum):
    VIEW = "see models and their records"
    MANAGE_USERS = "manage users and role grants"
    MANAGE_TEAMS = "manage teams"
    MANAGE_POLICIES = "edit approval policies and checklist templates"
    REGISTER_MODEL = "register models and versions"
    EDIT_MODEL = "edit a model's card and settings"
    ARCHIVE = "archive models and versions"
    SUBMIT_REVIEW = "submit a version for review"
    DECIDE = "approve, request changes or reject a version"
    COMMENT = "comment on a version"
    DEPLOY = "promote and roll back deployments"
    SCORE = "run batch scoring"
    INGEST = "ingest production data and labels"
    MANAGE_MONITORING = "change monitoring thresholds and alerts"
    RETRAIN = "retrain a model"
    COMPLIANCE_WORK = "work on compliance checklists"
    SIGN_OFF = "sign off a version"
    EXPORT_REPORTS = "export compliance packs"
    VIEW_AUDIT = "view and verify the audit trail"
    MANAGE_OWN_TOKENS = "manage personal access tokens"


_EVERYONE = {Permission.VIEW, Permission.COMMENT, Permission.MANAGE_OWN_TOKENS}

# What only a person may do: a service account (a CI pipeline's token) never decides a
# review, signs, makes a version live in production, or administers people and policies.
PERSON_ONLY = frozenset(
    {
        Permission.DECIDE,
        Permission.SIGN_OFF,
        Permission.MANAGE_USERS,
        Permission.MANAGE_TEAMS,
        Permission.MANAGE_POLICIES,
        Permission.MANAGE_OWN_TOKENS,
        Permission.COMPLIANCE_WORK,
    }
)
# The roles a service account may hold: those whose work a pipeline can do.
SERVICE_ROLES = (Role.DATA_SCIENTIST, Role.REVIEWER)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.DATA_SCIENTIST: frozenset(
        _EVERYONE
        | {
            Permission.REGISTER_MODEL,
            Permission.EDIT_MODEL,
            Permission.SUBMIT_REVIEW,
            Permission.SCORE,
            Permission.INGEST,
            Permission.RETRAIN,
            Permission.ARCHIVE,
        }
    ),
    Role.REVIEWER: frozenset(
        _EVERYONE
        | {
            Permission.DECIDE,
            Permission.SIGN_OFF,
            Permission.DEPLOY,
            Permission.SCORE,
            Permission.INGEST,
            Permission.MANAGE_MONITORING,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.BUSINESS: frozenset(_EVERYONE | {Permission.SIGN_OFF}),
    Role.COMPLIANCE: frozenset(
        _EVERYONE
        | {
            Permission.DECIDE,
            Permission.COMPLIANCE_WORK,
            Permission.SIGN_OFF,
            Permission.EXPORT_REPORTS,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Grant:
    role: Role
    team_id: int | None


@dataclass(frozen=True)
class Principal:
    """The acting person as services see it; grants are re-read from the store."""

    user_id: int
    email: str
    name: str
    grants: tuple[Grant, ...] = ()
    service: bool = False  # a service account (CI), not a person; read from the store
    token_name: str = ""  # the access token this request came with, named in audit events

    @property
    def label(self) -> str:
        who = f"service account {self.name}" if self.service else self.name
        via = f" via token {self.token_name!r}" if self.token_name else ""
        return f"{who} <{self.email}>{via}"

    def roles(self, team_id: int | None = None) -> set[Role]:
        return {g.role for g in self.grants if g.team_id is None or g.team_id == team_id}

    def all_roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    def can(self, permission: Permission, team_id: int | None = None) -> bool:
        return any(permission in ROLE_PERMISSIONS[r] for r in self._roles_for(team_id))

    def can_anywhere(self, permission: Permission) -> bool:
        return any(permission in ROLE_PERMISSIONS[g.role] for g in self.grants)

    def _roles_for(self, team_id: int | None) -> set[Role]:
        if team_id is None:
            return {g.role for g in self.grants if g.team_id is None}
        return self.roles(team_id)


SYSTEM = Principal(
    user_id=0, email="system@quorum", name="Quorum", grants=(Grant(Role.ADMIN, None),)
)
OPERATOR = Principal(
    user_id=0, email="operator@shell", name="Operator", grants=(Grant(Role.ADMIN, None),)
)


def load_grants(session: Session, user_id: int) -> tuple[Grant, ...]:
    rows = session.exec(select(RoleGrant).where(RoleGrant.user_id == user_id)).all()
    return tuple(Grant(Role(r.role), r.team_id) for r in rows if r.role in Role._value2member_map_)


def principal_for(session: Session, user: User, *, token_name: str = "") -> Principal:
    assert user.id is not None
    return Principal(
        user.id,
        user.email,
        user.name,
        load_grants(session, user.id),
        service=user.is_service,
        token_name=token_name,
    )


def refresh(session: Session, principal: Principal) -> Principal:
    """The same person with grants as the store holds them now; inactive users hold none."""
    if principal.user_id == SYSTEM.user_id:
        return principal
    user = session.get(User, principal.user_id)
    if user is None or not user.is_active:
        return replace(principal, grants=())
    return principal_for(session, user, token_name=principal.token_name)


def require(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    team_id: int | None = None,
    what: str = "",
    model_id: int | None = None,
    anywhere: bool = False,
) -> Principal:
    """Raise PermissionDenied unless the principal, as stored now, holds the permission.

    `anywhere=True` accepts a role held in any team: for personal or store-wide actions
    (own tokens, the audit trail) that belong to no team.
    """
    current = refresh(session, principal)
    target = f" {what}" if what else ""
    if current.service and permission in PERSON_ONLY:
        raise _person_only(current, permission, target, model_id)
    allowed = current.can_anywhere(permission) if anywhere else current.can(permission, team_id)
    if allowed:
        return current
    raise PermissionDenied(
        refusal_sentence(permission, what, current.grants, _team_names(session, current.grants)),
        details=[f"your roles: {describe_roles(current.grants) or 'none'}"],
        permission=permission.name,
        attempt=f"{permission.value}{target}",
        model_id=model_id,
    )


def refusal_sentence(
    permission: Permission, what: str, grants: Iterable[Grant], teams: dict[int, str]
) -> str:
    """One plain sentence: what was tried, what the person holds, what to ask for."""
    held = describe_roles(grants, teams)
    roles = (
        f"your roles ({held}) do not give that permission"
        if held
        else "you hold no role, so no permission"
    )
    if not what or what.startswith(("of ", "in ")):
        tried = f"{permission.value} {what}".strip()
        ask = "a role that allows it"
    else:
        tried = what
        ask = f"a role that may {permission.value}"
    return f"You may not {tried}: {roles}; ask an admin to grant you {ask}."


def _team_names(session: Session, grants: Iterable[Grant]) -> dict[int, str]:

    ids = sorted({g.team_id for g in grants if g.team_id is not None})
    if not ids:
        return {}
    rows = session.exec(select(Team.id, Team.name).where(col(Team.id).in_(ids))).all()
    return {i: str(n) for i, n in rows if i is not None}


def require_person(
    session: Session,
    principal: Principal,
    permission: Permission,
    what: str,
    *,
    model_id: int | None = None,
) -> Principal:
    """Raise PermissionDenied when a service account tries what only a person may do."""
    current = refresh(session, principal)
    if current.service:
        raise _person_only(current, permission, f" {what}", model_id)
    return current


def _person_only(
    current: Principal, permission: Permission, target: str, model_id: int | None
) -> PermissionDenied:
    return PermissionDenied(
        f"A service account cannot {permission.value}{target}; a person must do it, signed "
        "in or with a personal access token.",
        permission=permission.name,
        attempt=f"{permission.value}{target}",
        model_id=model_id,
    )


def readable_team_ids(principal: Principal) -> frozenset[int] | None:
    """The teams whose models the principal may see; None means every team (a global role).

    Pass a principal as the store holds it now (`refresh`), never one kept in a session."""
    viewing = [g for g in principal.grants if Permission.VIEW in ROLE_PERMISSIONS[g.role]]
    if any(g.team_id is None for g in viewing):
        return None
    return frozenset(g.team_id for g in viewing if g.team_id is not None)


def visible_teams(session: Session, principal: Principal) -> frozenset[int] | None:
    """`readable_team_ids` of the principal as the store holds it now."""
    return readable_team_ids(refresh(session, principal))


def describe_roles(grants: Iterable[Grant], teams: dict[int, str] | None = None) -> str:
    from core.models import ROLE_LABELS

    def where(team_id: int | None) -> str:
        if team_id is None:
            return ""
        name = (teams or {}).get(team_id)
        return f" in team {name}" if name else f" (team {team_id})"

    parts = sorted(ROLE_LABELS[g.role] + where(g.team_id) for g in grants)
    return ", ".join(parts)
