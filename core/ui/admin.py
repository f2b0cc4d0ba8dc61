"""Admin page sections: users, role grants, teams, approval policies."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import policy
from core.auth import SERVICE_ROLES
from core.errors import QuorumError
from core.models import ROLE_LABELS, PendingChange, RiskTier, Role
from core.services import changes, compliance, reviews, users
from core.ui.pending import change_card
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
                done = users.grant_role(ctx.db, ctx.principal, user.id, role, scope)
                if isinstance(done, PendingChange):
                    st.success(
                        f"A role for yourself waits for a second admin: change #{done.id} takes "
                        "effect when another admin confirms it."
                    )
                else:
                    st.success(
                        f"{user.email} now holds {ROLE_LABELS[role]}. It takes effect at once."
                    )
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


# --- approval policies: the form is drawn from core.policy's schema ---------------------------


def policies_section(ctx: PageContext) -> None:
    tier = st.selectbox("Risk tier", [t.value for t in RiskTier], key="policy_tier")
    history = reviews.policy_history(ctx.db, tier)
    current = history[-1]
    st.caption(
        f"In force: {current.label}. A change saves a new version; decisions and sign-offs keep "
        "the version they were judged under, and the approval pack shows every change."
    )
    for warning in reviews.policy_warnings(ctx.db, tier, current.required_checklists):
        st.warning(warning, icon=":material/info:")
    keys = tuple(row.template.key for row in compliance.list_templates(ctx.db))
    with st.form(f"policy_{tier}"):
        values = {spec.name: _field_widget(spec, current, tier, keys) for spec in policy.FIELDS}
        reason = st.text_input("Why this change", key=f"policy_{tier}_reason")
        if st.form_submit_button("Save a new version", type="primary"):
            try:
                saved = reviews.update_policy(
                    ctx.db,
                    ctx.principal,
                    tier,
                    row_version=current.version,
                    reason=reason,
                    **values,
                )
                if isinstance(saved, PendingChange):
                    st.success(
                        f"Proposed as change #{saved.id}: it takes effect when another admin "
                        "confirms it under 'Changes waiting for a second admin'."
                    )
                else:
                    st.success(f"Saved: {saved.label} is now in force.")
                for warning in reviews.policy_warnings(
                    ctx.db, tier, list(values.get("required_checklists") or [])
                ):
                    st.warning(warning, icon=":material/info:")
            except QuorumError as error:
                fail(error)
    _policy_history(history)


def _plain_label(value: Any) -> str:
    return str(value).replace("_", " ")


def _field_widget(spec: policy.FieldSpec, current: Any, tier: str, keys: tuple[str, ...]) -> Any:
    value = getattr(current.fields, spec.name)
    key = f"policy_{tier}_{spec.name}"
    if spec.kind == "int":
        return int(
            st.number_input(spec.label, spec.minimum, spec.maximum, value, help=spec.help, key=key)
        )
    if spec.kind == "months":
        months = st.number_input(
            spec.label + " (0 = never)", 0, spec.maximum, value or 0, help=spec.help, key=key
        )
        return int(months) or None
    if spec.kind == "bool":
        return st.checkbox(spec.label, value, help=spec.help, key=key)
    if spec.kind == "choice":
        index = spec.choices.index(value) if value in spec.choices else 0
        return st.selectbox(spec.label, spec.choices, index, help=spec.help, key=key)
    if spec.kind == "meaning_roles":
        st.markdown(f"**{spec.label}**")
        return {
            meaning: st.multiselect(
                f"May sign '{meaning}'",
                spec.choices,
                value.get(meaning, []),
                format_func=_role_label,
                help=spec.help,
                key=f"{key}_{meaning}",
            )
            for meaning in policy.MEANINGS
        }
    options = keys if spec.kind == "checklists" else spec.choices
    return st.multiselect(
        spec.label,
        options,
        [v for v in value if v in options],
        format_func=_role_label if spec.kind == "roles" else _plain_label,
        help=spec.help,
        key=key,
    )


def _role_label(value: str) -> str:
    return ROLE_LABELS[Role(value)] if value in Role._value2member_map_ else value


def _policy_history(history: list[Any]) -> None:
    st.markdown("**Versions**")
    rows = []
    for before, after in zip(history, history[1:], strict=False):
        changed = policy.changes(before.fields, after.fields)
        rows.append(
            {
                "Version": after.version,
                "Saved (UTC)": after.created_at.strftime("%Y-%m-%d %H:%M")
                if after.created_at
                else "",
                "Reason": after.reason,
                "Changed": "; ".join(
                    f"{name}: {c['before']} -> {c['after']}" for name, c in changed.items()
                )
                or "nothing",
            }
        )
    if rows:
        st.dataframe(pd.DataFrame(rows[::-1]), hide_index=True, width="stretch")
    else:
        st.caption("Never changed: the built-in defaults apply.")


# --- role mappings: how the identity provider's roles claim becomes roles ---------------------


def mappings_section(ctx: PageContext) -> None:
    st.caption(
        "A value of the identity provider's roles claim grants a role only through a mapping "
        "here, never by its name. Grants follow the mappings at each sign-in."
    )
    with ctx.db.read() as session:
        teams = {t.id: t.name for t in users.list_teams(session)}
    mappings = users.role_mappings(ctx.db)
    if mappings:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Claim value": m.claim_value,
                        "Role": _role_label(m.role),
                        "Scope": "All teams" if m.team_id is None else teams.get(m.team_id, "?"),
                    }
                    for m in mappings
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No mappings: the roles claim grants nothing. Add one below.")
    with st.form("new_mapping", clear_on_submit=True):
        st.markdown("**Map a claim value to a role**")
        value = st.text_input("Claim value (exactly as the provider sends it)", key="map_value")
        role = st.selectbox(
            "Role", list(Role), format_func=lambda r: ROLE_LABELS[r], key="map_role"
        )
        scope = st.selectbox(
            "Scope",
            [None, *teams],
            key="map_scope",
            format_func=lambda t: "All teams" if t is None else f"Team {teams[t]}",
        )
        if st.form_submit_button("Add mapping") and role is not None:
            try:
                users.add_role_mapping(ctx.db, ctx.principal, value, role, scope)
                st.success(f"{value!r} now grants {ROLE_LABELS[role]} at the next sign-in.")
            except QuorumError as error:
                fail(error)
    if mappings:
        with st.form("remove_mapping"):
            chosen = st.selectbox(
                "Mapping",
                mappings,
                key="map_remove",
                format_func=lambda m: f"{m.claim_value} -> {_role_label(m.role)}",
            )
            if st.form_submit_button("Remove mapping"):
                try:
                    users.remove_role_mapping(ctx.db, ctx.principal, chosen.id or 0)
                    st.success("Mapping removed; the grants it gave are withdrawn now.")
                except QuorumError as error:
                    fail(error)


# --- four eyes: changes of power waiting for a second admin ---------------------------------


def pending_section(ctx: PageContext) -> None:
    try:
        rows = changes.changes(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    waiting = [r for r in rows if r.status == changes.PENDING]
    st.caption(
        "A role granted to oneself, an approval-policy change and a lower risk tier take effect "
        "only when an admin other than the one who asked confirms them."
    )
    if not waiting:
        st.info("Nothing waits for a second admin.")
    for change in waiting:
        change_card(ctx, change)
    decided = [r for r in rows if r.status != changes.PENDING]
    if decided:
        st.markdown("**Decided**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "#": r.id,
                        "What": r.kind,
                        "Change": r.summary,
                        "Proposed by": r.proposed_by,
                        "Outcome": r.status,
                        "By": r.decided_by,
                        "Reason": r.reason,
                    }
                    for r in decided
                ]
            ),
            hide_index=True,
            width="stretch",
        )
