"""Reviews page: the queue, and a version's policy status, evidence, thread and decision."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.errors import QuorumError
from core.models import DecisionKind, VersionState
from core.services import model_view, reviews
from core.ui.findings_panel import findings_section, pin_choices, revalidation_section
from core.ui.models_page import compare_section
from core.ui.pickers import open_version, pick_version
from core.ui.session import PageContext, fail, flash

DECISION_LABELS = {
    DecisionKind.APPROVE: "Approve",
    DecisionKind.REQUEST_CHANGES: "Request changes",
    DecisionKind.REJECT: "Reject",
}


def render(ctx: PageContext) -> None:
    _queue(ctx)
    detail = pick_version(ctx, "review")
    if detail is None:
        return
    model, number = detail
    try:
        full = model_view.model_detail(ctx.db, ctx.principal, model, ctx.settings.environments)
        m, version, status, decisions = reviews.review_detail(ctx.db, ctx.principal, model, number)
    except QuorumError as error:
        fail(error)
        return
    view = full.version(number)
    st.header(f"{m.name} v{version.number}")
    st.text(
        f"State: {view.state_label}   ·   Registered by {view.registered_by}   ·   "
        f"Review round {version.review_round}"
    )
    st.text(version.notes or "No notes from the author.")
    _policy(status, version.state)
    _submit(ctx, m.name, version)
    st.subheader("Compared with the champion")
    compare_section(ctx, full, view)
    _decisions(decisions)
    revalidation_section(ctx, m.name, version)
    st.subheader("Findings")
    findings_section(ctx, m.name, version.number, pin_choices(view))
    _thread(ctx, m.name, version.number, view)
    _decide(ctx, m.name, version)


def _queue(ctx: PageContext) -> None:
    if not ctx.principal.can_anywhere(Permission.DECIDE):
        return
    st.subheader("My queue")
    try:
        items = reviews.review_queue(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    if not items:
        st.success("No version waits for your decision.", icon=":material/task_alt:")
        return
    for item in items:
        cols = st.columns([3, 4, 1])
        cols[0].text(f"{item.model} v{item.number}\nby {item.registered_by}, {item.submitted}")
        cols[1].text("\n".join(item.status))
        if cols[2].button("Open", key=f"queue_{item.model}_{item.number}"):
            open_version(item.model, item.number, "review")


def _policy(status: reviews.PolicyStatus, state: str) -> None:
    lines = status.explain()
    if state == VersionState.APPROVED:
        st.success("Approved: " + "; ".join(lines), icon=":material/verified:")
    elif state == VersionState.IN_REVIEW:
        st.info("Approval policy: " + "; ".join(lines), icon=":material/how_to_vote:")


def _submit(ctx: PageContext, model: str, version: object) -> None:
    state = getattr(version, "state", "")
    if state not in (VersionState.REGISTERED, VersionState.CHANGES_REQUESTED):
        return
    if not ctx.principal.can_anywhere(Permission.SUBMIT_REVIEW):
        return
    with st.form("submit_review"):
        note = st.text_area(
            "Note to reviewers",
            key="submit_note",
            placeholder="What should reviewers look at first?",
        )
        if st.form_submit_button("Submit for review", type="primary"):
            try:
                v = reviews.submit_for_review(
                    ctx.db, ctx.principal, model, getattr(version, "number", 0), note=note
                )
                flash(f"{model} v{v.number} is in review; reviewers were notified.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def _decisions(decisions: list[reviews.DecisionView]) -> None:
    st.subheader("Decisions")
    if not decisions:
        st.caption("No decisions yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": d.decision.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Reviewer": d.reviewer,
                    "Roles": ", ".join(d.decision.roles),
                    "Decision": DECISION_LABELS[DecisionKind(d.decision.kind)],
                    "Reason": d.decision.reason,
                    "Round": d.decision.review_round,
                    "Counts": "yes" if d.counts else "no (older round or changed files)",
                }
                for d in decisions
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _thread(ctx: PageContext, model: str, number: int, view: model_view.VersionView) -> None:
    st.subheader("Discussion")
    for item in reviews.comments_of(ctx.db, ctx.principal, model, number):
        with st.container(border=True):
            pinned = f" · on {item.comment.anchor}" if item.comment.anchor else ""
            st.caption(f"{item.author} · {item.comment.created_at:%Y-%m-%d %H:%M} UTC{pinned}")
            st.text(item.comment.body)
    anchors = [""] + pin_choices(view)
    with st.form("comment", clear_on_submit=True):
        body = st.text_area(
            "Comment",
            key="comment_body",
            placeholder="Plain text; mention someone with @name or @email",
        )
        anchor = st.selectbox(
            "Pin to",
            anchors,
            key="comment_anchor",
            format_func=lambda a: a or "The version as a whole",
        )
        if st.form_submit_button("Post comment"):
            try:
                reviews.add_comment(ctx.db, ctx.principal, model, number, body, anchor=anchor or "")
                flash("Comment posted; anyone you mentioned sees it in their inbox.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def _decide(ctx: PageContext, model: str, version: object) -> None:
    if getattr(version, "state", "") != VersionState.IN_REVIEW:
        return
    if not ctx.principal.can_anywhere(Permission.DECIDE):
        return
    st.subheader("Your decision")
    with st.form("decision"):
        kind = st.radio(
            "Decision",
            list(DecisionKind),
            key="decision_kind",
            format_func=lambda k: DECISION_LABELS[k],
            horizontal=True,
        )
        reason = st.text_area(
            "Reason (required to request changes or reject)", key="decision_reason"
        )
        if st.form_submit_button("Record decision", type="primary"):
            try:
                reviews.decide(
                    ctx.db,
                    ctx.principal,
                    model,
                    getattr(version, "number", 0),
                    kind or DecisionKind.APPROVE,
                    reason,
                    row_version=getattr(version, "row_version", None),
                )
                flash("Decision recorded. It is in the audit trail; the author was told.")
                st.rerun()
            except QuorumError as error:
                fail(error)
