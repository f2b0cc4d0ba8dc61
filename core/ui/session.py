"""Engine cache, the signed-in principal, and the gate every page passes through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from core.auth import Principal
from core.config import Settings, get_settings
from core.db import Database
from core.errors import ConfigurationError, NotFound, QuorumError
from core.models import ROLE_LABELS, Role
from core.services import demo_session, users
from core.ui.nav import spec_for, visible_pages

USER_KEY = "quorum_user_id"
FLASH_KEY = "quorum_flash"
# The demo session cookie: read at most once per Streamlit session (and never after sign-out);
# a pending "set"/"clear" is sent to the API by the browser on the next run.
COOKIE_READ_KEY = "quorum_demo_cookie_read"
COOKIE_PENDING_KEY = "quorum_demo_cookie_pending"
COOKIE_REFUSED_KEY = "quorum_demo_cookie_refused"
SESSION_ENDPOINT = "/api/v1/session/demo"
# On a phone the sidebar covers the page. Streamlit folds it after a click in its own page
# list, but not after a click on an st.page_link, which is how our sidebar lists the pages a
# person may open: this fixed script (no user content) folds it on narrow screens.
FOLD_SIDEBAR_ON_PHONE = """<script>
if (!window.__quorumFoldSidebar) {
  window.__quorumFoldSidebar = true;
  document.addEventListener("click", (event) => {
    const link = event.target.closest('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]');
    if (!link || !window.matchMedia("(max-width: 768px)").matches) return;
    setTimeout(() => {
      const fold = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
      if (fold) fold.click();
    }, 0);
  }, true);
}
</script>"""


@dataclass(frozen=True)
class PageContext:
    db: Database
    principal: Principal
    settings: Settings


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    return Database(url)


def database() -> Database:
    return _database(get_settings().database_url)


@st.cache_resource(show_spinner=False)
def _scheduler(url: str) -> bool:
    """Start this server process's scheduler once (core.scheduler.start is idempotent)."""
    from core import scheduler

    return scheduler.start(get_settings()) is not None


def page(path: str, *, layout: Literal["centered", "wide"] = "wide") -> PageContext:
    """Set up a page: sign-in gate, sidebar, permission check. Stops the script if refused."""
    spec = spec_for(path)
    st.set_page_config(
        page_title=f"{spec.label} · Quorum", page_icon=":material/how_to_vote:", layout=layout
    )
    settings = _settings_or_stop()
    if settings.demo_login:
        demo_banner()
    db = database()
    if settings.scheduler:
        _scheduler(settings.database_url)
    principal = _signed_in(db, settings)
    _send_demo_cookie()
    if principal is None:
        _sign_in_screen(db, settings)
        st.stop()
    assert principal is not None
    _sidebar(principal, settings)
    if spec.permission is not None and not principal.can_anywhere(spec.permission):
        st.title(spec.label)
        st.error(
            f"You cannot open {spec.label}: it needs permission to {spec.permission.value}, "
            "which none of your roles gives. Ask an admin for the role, or go back to Home."
        )
        st.page_link("app.py", label="Back to Home", icon=":material/home:")
        st.stop()
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    return PageContext(db, principal, settings)


def flash(message: str) -> None:
    """Show `message` at the top of the next run (use before st.rerun)."""
    st.session_state[FLASH_KEY] = message


def _settings_or_stop() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as error:
        st.title("Quorum cannot start")
        fail(error)
        st.stop()
        raise


def _signed_in(db: Database, settings: Settings) -> Principal | None:
    if settings.demo_login:
        user_id = st.session_state.get(USER_KEY)
        if user_id is None:
            return _from_demo_cookie(db, settings)
        try:
            return users.principal_by_id(db, int(user_id))
        except NotFound:
            st.session_state.pop(USER_KEY, None)
            return None
    if not st.user.get("is_logged_in"):
        return None
    if USER_KEY not in st.session_state:
        try:
            principal = users.sign_in_from_claims(
                db, dict(st.user.to_dict()), roles_claim=settings.oidc_roles_claim
            )
        except QuorumError as error:
            st.error(error.user_message)
            st.stop()
        st.session_state[USER_KEY] = principal.user_id
    return users.principal_by_id(db, int(st.session_state[USER_KEY]))


def _from_demo_cookie(db: Database, settings: Settings) -> Principal | None:
    """Sign in again the demo user of a cookie this server set (reload, deep link, new tab)."""
    if st.session_state.get(COOKIE_READ_KEY):
        return None
    st.session_state[COOKIE_READ_KEY] = True
    value = st.context.cookies.get(demo_session.COOKIE)
    if not isinstance(value, str) or not value:  # AppTest's context holds no real cookies
        return None
    try:
        principal = demo_session.principal(db, settings, value)
    except demo_session.DemoSessionRefused as refused:
        st.session_state[COOKIE_REFUSED_KEY] = refused.user_message
        st.session_state[COOKIE_PENDING_KEY] = None
        return None
    st.session_state[USER_KEY] = principal.user_id
    return principal


def _send_demo_cookie() -> None:
    """Ask the browser to have the API set (or clear) the demo session cookie.

    The pages talk over a websocket, which cannot set a cookie; the script below posts the
    signed value (made by this server, never user content) to the API, whose answer sets it."""
    if COOKIE_PENDING_KEY not in st.session_state:
        return
    value = st.session_state.pop(COOKIE_PENDING_KEY)
    if value is None:
        call = f'fetch("{SESSION_ENDPOINT}", {{method: "DELETE", credentials: "same-origin"}})'
    else:
        body = json.dumps(json.dumps({"value": value}))
        call = (
            f'fetch("{SESSION_ENDPOINT}", {{method: "POST", credentials: "same-origin", '
            f'headers: {{"Content-Type": "application/json"}}, body: {body}}})'
        )
    st.html(f"<script>{call};</script>", unsafe_allow_javascript=True)


def _sign_in_screen(db: Database, settings: Settings) -> None:
    st.title("Quorum")
    st.write(
        "Decide together which models reach production, watch them there, "
        "and prove who signed off on what."
    )
    if settings.demo_login:
        refused = st.session_state.pop(COOKIE_REFUSED_KEY, None)
        if refused:
            st.error(refused, icon=":material/logout:")
        _demo_sign_in(db, settings)
    else:
        _oidc_sign_in()


def _demo_sign_in(db: Database, settings: Settings) -> None:
    people = users.demo_users(db)
    if not people:
        st.error(
            "There are no demo users yet. Run `make run` (or `quorum admin demo seed`) to create them."
        )
        return
    st.subheader("Sign in as a demo user")
    for user, grants in people:
        roles = ", ".join(sorted({ROLE_LABELS[Role(g.role)] for g in grants})) or "no roles"
        cols = st.columns([3, 4, 2])
        cols[0].markdown(f"**{user.name}**  \n{user.email}")
        cols[1].write(roles)
        if cols[2].button("Sign in", key=f"demo_sign_in_{user.id}", icon=":material/login:"):
            st.session_state[USER_KEY] = user.id
            st.session_state[COOKIE_READ_KEY] = True
            st.session_state[COOKIE_PENDING_KEY] = demo_session.issue(settings, user.id or 0)
            st.rerun()


def _oidc_sign_in() -> None:
    st.info("Sign in with your organisation's account to continue.")
    if st.button("Sign in", type="primary", key="oidc_sign_in", icon=":material/login:"):
        try:
            st.login()
        except Exception as error:  # noqa: BLE001  (streamlit raises plain errors on bad config)
            st.error(
                "Sign-in is not configured: "
                f"{error}. Set the QUORUM_OIDC_* settings (see the README) and restart."
            )


def demo_banner() -> None:
    """On every page while demo sign-in is on: nobody here is who they say they are."""
    st.warning(
        "Demo mode: anyone can sign in as any demo user, the admin included, with no password. "
        "Use it to try Quorum; set QUORUM_AUTH=oidc for real use.",
        icon=":material/science:",
    )


def sign_out() -> None:
    st.session_state.clear()
    if get_settings().demo_login:
        # this session's handshake still carries the cookie: do not read it again, and have
        # the browser drop it so a reload stays signed out
        st.session_state[COOKIE_READ_KEY] = True
        st.session_state[COOKIE_PENDING_KEY] = None
    if not get_settings().demo_login and st.user.get("is_logged_in"):
        st.logout()  # redirects through the provider; a rerun here would drop that message
        return
    st.rerun()


def _sidebar(principal: Principal, settings: Settings) -> None:
    with st.sidebar:
        st.markdown("### Quorum")
        for spec in visible_pages(principal):
            st.page_link(spec.path, label=spec.label, icon=spec.icon)
        st.divider()
        st.caption("Signed in as")
        st.text(f"{principal.name}\n{principal.email}")
        roles = sorted({ROLE_LABELS[g.role] for g in principal.grants})
        st.caption("Roles: " + (", ".join(roles) or "none yet — ask an admin"))
        if settings.demo_login:
            st.caption("Demo mode")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            sign_out()
        st.html(FOLD_SIDEBAR_ON_PHONE, unsafe_allow_javascript=True)


def fail(error: QuorumError) -> None:
    """Show a refused or failed action: what happened and what to do next."""
    st.error(error.user_message, icon=":material/error:")
    for detail in error.details:
        st.text(f"• {detail}")
