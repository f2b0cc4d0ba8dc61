"""The real OpenID Connect login: Chromium, Quorum with QUORUM_AUTH=oidc, a local provider.

oidc-provider-mock runs in a thread with Alice's claims (roles included); Quorum reads the
`[auth]` secrets written from its own settings. Alice signs in on the provider's form, lands
back signed in with the reviewer role taken from her claim, is refused the Admin page, and
signs out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from core import oidc_dev
from core.services import users
from tests.e2e.conftest import AppServer, Store, free_port, wait_idle

pytestmark = pytest.mark.e2e

ALICE: dict[str, Any] = {
    "sub": "alice",
    "email": "alice@example.com",
    "name": "Alice Reviewer",
    "roles": ["reviewer"],
}


@pytest.fixture(scope="module")
def provider_port() -> Iterator[int]:
    with oidc_dev.running_provider(free_port(), [ALICE]) as port:
        yield port


@pytest.fixture(scope="module")
def oidc_app(
    module_store: Store, provider_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("oidc")
    app_port = free_port()
    settings = oidc_dev.oidc_settings(provider_port, app_port)
    assert "reviewer" in oidc_dev.map_sample_roles(module_store.database())
    secrets = oidc_dev.write_secrets(settings, folder / "secrets.toml")
    assert 'server_metadata_url = "http://127.0.0.1:' in secrets.read_text()
    server = AppServer(
        store=module_store,
        log=folder / "streamlit.log",
        auth="oidc",
        extra_env=oidc_dev.app_env(settings),
        secrets_file=secrets,
        port=app_port,
    ).start()
    yield server
    server.stop()


def _sign_in_with_provider(page: Page, app: AppServer, subject: str) -> None:
    page.goto(app.url)
    expect(page.get_by_text("Sign in with your organisation's account")).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_placeholder("sub").fill(subject)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(re.escape(app.url) + r"/?(\?.*)?$"))
    page.get_by_role("heading", level=1, name="Home").wait_for()
    wait_idle(page)


def test_sign_in_through_the_provider_maps_claims_and_roles(
    page: Page,
    oidc_app: AppServer,
    module_store: Store,
) -> None:
    _sign_in_with_provider(page, oidc_app, ALICE["sub"])
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Alice Reviewer")).to_be_visible()
    expect(page.get_by_text("Welcome, Alice Reviewer.")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Reviews")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Register a version")).to_have_count(0)
    expect(sidebar.get_by_text("Demo mode")).to_have_count(0)

    alice = users.principal_by_email(module_store.database(), ALICE["email"])
    assert alice.name == "Alice Reviewer"
    assert {str(g.role) for g in alice.grants} == {"reviewer"}

    page.goto(f"{oidc_app.url}/Admin")
    expect(page.get_by_role("heading", level=1, name="Admin")).to_be_visible()
    wait_idle(page)
    expect(page.get_by_text("You cannot open Admin")).to_be_visible()
    expect(page.get_by_role("tab", name="People and roles")).to_have_count(0)

    page.goto(f"{oidc_app.url}/Reviews")
    expect(page.get_by_role("heading", level=1, name="Reviews")).to_be_visible()
    wait_idle(page)
    expect(page.get_by_role("heading", name="My queue")).to_be_visible()


def test_sign_out_ends_the_session(page: Page, oidc_app: AppServer) -> None:
    _sign_in_with_provider(page, oidc_app, ALICE["sub"])
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="End Session")).to_be_visible()
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(re.compile(re.escape(oidc_app.url)))
    signed_out = page.get_by_text("Sign in with your organisation's account")
    page.goto(oidc_app.url)
    expect(signed_out).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_have_count(0)
