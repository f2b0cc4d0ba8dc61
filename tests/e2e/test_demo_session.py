"""A demo sign-in survives a reload and a deep link; a tampered or expired cookie signs out.

The cookie is set by the API after the sign-in run (the pages' websocket cannot set one), so
each test first waits until the browser holds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from core.config import Settings
from core.services import demo_session
from tests.e2e.conftest import (
    DEMO_NAMES,
    AppServer,
    Store,
    as_demo_user,
    open_app,
    sign_out,
    wait_idle,
)

pytestmark = pytest.mark.e2e

COOKIE_SECRET = "demo-session-cookie-secret-" + "7" * 32
SETTINGS = Settings(auth="demo", cookie_secret=COOKIE_SECRET)
MODEL = "bike-demand-forecaster"


@pytest.fixture(scope="module")
def session_app(
    module_store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    server = AppServer(
        store=module_store, log=log, extra_env={"QUORUM_COOKIE_SECRET": COOKIE_SECRET}
    ).start()
    yield server
    server.stop()


def _cookie(context: BrowserContext) -> dict | None:
    found = [c for c in context.cookies() if c["name"] == demo_session.COOKIE]
    return dict(found[0]) if found else None


def _wait_for_cookie(context: BrowserContext, present: bool = True) -> dict | None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cookie = _cookie(context)
        if (cookie is not None) == present:
            return cookie
        time.sleep(0.1)
    raise AssertionError(f"the demo session cookie was {'never set' if present else 'kept'}")


def _signed_in_as(page: Page, who: str) -> None:
    expect(page.get_by_test_id("stSidebar").get_by_text(DEMO_NAMES[who])).to_be_visible()


def _demo_user_id(store: Store, email_part: str) -> int:
    from core.services import users

    db = store.database()
    try:
        ids = [u.id for u, _ in users.demo_users(db) if email_part in u.email]
    finally:
        db.dispose()
    assert ids, f"no demo user with {email_part!r} in the email"
    return int(ids[0] or 0)


def test_reload_and_deep_link_keep_the_demo_user(
    page: Page, context: BrowserContext, session_app: AppServer
) -> None:
    as_demo_user(page, session_app, "riley")
    cookie = _wait_for_cookie(context)
    assert cookie is not None
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["expires"] > time.time() + 3600

    page.reload()
    wait_idle(page, since=0)
    _signed_in_as(page, "riley")
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()

    open_app(page, session_app, f"Models?model={MODEL}&version=1")
    _signed_in_as(page, "riley")
    expect(page.get_by_role("heading", name=MODEL, exact=True)).to_be_visible()
    expect(page.get_by_role("combobox", name="Open a model", exact=True)).to_have_value(MODEL)

    sign_out(page)
    expect(page.get_by_role("button", name="Sign in").first).to_be_visible()
    _wait_for_cookie(context, present=False)
    page.reload()
    wait_idle(page, since=0)
    expect(page.get_by_role("button", name="Sign in").first).to_be_visible()


@pytest.mark.parametrize("how", ["tampered", "expired"])
def test_a_tampered_or_expired_cookie_signs_out_with_a_message(
    page: Page, context: BrowserContext, session_app: AppServer, how: str
) -> None:
    user_id = _demo_user_id(session_app.store, "blake")
    if how == "tampered":
        good = demo_session.issue(SETTINGS, user_id)
        payload, _, signature = good.partition(".")
        other = demo_session.issue(SETTINGS, _demo_user_id(session_app.store, "ada"))
        value = f"{other.partition('.')[0]}.{signature}"  # someone else's id, Blake's signature
        message = "altered"
    else:
        value = demo_session.issue(SETTINGS, user_id, now=time.time() - 2 * 86400)
        message = "expired"
    context.add_cookies(
        [{"name": demo_session.COOKIE, "value": value, "url": session_app.url, "httpOnly": True}]
    )
    open_app(page, session_app, f"Models?model={MODEL}")
    expect(
        page.get_by_text(
            f"Your saved demo sign-in {'was' if how == 'tampered' else 'has'} {message}"
        ).first
    ).to_be_visible()
    expect(page.get_by_role("button", name="Sign in").first).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text(DEMO_NAMES["ada"])).to_have_count(0)
    _wait_for_cookie(context, present=False)


def test_a_valid_cookie_from_another_tab_signs_in_on_the_deep_link(
    page: Page, context: BrowserContext, session_app: AppServer
) -> None:
    value = demo_session.issue(SETTINGS, _demo_user_id(session_app.store, "blake"))
    context.add_cookies(
        [{"name": demo_session.COOKIE, "value": value, "url": session_app.url, "httpOnly": True}]
    )
    open_app(page, session_app, f"Models?model={MODEL}")
    _signed_in_as(page, "blake")
    expect(page.get_by_role("heading", name=MODEL, exact=True)).to_be_visible()
