"""People, teams, role grants and personal access tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import OPERATOR, SERVICE_ROLES, Permission, Principal, principal_for, require
from core.config import get_settings
from core.db import Database
from core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from core.models import (
    AccessToken,
    PendingChange,
    Role,
    RoleGrant,
    RoleMapping,
    Team,
    User,
    utcnow,
)
from core.services import changes, read_as, unit_of_work

TOKEN_PREFIX = "qrm_"  # noqa: S105  (a public marker, not a secret)


def parse_role(value: str) -> Role:
    key = (value or "").strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {"business": Role.BUSINESS, "compliance": Role.COMPLIANCE}
    if key in aliases:
        return aliases[key]
    try:
        return Role(key)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"{value!r} is not a role. Use one of: {names}.") from None


# --- reads -----------------------------------------------------------------------------


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def user_by_email(session: Session, address: str) -> User:
    user = session.exec(select(User).where(User.email == address.strip().lower())).first()
    if user is None:
        raise NotFound(f"No user with email {address!r}. Check the spelling or create the user.")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.name))).all())


def list_teams(session: Session) -> list[Team]:
    return list(session.exec(select(Team).order_by(col(Team.name))).all())


def team_by_name(session: Session, name: str) -> Team:
    team = session.exec(select(Team).where(Team.name == name.strip())).first()
    if team is None:
        raise NotFound(f"No team named {name!r}. Create it first or check the spelling.")
    return team


def grants_of(session: Session, user_id: int) -> list[RoleGrant]:
    return list(session.exec(select(RoleGrant).where(RoleGrant.user_id == user_id)).all())


def all_grants(session: Session) -> list[RoleGrant]:
    return list(session.exec(select(RoleGrant)).all())


def tokens_of(session: Session, user_id: int) -> list[AccessToken]:
    stmt = select(AccessToken).where(AccessToken.user_id == user_id)
    return list(session.exec(stmt.order_by(col(AccessToken.created_at).desc())).all())


@dataclass(frozen=True)
class UserRow:
    user: User
    roles: list[tuple[str, str | None]]  # (role, team name or None for global)


def roles_of(db: Database, user_id: int) -> list[tuple[str, str | None]]:
    with db.read() as session:
        return _roles(session, user_id, {t.id: t.name for t in list_teams(session)})


def _roles(
    session: Session, user_id: int, teams: Mapping[int | None, str]
) -> list[tuple[str, str | None]]:
    return [
        (str(g.role), teams.get(g.team_id) if g.team_id is not None else None)
        for g in grants_of(session, user_id)
    ]


def people(db: Database, actor: Principal) -> list[UserRow]:
    """Every account with its roles, for admins."""
    with read_as(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="list users")
        teams = {t.id: t.name for t in list_teams(session)}
        return [UserRow(u, _roles(session, u.id or 0, teams)) for u in list_users(session)]


def my_tokens(db: Database, actor: Principal) -> list[AccessToken]:
    with db.read() as session:
        return tokens_of(session, actor.user_id)


def principal_by_email(db: Database, address: str) -> Principal:
    with db.read() as session:
        return principal_for(session, user_by_email(session, address))


def principal_by_id(db: Database, user_id: int) -> Principal:
    with db.read() as session:
        return principal_for(session, get_user(session, user_id))


def demo_users(db: Database) -> list[tuple[User, list[RoleGrant]]]:
    with db.read() as session:
        users = session.exec(select(User).where(col(User.is_demo)).order_by(col(User.id))).all()
        return [(u, grants_of(session, u.id or 0)) for u in users]


# --- sign-in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who the identity provider says signed in: its issuer and subject are the account."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str


def identity_from_claims(claims: Mapping[str, Any], issuer: str = "") -> Identity:
    subject = str(claims.get("sub") or "").strip()
    if not subject:
        raise AuthenticationFailed("The identity provider sent no subject; sign in again.")
    address = validation.email(str(claims.get("email") or ""))
    verified = claims.get("email_verified")
    name = str(claims.get("name") or claims.get("preferred_username") or address.split("@")[0])
    return Identity(
        issuer=str(claims.get("iss") or issuer).strip()[:255],
        subject=subject[:255],
        email=address,
        email_verified=verified is True or str(verified).lower() == "true",
        name=name[:120],
    )


def sign_in_from_claims(
    db: Database, claims: Mapping[str, Any], *, roles_claim: str = "", issuer: str = ""
) -> Principal:
    """The account of this issuer and subject; a first sign-in creates one. An existing
    account is linked by email only when the provider verified the email and an admin allowed
    email linking. Values of `roles_claim` grant roles only through the admin's role mappings."""
    who = identity_from_claims(claims, issuer)
    try:
        with db.write() as session:
            user = _find_or_create_user(session, who)
            if roles_claim:
                _sync_claim_roles(session, user, _claim_values(claims.get(roles_claim)))
            user.last_login_at = utcnow()
            session.add(user)
            return principal_for(session, user)
    except AuthenticationFailed as refused:
        _audit_refused_sign_in(db, who, refused)
        raise


def _find_or_create_user(session: Session, who: Identity) -> User:
    user = session.exec(
        select(User).where(User.issuer == who.issuer, User.subject == who.subject)
    ).first()
    if user is None:
        user = _link_by_email(session, who)
    if user is not None:
        if user.is_service:
            raise AuthenticationFailed(
                f"{user.email} belongs to a service account, which cannot sign in; use a person's "
                "account."
            )
        if not user.is_active:
            raise AuthenticationFailed(
                f"The account {user.email} is deactivated. Ask an admin to reactivate it."
            )
        return user
    return _new_user(session, who)


def _link_by_email(session: Session, who: Identity) -> User | None:
    """An account that already holds this email (made by an admin or the demo), linked to the
    provider's identity only when that is safe; otherwise the sign-in is refused."""
    user = session.exec(select(User).where(User.email == who.email)).first()
    if user is None:
        return None
    settings = get_settings()
    if user.subject is not None:
        problem = "it already belongs to another sign-in identity"
    elif not who.email_verified:
        problem = "the identity provider has not verified this email"
    elif not settings.oidc_link_verified_emails:
        problem = "linking accounts by email is not allowed (QUORUM_OIDC_LINK_VERIFIED_EMAILS)"
    else:
        user.issuer, user.subject = who.issuer, who.subject
        audit.record(
            session,
            Principal(user.id or 0, user.email, user.name),
            "user.linked",
            object_type="user",
            object_id=user.id,
            summary=f"{user.email} linked to the identity {who.subject} of {who.issuer} "
            "(verified email, linking allowed by the admin)",
            details={"issuer": who.issuer, "subject": who.subject},
        )
        return user
    raise AuthenticationFailed(
        f"Sign-in refused: an account with the email {who.email} already exists and {problem}. "
        "Ask an admin to link your account."
    )


def _new_user(session: Session, who: Identity) -> User:
    user = User(email=who.email, name=who.name, issuer=who.issuer, subject=who.subject)
    session.add(user)
    session.flush()
    assert user.id is not None
    bootstrap = who.email_verified and who.email in get_settings().admin_emails
    if bootstrap:
        session.add(RoleGrant(user_id=user.id, role=Role.ADMIN, source="settings"))
    audit.record(
        session,
        Principal(user.id, user.email, user.name),
        "user.created",
        object_type="user",
        object_id=user.id,
        summary=f"{who.name} signed in for the first time"
        + (" and became admin (QUORUM_ADMIN_EMAILS, verified email)" if bootstrap else ""),
        details={
            "issuer": who.issuer,
            "subject": who.subject,
            "email_verified": who.email_verified,
        },
    )
    return user


def _audit_refused_sign_in(db: Database, who: Identity, refused: AuthenticationFailed) -> None:
    with db.write() as session:
        audit.record(
            session,
            None,
            "signin.refused",
            object_type="identity",
            object_id=who.subject,
            summary=f"Sign-in as {who.email} refused: {refused.user_message[:300]}",
            details={
                "issuer": who.issuer,
                "subject": who.subject,
                "email_verified": who.email_verified,
            },
        )


def _claim_values(value: Any) -> set[str]:
    values = value if isinstance(value, list | tuple) else str(value or "").split()
    return {str(v).strip() for v in values if str(v).strip()}


def _sync_claim_roles(session: Session, user: User, values: set[str]) -> None:
    """Grants from the claim are exactly what the admin's mappings give these values."""
    mapped: set[tuple[str, int | None]] = set()
    if values:
        rows = session.exec(select(RoleMapping).where(col(RoleMapping.claim_value).in_(values)))
        mapped = {(m.role, m.team_id) for m in rows if m.role in Role._value2member_map_}
    current = {
        (g.role, g.team_id): g for g in grants_of(session, user.id or 0) if g.source == "claim"
    }
    for role, team_id in mapped - set(current):
        session.add(RoleGrant(user_id=user.id or 0, role=role, team_id=team_id, source="claim"))
    for key in set(current) - mapped:
        session.delete(current[key])
    if mapped != set(current):
        session.flush()
        audit.record(
            session,
            Principal(user.id or 0, user.email, user.name),
            "grant.synced",
            object_type="user",
            object_id=user.id,
            summary=f"Roles from the identity provider's mappings for {user.email}: "
            + (
                ", ".join(sorted(f"{r}" + (f" (team {t})" if t else "") for r, t in mapped))
                or "none"
            ),
            details={"claim_values": sorted(values)[:50], "granted": sorted(map(list, mapped))},
        )


# --- role mappings: the only way a claim value becomes a role --------------------------------


def role_mappings(db: Database) -> list[RoleMapping]:
    with db.read() as session:
        return list(session.exec(select(RoleMapping).order_by(col(RoleMapping.claim_value))))


def add_role_mapping(
    db: Database, actor: Principal, claim_value: str, role: Role | str, team_id: int | None = None
) -> RoleMapping:
    value = validation.plain_text(claim_value, "claim value", max_length=200, required=True)
    chosen = parse_role(role) if not isinstance(role, Role) else role
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="map identity-provider roles")
        scope = _scope_label(session, team_id)
        existing = session.exec(
            select(RoleMapping).where(
                RoleMapping.claim_value == value,
                RoleMapping.role == chosen,
                RoleMapping.team_id == team_id,
            )
        ).first()
        if existing:
            raise Conflict(f"The claim value {value!r} already maps to {chosen.value} {scope}.")
        mapping = RoleMapping(
            claim_value=value, role=chosen, team_id=team_id, created_by_id=actor.user_id or None
        )
        session.add(mapping)
        session.flush()
        audit.record(
            session,
            actor,
            "role_mapping.created",
            object_type="role_mapping",
            object_id=mapping.id,
            summary=f"Claim value {value!r} now grants {chosen.value} {scope} at sign-in",
            details={"claim_value": value, "role": chosen.value, "team_id": team_id},
        )
        return mapping


def remove_role_mapping(db: Database, actor: Principal, mapping_id: int) -> None:
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="map identity-provider roles")
        mapping = session.get(RoleMapping, mapping_id)
        if mapping is None:
            raise NotFound(f"No role mapping with id {mapping_id}; it may already be removed.")
        audit.record(
            session,
            actor,
            "role_mapping.removed",
            object_type="role_mapping",
            object_id=mapping.id,
            summary=f"Claim value {mapping.claim_value!r} no longer grants {mapping.role} "
            + _scope_label(session, mapping.team_id)
            + "; grants it gave are withdrawn now (other mappings restore theirs at sign-in)",
            details={"claim_value": mapping.claim_value, "role": mapping.role},
        )
        given = session.exec(
            select(RoleGrant).where(
                RoleGrant.source == "claim",
                RoleGrant.role == mapping.role,
                RoleGrant.team_id == mapping.team_id,
            )
        ).all()
        for grant in given:
            session.delete(grant)
        session.delete(mapping)


# --- admin -----------------------------------------------------------------------------


def create_team(db: Database, actor: Principal, name: str, description: str = "") -> Team:
    team_name = validation.slug_name(name, "team name")
    text = validation.plain_text(description, "team description", max_length=500)
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_TEAMS, what="create a team")
        if session.exec(select(Team).where(Team.name == team_name)).first():
            raise Conflict(f"A team named {team_name!r} already exists. Pick another name.")
        team = Team(name=team_name, description=text)
        session.add(team)
        session.flush()
        audit.record(
            session,
            actor,
            "team.created",
            object_type="team",
            object_id=team.id,
            summary=f"Team {team_name} created",
        )
        return team


def create_user(
    db: Database, actor: Principal, address: str, name: str, *, demo: bool = False
) -> User:
    mail = validation.email(address)
    person = validation.display_name(name)
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="create a user")
        if session.exec(select(User).where(User.email == mail)).first():
            raise Conflict(f"A user with email {mail} already exists.")
        user = User(email=mail, name=person, is_demo=demo)
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor,
            "user.created",
            object_type="user",
            object_id=user.id,
            summary=f"User {person} <{mail}> created",
        )
        return user


def set_active(db: Database, actor: Principal, user_id: int, active: bool) -> User:
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="deactivate or reactivate users")
        user = get_user(session, user_id)
        if user.id == actor.user_id and not active:
            raise InvalidInput("You cannot deactivate your own account; ask another admin.")
        user.is_active = active
        session.add(user)
        verb = "reactivated" if active else "deactivated"
        audit.record(
            session,
            actor,
            f"user.{verb}",
            object_type="user",
            object_id=user.id,
            summary=f"User {user.email} {verb}",
        )
        return user


def grant_role(
    db: Database, actor: Principal, user_id: int, role: Role | str, team_id: int | None = None
) -> RoleGrant | PendingChange:
    """Grant a role. A role granted to oneself waits for another admin (a PendingChange)."""
    role = parse_role(role) if not isinstance(role, Role) else role
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="grant roles")
        user, scope = _grantable(session, user_id, role, team_id)
        if user_id == actor.user_id and not changes.acts_alone(actor):
            payload = {"user_id": user_id, "role": role.value, "team_id": team_id}
            return changes.propose(
                session, actor, changes.SELF_GRANT, payload, f"{user.email} to hold {role} {scope}"
            )
        return _grant(session, actor, user, role, team_id, scope)


def _grantable(session: Session, user_id: int, role: Role, team_id: int | None) -> tuple[User, str]:
    user = get_user(session, user_id)
    scope = _scope_label(session, team_id)
    existing = session.exec(
        select(RoleGrant).where(
            RoleGrant.user_id == user_id, RoleGrant.role == role, RoleGrant.team_id == team_id
        )
    ).first()
    if existing:
        raise Conflict(f"{user.email} already holds the role {role.value} {scope}.")
    return user, scope


def _grant(
    session: Session,
    actor: Principal,
    user: User,
    role: Role,
    team_id: int | None,
    scope: str,
    proposed_by: int | None = None,
) -> RoleGrant:
    granter = actor.user_id or None  # the operator (user 0) is no row of the user table
    grant = RoleGrant(user_id=user.id or 0, role=role, team_id=team_id, granted_by_id=granter)
    session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        "grant.created",
        object_type="grant",
        object_id=grant.id,
        summary=f"{user.email} granted {role.value} {scope}"
        + (" (their own request, confirmed by a second admin)" if proposed_by else ""),
        details={
            "user_id": user.id,
            "role": role.value,
            "team_id": team_id,
            "proposed_by": proposed_by,
        },
    )
    return grant


@changes.applies(changes.SELF_GRANT)
def _apply_self_grant(
    session: Session, proposer: Principal, confirmer: Principal, payload: dict[str, Any]
) -> str:
    role, team_id = Role(payload["role"]), payload["team_id"]
    user, scope = _grantable(session, payload["user_id"], role, team_id)
    _grant(session, confirmer, user, role, team_id, scope, proposed_by=proposer.user_id)
    return f"{user.email} now holds {role.value} {scope}"


def revoke_grant(db: Database, actor: Principal, grant_id: int) -> None:
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="revoke roles")
        grant = session.get(RoleGrant, grant_id)
        if grant is None:
            raise NotFound(f"No role grant with id {grant_id}; it may already be revoked.")
        if grant.user_id == actor.user_id and grant.role == Role.ADMIN and grant.team_id is None:
            raise InvalidInput("You cannot revoke your own admin role; ask another admin.")
        user = get_user(session, grant.user_id)
        scope = _scope_label(session, grant.team_id)
        audit.record(
            session,
            actor,
            "grant.revoked",
            object_type="grant",
            object_id=grant.id,
            summary=f"{user.email} no longer holds {grant.role} {scope}",
            details={"user_id": grant.user_id, "role": grant.role, "team_id": grant.team_id},
        )
        session.delete(grant)


def _scope_label(session: Session, team_id: int | None) -> str:
    if team_id is None:
        return "globally"
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"No team with id {team_id}.")
    return f"in team {team.name}"


# --- personal access tokens --------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    token: AccessToken
    secret: str  # shown once, never stored


def _hash_token(secret: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def _new_token(session: Session, user: User, name: str, days: int | None) -> NewToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=days) if days else None
    token = AccessToken(
        user_id=user.id or 0,
        name=name,
        prefix=secret[:10],
        token_hash=_hash_token(secret),
        expires_at=expires,
    )
    session.add(token)
    session.flush()
    return NewToken(token, secret)


def create_token(db: Database, actor: Principal, name: str, *, days: int | None = 90) -> NewToken:
    label = validation.display_name(name, "token name")
    if days is not None and not 1 <= days <= 366:
        raise InvalidInput("A token lives between 1 and 366 days; choose a value in that range.")
    with unit_of_work(db, actor) as session:
        require(
            session, actor, Permission.MANAGE_OWN_TOKENS, what="create access tokens", anywhere=True
        )
        new = _new_token(session, get_user(session, actor.user_id), label, days)
        audit.record(
            session,
            actor,
            "token.created",
            object_type="token",
            object_id=new.token.id,
            summary=f"{actor.email} created access token {label!r} ({new.token.prefix}…)",
        )
        return new


def issue_token_as_operator(db: Database, address: str, name: str = "cli") -> NewToken:
    """For an operator with shell access to the server, like Django's createsuperuser."""
    with db.write() as session:
        user = user_by_email(session, address)
        new = _new_token(session, user, name, 90)
        audit.record(
            session,
            OPERATOR,
            "token.created",
            object_type="token",
            object_id=new.token.id,
            summary=f"An operator issued access token {name!r} for {user.email} from the shell",
        )
        return new


def revoke_token(db: Database, actor: Principal, token_id: int) -> None:
    with unit_of_work(db, actor) as session:
        token = session.get(AccessToken, token_id)
        own = token is not None and token.user_id == actor.user_id
        # Someone else's token and no token at all get the same refusal, so ids do not leak.
        permission = Permission.MANAGE_OWN_TOKENS if own else Permission.MANAGE_USERS
        require(session, actor, permission, what="revoke this access token", anywhere=own)
        if token is None:
            raise NotFound(f"No access token with id {token_id}.")
        if token.revoked_at is not None:
            raise Conflict("This token is already revoked.")
        token.revoked_at = utcnow()
        session.add(token)
        audit.record(
            session,
            actor,
            "token.revoked",
            object_type="token",
            object_id=token.id,
            summary=f"Access token {token.name!r} ({token.prefix}…) revoked",
        )


@dataclass(frozen=True)
class Bearer:
    """Who a request's access token stands for, and which token it was."""

    principal: Principal
    token_id: int
    token_name: str
    kind: str  # "personal" or "service"
    expires_at: datetime | None


def authenticate_token(db: Database, secret: str) -> Principal:
    return authenticate_bearer(db, secret).principal


def authenticate_bearer(db: Database, secret: str) -> Bearer:
    """The principal behind a token, with the token's name carried into every audit event."""
    failure = AuthenticationFailed(
        "The access token is not valid: it is unknown, revoked or expired. "
        "Create a new one on the Profile page and set QUORUM_TOKEN."
    )
    secret = (secret or "").strip()
    if not secret.startswith(TOKEN_PREFIX):
        raise failure
    with db.write() as session:
        token = session.exec(
            select(AccessToken).where(AccessToken.token_hash == _hash_token(secret))
        ).first()
        now = utcnow()
        if token is None or token.revoked_at or (token.expires_at and token.expires_at < now):
            raise failure
        user = get_user(session, token.user_id)
        if not user.is_active:
            raise failure
        token.last_used_at = now
        session.add(token)
        return Bearer(
            principal=principal_for(session, user, token_name=token.name),
            token_id=token.id or 0,
            token_name=token.name,
            kind="service" if user.is_service else "personal",
            expires_at=token.expires_at,
        )


# --- service accounts ----------------------------------------------------------------------

SERVICE_DOMAIN = "service-accounts.quorum"


@dataclass(frozen=True)
class ServiceAccountView:
    """A CI identity: a name, one role in one team, its token's state."""

    id: int
    name: str
    team: str
    role: str
    active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    token_prefix: str


@dataclass(frozen=True)
class NewServiceAccount:
    account: ServiceAccountView
    secret: str  # shown once, never stored


def create_service_account(
    db: Database, actor: Principal, name: str, team: str, role: Role | str, *, days: int = 90
) -> NewServiceAccount:
    """A named token owned by a team with one role and an expiry, for a CI pipeline."""
    label = validation.slug_name(name, "service account name")
    chosen = parse_role(role) if not isinstance(role, Role) else role
    if chosen not in SERVICE_ROLES:
        allowed = " or ".join(r.value for r in SERVICE_ROLES)
        raise InvalidInput(
            f"A service account can hold the role {allowed}, not {chosen.value}: deciding, "
            "signing and administration need a person."
        )
    if not 1 <= days <= 366:
        raise InvalidInput("A service account's token lives between 1 and 366 days.")
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="create service accounts")
        owner = team_by_name(session, team)
        address = f"{label}@{SERVICE_DOMAIN}"
        if session.exec(select(User).where(User.email == address)).first():
            raise Conflict(f"A service account named {label!r} already exists. Pick another name.")
        user = User(email=address, name=label, is_service=True)
        session.add(user)
        session.flush()
        grant = RoleGrant(
            user_id=user.id or 0, role=chosen, team_id=owner.id, granted_by_id=actor.user_id or None
        )
        session.add(grant)
        new = _new_token(session, user, label, days)
        audit.record(
            session,
            actor,
            "service_account.created",
            object_type="user",
            object_id=user.id,
            summary=f"Service account {label} created for team {owner.name} as {chosen.value}, "
            f"token {new.token.prefix}… valid {days} days",
            details={"team": owner.name, "role": chosen.value, "days": days},
        )
        view = _service_view(user, grant, owner.name, new.token)
        return NewServiceAccount(view, new.secret)


def list_service_accounts(db: Database, actor: Principal) -> list[ServiceAccountView]:
    with read_as(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="list service accounts")
        return _service_views(session, select(User).where(col(User.is_service)))


def service_accounts_of_teams(db: Database, actor: Principal) -> list[ServiceAccountView]:
    """The service accounts of the teams the person holds a role in (Profile page)."""
    with db.read() as session:
        teams = {g.team_id for g in grants_of(session, actor.user_id)}
        everything = None in teams
        views = _service_views(session, select(User).where(col(User.is_service)))
        names = {t.id: t.name for t in list_teams(session)}
        mine = {names.get(t) for t in teams}
        return [v for v in views if everything or v.team in mine]


def revoke_service_account(db: Database, actor: Principal, account_id: int) -> None:
    """Deactivate the account and revoke its tokens; the record stays for the audit trail."""
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="revoke service accounts")
        user = session.get(User, account_id)
        if user is None or not user.is_service:
            raise NotFound(f"No service account with id {account_id}.")
        if not user.is_active:
            raise Conflict(f"The service account {user.name} is already revoked.")
        user.is_active = False
        session.add(user)
        now = utcnow()
        for token in tokens_of(session, user.id or 0):
            if token.revoked_at is None:
                token.revoked_at = now
                session.add(token)
        audit.record(
            session,
            actor,
            "service_account.revoked",
            object_type="user",
            object_id=user.id,
            summary=f"Service account {user.name} revoked: its token is refused from now on",
        )


def _service_views(session: Session, stmt: Any) -> list[ServiceAccountView]:
    names = {t.id: t.name for t in list_teams(session)}
    views = []
    for user in session.exec(stmt.order_by(col(User.name))).all():
        grants = grants_of(session, user.id or 0)
        tokens = tokens_of(session, user.id or 0)
        grant = grants[0] if grants else None
        team = names.get(grant.team_id, "") if grant else ""
        views.append(_service_view(user, grant, team, tokens[0] if tokens else None))
    return views


def _service_view(
    user: User, grant: RoleGrant | None, team: str, token: AccessToken | None
) -> ServiceAccountView:
    return ServiceAccountView(
        id=user.id or 0,
        name=user.name,
        team=team,
        role=str(grant.role) if grant else "",
        active=user.is_active and token is not None and token.revoked_at is None,
        created_at=user.created_at,
        expires_at=token.expires_at if token else None,
        last_used_at=token.last_used_at if token else None,
        token_prefix=token.prefix if token else "",
    )
