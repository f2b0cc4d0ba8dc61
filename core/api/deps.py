"""What every endpoint receives: the caller behind the bearer token, the store, the settings.

The token is checked on every request and the principal's roles are re-read from the store by
the services (`require`), so a revoked role or token stops working on the next call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.artifacts import ArtifactStore
from core.auth import Principal
from core.config import Settings
from core.db import Database
from core.errors import AuthenticationFailed
from core.services import users

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A personal access token (Profile page) or a service account's token.",
)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    bearer: users.Bearer
    db: Database
    store: ArtifactStore
    settings: Settings


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    if credentials is None:
        raise AuthenticationFailed(
            "Send an access token as 'Authorization: Bearer <token>'; create one on the "
            "Profile page."
        )
    state = request.app.state
    bearer = users.authenticate_bearer(state.db, credentials.credentials)
    return Caller(bearer.principal, bearer, state.db, state.store, state.settings)


CallerDep = Annotated[Caller, Depends(caller)]
