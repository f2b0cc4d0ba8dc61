"""Admin page sections: users, role grants, teams."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import SERVICE_ROLES
from core.errors import QuorumError
from core.models import ROLE_LABELS, Role
from core.services import users
from core.ui.session import PageContext, fail


def people_section(ctx: PageContext) -> None:
    with ctx.db.read() as session:
        people = users.list_users(session)
        teams = {t.id: t.name for t in users.list_teams(session)}
        grants = users.all_grants(session)
    by_user: dict[int, list[str]] = {}
    for g in grants:
        label = ROLE_LABELS[Role(g.role)] + ("" if g.team_id is None else f" ({teams[g.team_id]})")
        by_user.setdefault(g.user_id, []).append(label)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": u.name,
                    "Email": u.email,
                    "Active": u.is_active,
                    "Roles": ", ".join(sorted(by_user.get(u.id or 0, []))) or "none",
                }
                for u in people
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    _grant_form(ctx, people, teams)
    _revoke_form(ctx, people, teams, grants)
    _new_user_form(ctx)


def _grant_form(ctx: PageContext, people: list, teams: dict) -> None:
    with st.form("grant_role", clear_on_submit=False):
        st.markdown("**Grant a role**")
        user = st.selectbox(
            "Person", people, format_func=lambda u: f"{u.name} <{u.email}>", key="grant_user"
        )
        role = st.selectbox(
            "Role", list(Role), format_func=lambda r: ROLE_LABELS[r], key="grant_role_choice"
        )
        scope = st.selectbox(
            "Scope",
            [None, *teams],
            key="grant_scope",
            format_func=lambda t: "All teams" if t is None else f"Team {teams[t]}",
        )
        if st.form_submit_button("Grant role", type="primary") and role is not None:
            try:
                users.grant_role(ctx.db, ctx.principal, user.id, role, scope)
                st.success(f"{user.email} now holds {ROLE_LABELS[role]}. It takes effect at once.")
            except QuorumError as error:
                fail(error)


def _revoke_form(ctx: PageContext, people: list, teams: dict, grants: list) -> None:
    if not grants:
        return
    names = {u.id: u.email for u in people}
    with st.form("revoke_role"):
        st.markdown("**Revoke a role**")
        grant = st.selectbox(
            "Role grant",
            grants,
            key="revoke_grant",
            format_func=lambda g: (
                f"{names.get(g.user_id)}: {ROLE_LABELS[Role(g.role)]}"
                + ("" if g.team_id is None else f" ({teams[g.team_id]})")
            ),
        )
        if st.form_submit_button("Revoke role"):
            try:
                users.revoke_grant(ctx.db, ctx.principal, grant.id)
                st.success("Role revoked. The person loses it on their next click.")
            except QuorumError as error:
                fail(error)


def _new_user_form(ctx: PageContext) -> None:
    with st.form("new_user", clear_on_submit=True):
        st.markdown(
            "**Add a person** (people who sign in with OpenID Connect are added on "
            "their first sign-in)"
        )
        email = st.text_input("Email", key="new_user_email")
        name = st.text_input("Full name", key="new_user_name")
        if st.form_submit_button("Add person"):
            try:
                user = users.create_user(ctx.db, ctx.principal, email, name)
                st.success(f"{user.email} added. Grant them a role next.")
            except QuorumError as error:
                fail(error)


def teams_section(ctx: PageContext) -> None:
    with ctx.db.read() as session:
        teams = users.list_teams(session)
    st.dataframe(
        pd.DataFrame([{"Team": t.name, "Description": t.description} for t in teams]),
        hide_index=True,
        width="stretch",
    )
    with st.form("new_team", clear_on_submit=True):
        st.markdown("**Create a team**")
        name = st.text_input(
            "Team name", key="new_team_name", help="Lowercase letters, digits, '.', '_' or '-'."
        )
        description = st.text_area("Description", key="new_team_description")
        if st.form_submit_button("Create team"):
            try:
                team = users.create_team(ctx.db, ctx.principal, name, description)
                st.success(f"Team {team.name} created. Grant roles in it on the first tab.")
            except QuorumError as error:
                fail(error)


NEW_SERVICE_SECRET_KEY = "admin_new_service_secret"  # noqa: S105


def service_accounts_section(ctx: PageContext) -> None:
    st.caption(
        "A service account is a named token for a CI pipeline, owned by a team with one role "
        "and an expiry. It may register, submit, ingest, score and read; deciding, signing and "
        "going live in production always need a person. Its token is shown once."
    )
    secret = st.session_state.pop(NEW_SERVICE_SECRET_KEY, None)
    if secret:
        st.success("Service account created. Copy its token now: it will not be shown again.")
        st.code(secret, language=None)
    try:
        accounts = users.list_service_accounts(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    service_accounts_table(accounts)
    _new_service_account_form(ctx)
    revoke_service_account_form(ctx, accounts)


def service_accounts_table(accounts: list[users.ServiceAccountView]) -> None:
    if not accounts:
        st.caption("There are no service accounts.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": a.name,
                    "Team": a.team,
                    "Role": a.role,
                    "Token": f"{a.token_prefix}…",
                    "Active": a.active,
                    "Expires (UTC)": a.expires_at,
                    "Last used (UTC)": a.last_used_at,
                }
                for a in accounts
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _new_service_account_form(ctx: PageContext) -> None:
    with ctx.db.read() as session:
        teams = [t.name for t in users.list_teams(session)]
    with st.form("new_service_account", clear_on_submit=True):
        st.markdown("**Create a service account**")
        name = st.text_input("Name", key="sa_name", placeholder="ci-churn-training")
        team = st.selectbox("Team", teams, key="sa_team")
        role = st.selectbox(
            "Role",
            list(SERVICE_ROLES),
            format_func=lambda r: ROLE_LABELS[r],
            key="sa_role",
        )
        days = st.number_input(
            "Valid for (days)", min_value=1, max_value=366, value=90, key="sa_days"
        )
        if st.form_submit_button("Create service account", type="primary"):
            try:
                new = users.create_service_account(
                    ctx.db,
                    ctx.principal,
                    name,
                    team or "",
                    role or Role.DATA_SCIENTIST,
                    days=int(days),
                )
                st.session_state[NEW_SERVICE_SECRET_KEY] = new.secret
                st.rerun()
            except QuorumError as error:
                fail(error)


def revoke_service_account_form(ctx: PageContext, accounts: list[users.ServiceAccountView]) -> None:
    active = [a for a in accounts if a.active]
    if not active:
        return
    with st.form("revoke_service_account"):
        st.markdown("**Revoke a service account**")
        chosen = st.selectbox(
            "Service account",
            active,
            key="sa_revoke_choice",
            format_func=lambda a: f"{a.name} ({a.team}, {a.role})",
        )
        if st.form_submit_button("Revoke service account") and chosen is not None:
            try:
                users.revoke_service_account(ctx.db, ctx.principal, chosen.id)
                st.success(f"{chosen.name} revoked: its token is refused from now on.")
            except QuorumError as error:
                fail(error)
