"""What the AppTest page tests share: the full demo store (trained versions, monitoring data),
built once per session and copied for each module, and the demo person holding each role."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import streamlit as st
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core import config, demo, migrate
from core.db import Database
from core.models import Role, User
from tests.ui.kit import EMAIL_BY_ROLE, NO_ROLE_EMAIL, DemoStore
from tests.ui.sweep import ENVIRONMENTS


@pytest.fixture(scope="session")
def one_audit_key() -> Iterator[None]:
    """The demo template and every module's copy share one audit key, so the copies' trails
    verify (the development key is otherwise generated per store location)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUORUM_AUDIT_KEY", "ui-tests-audit-key-" + "3" * 32)
        config.reset_settings()
        yield
    config.reset_settings()


@pytest.fixture(scope="session")
def demo_template(
    one_audit_key: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[Role | None, int]]:
    """The demo seed (it trains real models, about 20 s), once per test session, plus a
    signed-in person without any role."""
    path = tmp_path_factory.mktemp("demo_template") / "quorum.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    database = Database(url)
    demo.seed(database, with_models=True)
    with database.write() as session:
        session.add(User(email=NO_ROLE_EMAIL, name="Nora Noroles", is_demo=True))
    with database.read() as session:
        ids = {
            role: session.exec(select(User.id).where(User.email == email)).one()
            for role, email in EMAIL_BY_ROLE.items()
        }
    database.dispose()
    return path, ids


@pytest.fixture(scope="module")
def demo_store(
    demo_template: tuple[Path, dict[Role | None, int]], tmp_path_factory: pytest.TempPathFactory
) -> DemoStore:
    """A private copy of the demo store for one test module (artifacts are shared, read-only)."""
    source, ids = demo_template
    target = tmp_path_factory.mktemp("demo_copy") / "quorum.db"
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return DemoStore(f"sqlite:///{target}", ids)


@pytest.fixture(scope="module")
def demo_env(demo_store: DemoStore) -> Iterator[DemoStore]:
    """Settings point at this module's copy of the demo store. The pages only read it, so the
    Streamlit caches (the champion comparisons above all) are kept across the module's tests
    and cleared only before and after it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("QUORUM_ENV", "QUORUM_AUTH", "QUORUM_SECRET_KEY", "QUORUM_COOKIE_SECRET"):
            patch.delenv(name, raising=False)
        patch.setenv("QUORUM_DATABASE_URL", demo_store.url)
        patch.setenv("QUORUM_ENVIRONMENTS", ",".join(ENVIRONMENTS))
        config.reset_settings()
        st.cache_data.clear()
        st.cache_resource.clear()
        yield demo_store
        st.cache_data.clear()
        st.cache_resource.clear()
    config.reset_settings()


def shown_tab(at: AppTest) -> str:
    """The label of the tab the server tells the browser to show (the page has one st.tabs)."""
    (container,) = [node for node in at if getattr(node, "type", "") == "tab_container"]
    labels = [tab.label for tab in container.children.values()]
    return labels[container.proto.tab_container.default_tab_index]
