"""The demo session cookie: only values this server signed, before they expire, while demo
sign-in is on; the API sets such a value as an httponly SameSite=Lax cookie and refuses others."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.config import Settings
from core.db import Database
from core.services import demo_session
from core.services.demo_session import DemoSessionRefused

SECRET = "cookie-secret-for-the-demo-session-" + "1" * 32
DEMO = Settings(auth="demo", cookie_secret=SECRET)


def test_a_signed_value_reads_back_its_user_and_expiry() -> None:
    value = demo_session.issue(DEMO, 42, now=1_000_000)
    session = demo_session.read(DEMO, value, now=1_000_001)
    assert session.user_id == 42
    assert session.expires == 1_000_000 + demo_session.LIFETIME_SECONDS
    assert demo_session.issue(DEMO, 42, now=1_000_000) != value  # a fresh nonce each time


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # signature altered
        lambda v: demo_session.issue(DEMO, 7).partition(".")[0] + "." + v.partition(".")[2],
        lambda v: v.partition(".")[0],  # no signature
        lambda v: "",
        lambda v: "not base64!." + v.partition(".")[2],
    ],
)
def test_an_altered_value_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    value = demo_session.issue(DEMO, 42)
    with pytest.raises(DemoSessionRefused, match="altered"):
        demo_session.read(DEMO, change(value))


def test_another_servers_secret_and_an_expired_value_are_refused() -> None:
    other = Settings(auth="demo", cookie_secret="another-cookie-secret-" + "2" * 32)
    with pytest.raises(DemoSessionRefused, match="altered"):
        demo_session.read(DEMO, demo_session.issue(other, 42))
    old = demo_session.issue(DEMO, 42, now=time.time() - demo_session.LIFETIME_SECONDS - 1)
    with pytest.raises(DemoSessionRefused, match="expired"):
        demo_session.read(DEMO, old)


def test_no_demo_session_when_demo_sign_in_is_off() -> None:
    value = demo_session.issue(DEMO, 42)
    oidc = Settings(auth="oidc", cookie_secret=SECRET)
    with pytest.raises(DemoSessionRefused, match="Demo sign-in is off"):
        demo_session.read(oidc, value)


def test_the_api_sets_only_a_value_it_signed_and_clears_it(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'q.db'}", auth="demo", cookie_secret=SECRET
    )
    client = TestClient(create_app(settings, db=Database(settings.database_url)))
    value = demo_session.issue(settings, 3)
    answer = client.post("/session/demo", json={"value": value})
    assert answer.status_code == 204
    header = answer.headers["set-cookie"]
    assert header.startswith(f"{demo_session.COOKIE}={value};")
    assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header

    forged = client.post("/session/demo", json={"value": value + "0"})
    assert forged.status_code == 401
    assert "set-cookie" not in forged.headers
    assert "altered" in forged.json()["detail"]

    cleared = client.delete("/session/demo")
    assert cleared.status_code == 204
    assert cleared.headers["set-cookie"].startswith(f'{demo_session.COOKIE}="";')
