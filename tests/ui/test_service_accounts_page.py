"""Service accounts on the Admin and Profile pages: created with a token shown once, listed,
revoked; the Home page still draws with the API app defined in app.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core import config, demo, migrate
from core.db import Database
from core.models import AuditEvent, User
from core.ui.session import USER_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-sa') / 'quorum.db'}"
    migrate.upgrade(url)
    database = Database(url)
    demo.seed(database, with_models=False)
    database.dispose()
    return url


@pytest.fixture(autouse=True)
def _clean(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("QUORUM_DATABASE_URL", store_url)
    monkeypatch.delenv("QUORUM_AUTH", raising=False)
    config.reset_settings()
    st.session_state.clear()
    st.cache_resource.clear()
    yield
    st.session_state.clear()
    st.cache_resource.clear()
    config.reset_settings()


def _user_id(url: str, address: str) -> int:
    database = Database(url)
    with database.read() as session:
        user_id = session.exec(select(User.id).where(User.email == address)).one()
    database.dispose()
    assert user_id is not None
    return user_id


def _open(path: str, user_id: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[USER_KEY] = user_id
    if path != "app.py":
        at.switch_page(path)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_admin_creates_lists_and_revokes_a_service_account(store_url: str) -> None:
    at = _open("pages/8_Admin.py", _user_id(store_url, "ada@demo.quorum"))
    at.text_input(key="sa_name").set_value("ci-nightly")
    at.button(key="FormSubmitter:new_service_account-Create service account").click()
    at.run()
    assert not at.exception
    secrets = [c.value for c in at.code]
    assert len(secrets) == 1 and secrets[0].startswith("qrm_")
    assert "ci-nightly" in at.dataframe[-1].value["Name"].tolist()
    at.run()  # the token is shown once
    assert not [c.value for c in at.code if c.value.startswith("qrm_")]
    at.button(key="FormSubmitter:revoke_service_account-Revoke service account").click()
    at.run()
    assert any("revoked" in s.value for s in at.success)
    database = Database(store_url)
    with database.read() as session:
        actions = [e.action for e in session.exec(select(AuditEvent))]
    database.dispose()
    assert "service_account.created" in actions and "service_account.revoked" in actions


def test_profile_lists_the_service_accounts_of_my_teams(store_url: str) -> None:
    at = _open("pages/9_Profile.py", _user_id(store_url, "dana@demo.quorum"))
    assert "Service accounts of my teams" in [s.value for s in at.subheader]


def test_home_still_draws_with_the_api_defined_in_app_py(store_url: str) -> None:
    at = _open("app.py", _user_id(store_url, "dana@demo.quorum"))
    assert "Home" in [t.value for t in at.title]
