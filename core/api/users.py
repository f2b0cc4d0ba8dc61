"""Who am I, people (admin), personal access tokens, service accounts (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from core.api.deps import CallerDep
from core.services import users

router = APIRouter(tags=["people and tokens"])


class NewToken(BaseModel):
    name: str
    expires_in_days: int = 90


class NewServiceAccount(BaseModel):
    name: str
    team: str
    role: str = Field(description="data_scientist or reviewer")
    expires_in_days: int = 90


def _roles(pairs: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    return [{"role": role, "team": team} for role, team in pairs]


@router.get("/me")
def me(caller: CallerDep) -> dict[str, Any]:
    p, bearer = caller.principal, caller.bearer
    return {
        "id": p.user_id,
        "email": p.email,
        "name": p.name,
        "roles": _roles(users.roles_of(caller.db, p.user_id)),
        "token": {"name": bearer.token_name, "kind": bearer.kind, "expires_at": bearer.expires_at},
    }


@router.get("/users")
def list_people(caller: CallerDep) -> list[dict[str, Any]]:
    return [
        {
            "id": row.user.id,
            "email": row.user.email,
            "name": row.user.name,
            "active": row.user.is_active,
            "service": row.user.is_service,
            "roles": _roles(row.roles),
        }
        for row in users.people(caller.db, caller.principal)
    ]


def _token(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    }


@router.get("/tokens")
def list_tokens(caller: CallerDep) -> list[dict[str, Any]]:
    return [_token(t) for t in users.my_tokens(caller.db, caller.principal)]


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, caller: CallerDep) -> dict[str, Any]:
    new = users.create_token(caller.db, caller.principal, body.name, days=body.expires_in_days)
    return _token(new.token) | {"token": new.secret}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, caller: CallerDep) -> Response:
    users.revoke_token(caller.db, caller.principal, token_id)
    return Response(status_code=204)


def _account(view: users.ServiceAccountView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "team": view.team,
        "role": view.role,
        "active": view.active,
        "created_at": view.created_at,
        "expires_at": view.expires_at,
        "last_used_at": view.last_used_at,
        "prefix": view.token_prefix,
    }


@router.get("/service-accounts")
def list_service_accounts(caller: CallerDep) -> list[dict[str, Any]]:
    return [_account(v) for v in users.list_service_accounts(caller.db, caller.principal)]


@router.post("/service-accounts", status_code=201)
def create_service_account(body: NewServiceAccount, caller: CallerDep) -> dict[str, Any]:
    new = users.create_service_account(
        caller.db, caller.principal, body.name, body.team, body.role, days=body.expires_in_days
    )
    return _account(new.account) | {"token": new.secret}


@router.delete("/service-accounts/{account_id}", status_code=204)
def revoke_service_account(account_id: int, caller: CallerDep) -> Response:
    users.revoke_service_account(caller.db, caller.principal, account_id)
    return Response(status_code=204)
