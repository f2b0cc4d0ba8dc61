"""Every page x every demo role through AppTest: content for those allowed, the refusal for
the rest (a deep link cannot skip the gate), and the demo sign-in list when signed out."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import config, demo, policy
from core.models import Role
from core.ui import nav, widgets
from core.ui.session import USER_KEY
from tests.ui.conftest import shown_tab
from tests.ui.kit import (
    EMAIL_BY_ROLE,
    NO_ROLE_EMAIL,
    ROLES,
    ROOT,
    TIMEOUT,
    DemoStore,
    frame_values,
    labels,
    open_page,
    texts,
)


@pytest.fixture(autouse=True)
def _clean_streamlit(demo_store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("QUORUM_ENV", "QUORUM_AUTH", "QUORUM_SECRET_KEY", "QUORUM_COOKIE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUORUM_DATABASE_URL", demo_store.url)
    config.reset_settings()
    st.session_state.clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.session_state.clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    config.reset_settings()


# --- a content signal for each page ----------------------------------------------------------


def home_content(at: AppTest) -> None:
    subheaders = [s.value for s in at.subheader]
    assert "Waiting for me" in subheaders and "Portfolio" in subheaders
    assert [m.label for m in at.metric][:2] == ["Models", "Live deployments"]
    assert "credit-default-scorer" in frame_values(at)


def models_content(at: AppTest) -> None:
    box = at.selectbox(key="models_choice")
    assert "credit-default-scorer" in box.options
    assert "bike-demand-forecaster" in frame_values(at)


def audit_content(at: AppTest) -> None:
    assert at.button(key="audit_verify").proto.label == "Verify the chain"
    assert "model.created" in at.selectbox(key="audit_action").options
    assert "events (newest first" in texts(at)
    assert "Export CSV" in labels(at, "download_button")
    assert "Checkpoints" in [s.value for s in at.subheader]
    public_key = at.text_input(key="audit_public_key").value
    assert len(base64.b64decode(public_key)) == 32  # the Ed25519 key that checks checkpoints
    assert any("No checkpoint yet" in w.value for w in at.warning)
    at.button(key="audit_verify").click().run()
    verdict = [s.value for s in at.success]
    assert any(v.startswith("Audit trail intact") and "No checkpoint" in v for v in verdict)


def admin_content(at: AppTest) -> None:
    assert "ada@demo.quorum" in frame_values(at)
    assert {"Grant role", "Add person", "Create team"} <= labels(at, "button")
    assert {"Save a new version", "Add mapping"} <= labels(at, "button")
    # the approval-policy form is drawn from the schema: every field has its widget
    shown = labels(at, "number_input") | labels(at, "checkbox") | labels(at, "multiselect")
    shown |= labels(at, "selectbox")  # a field of one choice (blocking finding severity)
    for spec in policy.FIELDS:
        if spec.kind == "meaning_roles":
            assert all(f"May sign '{m}'" in shown for m in policy.MEANINGS)
        else:
            assert any(label.startswith(spec.label) for label in shown), spec.label
    assert "Nothing waits for a second admin." in [i.value for i in at.info]
    assert {"Add webhook", "Allow host"} <= labels(at, "button")  # the Notifications tab


def profile_content(at: AppTest) -> None:
    assert "Personal access tokens" in [s.value for s in at.subheader]
    assert "Create token" in labels(at, "button")
    assert at.text_input(key="token_name") is not None
    assert "Notifications" in [s.value for s in at.subheader]
    assert "Save notification choices" in labels(at, "button")
    assert at.checkbox(key="pref_digest").value is False


def some_content(at: AppTest) -> None:
    """Pages outside the foundation: more than a title on the page."""
    assert len(list(at.main)) > 1


def nothing_visible(at: AppTest) -> None:
    """A signed-in person with no role belongs to no team, so no model is there for them."""
    shown = texts(at) + frame_values(at) + "\n".join(i.value for i in at.info)
    assert "No model is visible to you" in shown
    options = [o for box in at.selectbox for o in box.options]
    for name in ("credit-default-scorer", "bike-demand-forecaster"):
        assert name not in shown and name not in options


NOTHING_VISIBLE = ("app.py", "pages/1_Models.py")

CONTENT: dict[str, Callable[[AppTest], None]] = {
    "app.py": home_content,
    "pages/1_Models.py": models_content,
    "pages/7_Audit.py": audit_content,
    "pages/8_Admin.py": admin_content,
    "pages/9_Profile.py": profile_content,
}


def may_open(spec: nav.PageSpec, role: Role | None) -> bool:
    if spec.permission is None:
        return True
    from core.auth import ROLE_PERMISSIONS

    return role is not None and spec.permission in ROLE_PERMISSIONS[role]


CASES = [
    pytest.param(spec, role, id=f"{spec.path}-{'no_role' if role is None else role.value}")
    for spec in nav.PAGES
    for role in ROLES
]


@pytest.mark.parametrize(("spec", "role"), CASES)
def test_page_for_role(spec: nav.PageSpec, role: Role | None, demo_store: DemoStore) -> None:
    at = open_page(spec.path, demo_store.user_ids[role])
    assert [t.value for t in at.title][:1] == [spec.label]
    sidebar = "\n".join(e.value for e in at.sidebar.get("text"))
    assert EMAIL_BY_ROLE[role] in sidebar
    assert sum("Demo mode" in w.value for w in at.warning) == 1, "every page says demo mode"
    refusal = [e.value for e in at.error if e.value.startswith(f"You cannot open {spec.label}")]
    if may_open(spec, role) and role is None and spec.path in NOTHING_VISIBLE:
        assert refusal == []
        nothing_visible(at)
    elif may_open(spec, role):
        assert refusal == []
        CONTENT.get(spec.path, some_content)(at)
    else:
        assert len(refusal) == 1 and "Ask an admin" in refusal[0]
        assert len(at.title) == 1 and at.dataframe.len == 0 and at.button.len <= 1


def test_every_page_file_is_gated_by_the_nav_table() -> None:
    files = {"app.py"} | {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert files == {spec.path for spec in nav.PAGES}
    for path in files:
        assert f'page("{path}"' in (ROOT / path).read_text()


@pytest.mark.parametrize("path", [spec.path for spec in nav.PAGES])
def test_signed_out_sees_the_demo_sign_in_list(path: str) -> None:
    at = open_page(path, None)
    assert [t.value for t in at.title] == ["Quorum"]
    assert "Sign in as a demo user" in [s.value for s in at.subheader]
    assert any("Demo mode" in w.value for w in at.warning)
    listed = texts(at)
    emails = {person.email for person in demo.DEMO_PEOPLE} | {NO_ROLE_EMAIL}
    for email in emails:
        assert email in listed
    assert "Reviewer" in listed
    assert sum(1 for b in at.button if b.proto.label == "Sign in") == len(emails)
    assert at.dataframe.len == 0


def test_demo_sign_in_then_sign_out(demo_store: DemoStore) -> None:
    at = open_page("app.py", None)
    at.button(key=f"demo_sign_in_{demo_store.user_ids[Role.REVIEWER]}").click().run()
    assert at.session_state[USER_KEY] == demo_store.user_ids[Role.REVIEWER]
    assert [t.value for t in at.title][:1] == ["Home"]
    assert "Welcome, Riley Reviewer." in texts(at)
    at.sidebar.button(key="sign_out").click().run()
    assert USER_KEY not in at.session_state
    assert "Sign in as a demo user" in [s.value for s in at.subheader]


def test_sidebar_lists_only_pages_the_role_may_open(demo_store: DemoStore) -> None:
    for role in (Role.BUSINESS, Role.ADMIN):
        at = open_page("app.py", demo_store.user_ids[role])
        links = {link.proto.label for link in at.sidebar.get("page_link")}
        assert links == {s.label for s in nav.PAGES if may_open(s, role)}


def test_unknown_user_id_falls_back_to_sign_in() -> None:
    at = open_page("pages/8_Admin.py", 987654)
    assert "Sign in as a demo user" in [s.value for s in at.subheader]
    assert USER_KEY not in at.session_state


def test_a_page_load_starts_the_one_scheduler_of_the_process(
    demo_store: DemoStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from core import scheduler

    monkeypatch.setenv("QUORUM_SCHEDULER", "on")
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_STORE", str(tmp_path / "checkpoints"))
    config.reset_settings()
    try:
        open_page("app.py", demo_store.user_ids[Role.ADMIN])
        started = scheduler._instance
        assert started is not None and started.running
        assert started.db.url == demo_store.url
        open_page("pages/7_Audit.py", demo_store.user_ids[Role.ADMIN])
        assert scheduler._instance is started  # once per process, however many pages load
    finally:
        scheduler.stop()


TAB_LINKS = [
    pytest.param(
        "pages/1_Models.py", {"model": "credit-default-scorer"}, "Model card", id="models"
    ),
    pytest.param("pages/8_Admin.py", {}, "Teams", id="admin"),
]


@pytest.mark.parametrize(("path", "params", "label"), TAB_LINKS)
def test_a_tab_link_opens_that_tab_and_reruns_keep_it(
    path: str, params: dict[str, str], label: str, demo_store: DemoStore
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[USER_KEY] = demo_store.user_ids[Role.ADMIN]
    at.switch_page(path)
    at.query_params.update({**params, "tab": widgets.slug(label)})
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert shown_tab(at) == label
    at.run()
    assert shown_tab(at) == label
    assert at.query_params["tab"] == widgets.slug(label)


def test_opening_another_model_keeps_the_open_tab(demo_store: DemoStore) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[USER_KEY] = demo_store.user_ids[Role.BUSINESS]
    at.switch_page("pages/1_Models.py")
    at.query_params.update({"model": "credit-default-scorer", "tab": "evaluation"})
    at.run()
    assert shown_tab(at) == "Evaluation"
    at.selectbox(key="models_choice").select("bike-demand-forecaster").run()
    assert not at.exception, [e.message for e in at.exception]
    assert [h.value for h in at.header] == ["bike-demand-forecaster"]
    assert shown_tab(at) == "Evaluation"
    assert at.query_params["model"] == "bike-demand-forecaster"
    assert at.query_params["tab"] == "evaluation"
    assert at.query_params["version"] == "3"  # the deep link names the version shown: the latest
