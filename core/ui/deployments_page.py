"""Deployments page: live versions, readiness, promotion, rollback, history."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.errors import QuorumError
from core.models import VersionState
from core.services import compliance, deployments, model_view
from core.services import portfolio as pf
from core.ui.gate_links import item_links
from core.ui.session import PageContext, fail, flash


def render(ctx: PageContext) -> None:
    names = [m.name for m in pf.portfolio(ctx.db, ctx.principal, recent=0).models]
    if not names:
        st.info("No models yet.")
        return
    wanted = st.query_params.get("model")
    name = st.selectbox(
        "Model", names, index=names.index(wanted) if wanted in names else 0, key="deploy_model"
    )
    if name is None:
        return
    st.query_params["model"] = name
    detail = model_view.model_detail(ctx.db, ctx.principal, name, ctx.settings.environments)
    _live(ctx, detail)
    if ctx.principal.can(Permission.DEPLOY, detail.model.team_id):
        _promote(ctx, detail)
        _rollback(ctx, detail)
    else:
        st.caption("Promotion and rollback need the reviewer role in this model's team.")
    _history(ctx, name)


def _live(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    cols = st.columns(len(ctx.settings.environments))
    for col, env in zip(cols, ctx.settings.environments, strict=True):
        number = detail.live.get(env)
        col.metric(env.capitalize(), f"v{number}" if number else "nothing live")


def _promote(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    st.subheader("Promote")
    candidates = [
        v.version.number
        for v in detail.versions
        if v.version.state in (VersionState.APPROVED, VersionState.IN_REVIEW)
    ]
    if not candidates:
        st.caption("No version is approved or in review yet.")
        return
    cols = st.columns(2)
    number = cols[0].selectbox(
        "Version",
        candidates,
        key="promote_version",
        format_func=lambda n: f"v{n} — {detail.version(n).state_label}",
    )
    if number is None:
        return
    live_in = [env for env, n in detail.live.items() if n == number]
    targets = [env for env in ctx.settings.environments if env not in live_in]
    if not targets:
        st.info(f"v{number} is live in every environment already; choose another version.")
        return
    env = cols[1].selectbox(
        "Environment",
        targets,
        key="promote_env",
        format_func=lambda e: f"{e} (now v{detail.live[e]})" if e in detail.live else e,
    )
    if env is None:
        return
    if live_in:
        st.caption(f"v{number} is already live in {', '.join(live_in)}.")
    blockers = (
        deployments.readiness(ctx.db, ctx.principal, detail.model.name, number)
        if env == deployments.PRODUCTION
        else []
    )
    if env == deployments.PRODUCTION and not blockers:
        st.success("Ready for production: approvals and compliance requirements are met.")
    with st.form("promote", clear_on_submit=True):
        reason = st.text_input("Reason (optional)", key="promote_reason")
        button, why = st.columns([1, 3])
        sent = button.form_submit_button(
            f"Promote v{number} to {env}", type="primary", disabled=bool(blockers)
        )
        if blockers:
            why.warning(
                "Not ready for production. Still missing:\n"
                + "\n".join(f"- {line}" for line in blockers),
                icon=":material/block:",
            )
    if blockers:
        _item_links(ctx, detail.model.name, number)
    if sent:
        try:
            deployments.promote(ctx.db, ctx.principal, detail.model.name, number, env, reason)
            flash(
                f"{detail.model.name} v{number} is live in {env}. Batch scoring and "
                "the SDK now serve it there."
            )
            st.rerun()
        except QuorumError as error:
            fail(error)


def _rollback(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    live_envs = [e for e in ctx.settings.environments if e in detail.live]
    if not live_envs:
        return
    st.subheader("Roll back")
    restores = {
        env: deployments.rollback_target(ctx.db, ctx.principal, detail.model.name, env)
        for env in live_envs
    }
    possible = [env for env in live_envs if restores[env] is not None]
    env = st.selectbox(
        "Environment",
        live_envs,
        index=live_envs.index(possible[0]) if possible else 0,
        key="rollback_env",
        format_func=lambda e: (
            f"{e} (v{detail.live[e]} live"
            + (f", back to v{restores[e]})" if restores[e] else ", nothing earlier)")
        ),
    )
    target = restores.get(env or "")
    if env is None or target is None:
        st.caption(
            f"Nothing earlier than v{detail.live.get(env or '')} was live in {env}, so there is "
            "nothing to roll back to. Promote another approved version instead."
        )
        return
    with st.form("rollback"):
        st.text(f"Rolling back puts v{target} back live in {env}, replacing v{detail.live[env]}.")
        reason = st.text_input("Reason (required)", key="rollback_reason")
        if st.form_submit_button(f"Roll back {env} to v{target}"):
            try:
                deployments.rollback(ctx.db, ctx.principal, detail.model.name, env, reason)
                flash(
                    f"Rolled back {detail.model.name} in {env} to v{target}; the history shows "
                    "who and why."
                )
                st.rerun()
            except QuorumError as error:
                fail(error)


def _history(ctx: PageContext, name: str) -> None:
    st.subheader("History")
    rows = deployments.history(ctx.db, ctx.principal, name)
    if not rows:
        st.caption("Never deployed.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Environment": r.environment,
                    "Version": f"v{r.version}",
                    "Action": r.action,
                    "By": r.actor,
                    "Why": r.reason,
                    "Live from (UTC)": r.live_from.strftime("%Y-%m-%d %H:%M:%S"),
                    "Live until (UTC)": r.live_until.strftime("%Y-%m-%d %H:%M:%S")
                    if r.live_until
                    else "now",
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    cols = st.columns(2)
    day = cols[0].date_input("What was live on", key="live_on_date")
    env = cols[1].selectbox(
        "in", ctx.settings.environments, key="live_on_env", index=len(ctx.settings.environments) - 1
    )
    if day and env:
        when = datetime.combine(day, time.max, tzinfo=UTC)
        number = deployments.live_at(ctx.db, ctx.principal, name, env, when)
        st.text(
            f"At the end of {day:%Y-%m-%d} (UTC), {env} served "
            + (f"v{number}." if number else "nothing.")
        )


def _item_links(ctx: PageContext, model: str, number: int) -> None:
    """A link to each open checklist item the gate names (the Compliance page opens on it)."""
    try:
        items = compliance.version_compliance(ctx.db, ctx.principal, model, number).gate_items
    except QuorumError:
        return
    item_links([g for g in items if g.template], model, number)
