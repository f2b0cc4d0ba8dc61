"""Demo sign-in that survives a reload: a signed, expiring cookie naming the demo user.

A Streamlit session lives as long as its websocket, so a reload or a deep link opened in a new
tab used to sign a demo user out. When a demo user signs in, the page asks the API to set
`quorum_demo_session` (httponly, SameSite=Lax); a new session reads it back from the websocket
handshake (`st.context.cookies`) and signs the same person in again.

The value is `<payload>.<signature>`: the payload is base64url JSON holding the user id, a
random nonce and the expiry (Unix seconds); the signature is HMAC-SHA256 of the payload with
the server's cookie secret (or its secret key when no cookie secret is set, as in a plain
demo). Only demo users are accepted, and only while demo sign-in is on: OIDC sign-in keeps its
own session (`st.login`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from core.auth import Principal
from core.config import Settings
from core.db import Database
from core.errors import AuthenticationFailed, NotFound
from core.services import users

COOKIE = "quorum_demo_session"
LIFETIME_SECONDS = 12 * 3600


class DemoSessionRefused(AuthenticationFailed):
    """A demo session cookie that is altered, expired or names nobody who may use it."""


@dataclass(frozen=True)
class DemoSession:
    user_id: int
    nonce: str
    expires: int


def _key(settings: Settings) -> bytes:
    return (settings.cookie_secret or settings.secret_key).encode()


def _sign(settings: Settings, payload: str) -> str:
    return hmac.new(_key(settings), payload.encode(), hashlib.sha256).hexdigest()


def issue(settings: Settings, user_id: int, *, now: float | None = None) -> str:
    """A cookie value that signs `user_id` in for LIFETIME_SECONDS from `now`."""
    body = {
        "u": int(user_id),
        "n": secrets.token_urlsafe(12),
        "e": int((time.time() if now is None else now) + LIFETIME_SECONDS),
    }
    payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
    return f"{payload}.{_sign(settings, payload)}"


_ALTERED = (
    "Your saved demo sign-in was altered or is not from this server, so you were signed out. "
    "Sign in again below."
)
_EXPIRED = "Your saved demo sign-in has expired, so you were signed out. Sign in again below."


def read(settings: Settings, value: str, *, now: float | None = None) -> DemoSession:
    """The session a cookie value carries; DemoSessionRefused when it is altered or expired."""
    if not settings.demo_login:
        raise DemoSessionRefused(
            "Demo sign-in is off on this server, so a saved demo sign-in is not accepted. "
            "Sign in with your organisation's account."
        )
    payload, _, signature = value.partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(settings, payload)):
        raise DemoSessionRefused(_ALTERED)
    try:
        body = json.loads(base64.urlsafe_b64decode(payload.encode()))
        session = DemoSession(int(body["u"]), str(body["n"]), int(body["e"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise DemoSessionRefused(_ALTERED) from None
    if session.expires <= (time.time() if now is None else now):
        raise DemoSessionRefused(_EXPIRED)
    return session


def principal(db: Database, settings: Settings, value: str) -> Principal:
    """The demo user a cookie value signs in; DemoSessionRefused when it may not."""
    session = read(settings, value)
    try:
        user = users.principal_by_id(db, session.user_id)
    except NotFound:
        raise DemoSessionRefused(
            "The demo user of your saved sign-in no longer exists, so you were signed out. "
            "Sign in again below."
        ) from None
    if not any(u.id == session.user_id and u.is_active for u, _ in users.demo_users(db)):
        raise DemoSessionRefused(
            "Your saved sign-in is not a demo user's, so it is not accepted. Sign in again below."
        )
    return user
