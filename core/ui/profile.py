"""Profile page sections."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.errors import QuorumError
from core.models import ROLE_LABELS
from core.services import users
from core.services.notifications import preferences
from core.services.notifications.events import EVENTS
from core.ui import admin
from core.ui.session import PageContext, fail, flash

NEW_TOKEN_KEY = "profile_new_token"  # noqa: S105


def roles_section(ctx: PageContext) -> None:
    st.subheader("My roles")
    with ctx.db.read() as session:
        teams = {t.id: t.name for t in users.list_teams(session)}
    if not ctx.principal.grants:
        st.info("You hold no roles yet. Ask an admin to grant you one.")
    for grant in ctx.principal.grants:
        scope = "all teams" if grant.team_id is None else f"team {teams.get(grant.team_id)}"
        st.text(f"{ROLE_LABELS[grant.role]} — {scope}")


def tokens_section(ctx: PageContext) -> None:
    st.subheader("Personal access tokens")
    st.caption(
        "The CLI (`quorum ...`) and the Python SDK act as you with a token: set it as "
        "QUORUM_TOKEN, and QUORUM_URL to this server's address. A token is shown once; Quorum "
        "stores only its hash."
    )
    secret = st.session_state.pop(NEW_TOKEN_KEY, None)
    if secret:
        st.success("Token created. Copy it now: it will not be shown again.")
        st.code(secret, language=None)
    with st.form("new_token", clear_on_submit=True):
        name = st.text_input("Token name", key="token_name", placeholder="laptop CLI")
        days = st.number_input(
            "Valid for (days)", min_value=1, max_value=366, value=90, key="token_days"
        )
        if st.form_submit_button("Create token", type="primary"):
            try:
                new = users.create_token(ctx.db, ctx.principal, name, days=int(days))
                st.session_state[NEW_TOKEN_KEY] = new.secret
                st.rerun()
            except QuorumError as error:
                fail(error)
    with ctx.db.read() as session:
        tokens = users.tokens_of(session, ctx.principal.user_id)
    if not tokens:
        st.caption("You have no tokens.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": t.name,
                    "Starts with": t.prefix + "…",
                    "Created (UTC)": t.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Expires": t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never",
                    "Last used": t.last_used_at.strftime("%Y-%m-%d %H:%M")
                    if t.last_used_at
                    else "—",
                    "Status": "revoked" if t.revoked_at else "active",
                }
                for t in tokens
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    active = [t for t in tokens if t.revoked_at is None]
    if active:
        choice = st.selectbox(
            "Revoke a token",
            active,
            key="revoke_token_choice",
            format_func=lambda t: f"{t.name} ({t.prefix}…)",
        )
        if st.button("Revoke token", key="revoke_token"):
            try:
                users.revoke_token(ctx.db, ctx.principal, choice.id or 0)
                flash("Token revoked: anything using it is refused from now on.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def service_accounts_section(ctx: PageContext) -> None:
    st.subheader("Service accounts of my teams")
    st.caption(
        "CI pipelines act with a service account's token; every call they make is recorded "
        "under its name. Admins create them on the Admin page."
    )
    accounts = users.service_accounts_of_teams(ctx.db, ctx.principal)
    admin.service_accounts_table(accounts)
    if ctx.principal.can_anywhere(Permission.MANAGE_USERS):
        admin.revoke_service_account_form(ctx, accounts)
    elif accounts:
        st.caption("To revoke one, ask an admin.")


def notifications_section(ctx: PageContext) -> None:
    st.subheader("Notifications")
    st.caption(
        "Everything that concerns you lands in your inbox on Home. Tick the events you also "
        "want by e-mail."
        + ("" if ctx.settings.smtp_host else " E-mail is not set up on this server yet.")
    )
    current = preferences.my_preferences(ctx.db, ctx.principal)
    with st.form("notification_preferences"):
        chosen = {
            event: st.checkbox(text, value=current[event], key=f"pref_{event}")
            for event, text in EVENTS.items()
        }
        if st.form_submit_button("Save notification choices"):
            try:
                preferences.set_preferences(ctx.db, ctx.principal, chosen)
                flash("Saved: you get the ticked events by e-mail from now on.")
                st.rerun()
            except QuorumError as error:
                fail(error)
