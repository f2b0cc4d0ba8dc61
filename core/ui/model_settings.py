"""A model's settings on the Models page: tags, goal and owner, a version's decision threshold,
and the changes of them that wait for a compliance officer (who confirms or refuses here).

A change that can drop a requirement (tags that take a checklist away, the goal, a lower risk
tier, a threshold) is proposed, not applied: the services decide which, and say so."""

from __future__ import annotations

import streamlit as st

from core import evaluation
from core.errors import QuorumError
from core.models import PendingChange, Task
from core.services import model_view, registry, versions
from core.ui.pending import change_card
from core.ui.session import PageContext, fail, flash


def settings_section(
    ctx: PageContext, detail: model_view.ModelDetail, view: model_view.VersionView | None
) -> None:
    st.subheader("Settings")
    _pending(ctx, detail)
    _settings_form(ctx, detail)
    if view is not None and detail.model.task == Task.BINARY:
        _threshold_form(ctx, detail, view)


def _said(done: object, applied: str) -> None:
    if isinstance(done, PendingChange):
        flash(
            f"Proposed as change #{done.id}: it can drop a requirement, so a compliance officer "
            "of the team confirms it below; the gate reopens then."
        )
    else:
        flash(applied)
    st.rerun()


def _settings_form(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    m = detail.model
    with st.form("model_settings"):
        tags = st.text_input(
            "Tags (key=value, comma-separated)",
            value=", ".join(f"{k}={v}" for k, v in m.tags.items()),
            key="settings_tags",
        )
        cols = st.columns(3)
        metric = cols[0].text_input("Goal metric", value=m.goal_metric, key="settings_metric")
        operators = list(registry.GOAL_OPERATORS)
        operator = cols[1].selectbox(
            "Goal comparison",
            operators,
            index=operators.index(m.goal_operator) if m.goal_operator in operators else 0,
            key="settings_operator",
        )
        target = cols[2].number_input(
            "Goal target",
            value=float(m.goal_target) if m.goal_target is not None else 0.0,
            format="%.4f",
            key="settings_target",
        )
        owner = st.text_input("Owner (email; empty keeps the owner)", key="settings_owner")
        reason = st.text_input("Why", key="settings_reason")
        st.caption(
            "Tags that take a checklist away and a new goal wait for a compliance officer and "
            "reopen the gate; other settings take effect at once. Every change is audited."
        )
        if st.form_submit_button("Save settings"):
            try:
                edits = registry.ModelChanges(
                    tags=registry.parse_tag_pairs([p for p in tags.split(",") if p.strip()]),
                    goal_metric=metric,
                    goal_operator=operator,
                    goal_target=target if metric else None,
                    owner=owner or None,
                )
                done = registry.update_model(ctx.db, ctx.principal, m.name, edits, reason=reason)
                _said(done, f"Settings of {m.name} saved.")
            except QuorumError as error:
                fail(error)


def _threshold_form(
    ctx: PageContext, detail: model_view.ModelDetail, view: model_view.VersionView
) -> None:
    v = view.version
    with st.form("version_threshold"):
        current = "" if v.decision_threshold is None else f"{v.decision_threshold:g}"
        value = st.text_input(
            f"Decision threshold of v{v.number} (empty: the model's own)",
            value=current,
            key=f"threshold_{v.number}",
        )
        reason = st.text_input("Why", key=f"threshold_reason_{v.number}")
        if st.form_submit_button("Propose threshold"):
            try:
                done = versions.set_decision_threshold(
                    ctx.db,
                    ctx.principal,
                    detail.model.name,
                    v.number,
                    evaluation.check_threshold(value),
                    reason,
                )
                _said(done, f"v{v.number} now decides at {value or 'the model’s own threshold'}.")
            except QuorumError as error:
                fail(error)


def _pending(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    try:
        waiting = registry.pending_changes(ctx.db, ctx.principal, detail.model.name)
    except QuorumError as error:
        fail(error)
        return
    for change in waiting:
        change_card(
            ctx, change, key="pc", title=f"Change #{change.id} waits for a compliance officer"
        )
