"""Findings of a version (Models page tab, Reviews page) and revalidation status and rounds
(Reviews, Home, Monitoring). Thin: the services decide who may do what."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from core import evaluation
from core.auth import Permission
from core.errors import QuorumError
from core.models import DecisionKind, VersionState, utcnow
from core.policy import SEVERITIES
from core.services import findings, model_view, revalidation, reviews
from core.ui.session import PageContext, fail, flash

SEVERITY_ICONS = {
    "high": ":material/error:",
    "medium": ":material/warning:",
    "low": ":material/info:",
}


def findings_section(ctx: PageContext, model: str, number: int, anchors: list[str]) -> None:
    """The version's findings with their history, and the forms to raise, answer, close."""
    try:
        rows = findings.findings(ctx.db, ctx.principal, model, number)
    except QuorumError as error:
        fail(error)
        return
    wanted = str(st.query_params.get("finding", ""))
    if not rows:
        st.caption("No findings on this version.")
    for f in rows:
        title = (
            f"#{f.id} · {f.severity} · {f.status}"
            + (" · OVERDUE" if f.overdue else "")
            + f" · owner {f.owner} · due {f.due_on.isoformat()}"
        )
        with st.expander(title, expanded=str(f.id) == wanted, icon=SEVERITY_ICONS[f.severity]):
            _finding(ctx, f)
    if ctx.principal.can_anywhere(Permission.DECIDE):
        _raise_form(ctx, model, number, anchors)


def _finding(ctx: PageContext, f: findings.FindingView) -> None:
    pinned = f" · about {f.anchor}" if f.anchor else ""
    source = " · opened by a failed revalidation" if f.source == findings.REVALIDATION else ""
    st.caption(f"Raised by {f.raised_by} on {f.created_at:%Y-%m-%d}{pinned}{source}")
    st.text(f.text)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": e.created_at.strftime("%Y-%m-%d %H:%M"),
                    "What": e.action,
                    "Who": e.actor,
                    "Note": e.note,
                    "Evidence": e.filename,
                    "Status after": e.status_after,
                }
                for e in f.events
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if f.owner_id == ctx.principal.user_id and f.status != findings.CLOSED:
        with st.form(f"answer_{f.id}", clear_on_submit=True):
            note = st.text_area("Remediation", key=f"answer_note_{f.id}")
            upload = st.file_uploader("Evidence (optional)", key=f"answer_file_{f.id}")
            if st.form_submit_button("Answer"):
                _act(
                    lambda: findings.answer_finding(
                        ctx.db,
                        ctx.principal,
                        f.id,
                        note,
                        document=upload.getvalue() if upload else None,
                        filename=upload.name if upload else "",
                        row_version=f.row_version,
                    ),
                    f"Answered finding #{f.id}; the reviewer who raised it was told.",
                )
    if ctx.principal.can_anywhere(Permission.DECIDE) and f.owner_id != ctx.principal.user_id:
        closing = f.status != findings.CLOSED
        with st.form(f"status_{f.id}", clear_on_submit=True):
            note = st.text_input("Note" if closing else "Why re-open", key=f"status_note_{f.id}")
            if st.form_submit_button("Close" if closing else "Re-open"):
                call = findings.close_finding if closing else findings.reopen_finding
                _act(
                    lambda: call(ctx.db, ctx.principal, f.id, note, row_version=f.row_version),
                    f"Finding #{f.id} {'closed' if closing else 're-opened'}.",
                )
        if f.status == findings.ANSWERED:
            with st.form(f"reopen_{f.id}", clear_on_submit=True):
                note = st.text_input("Not enough? Say why and re-open", key=f"reopen_note_{f.id}")
                if st.form_submit_button("Re-open"):
                    _act(
                        lambda: findings.reopen_finding(
                            ctx.db, ctx.principal, f.id, note, row_version=f.row_version
                        ),
                        f"Finding #{f.id} re-opened; its owner was told.",
                    )


def _raise_form(ctx: PageContext, model: str, number: int, anchors: list[str]) -> None:
    try:
        owners = findings.possible_owners(ctx.db, ctx.principal, model)
    except QuorumError as error:
        fail(error)
        return
    names = dict(owners)
    with st.form("raise_finding", clear_on_submit=True):
        st.markdown("**Raise a finding**")
        severity = st.radio("Severity", SEVERITIES, index=2, horizontal=True, key="finding_sev")
        text = st.text_area("What is wrong, and what would resolve it", key="finding_text")
        owner = st.selectbox(
            "Owner", list(names), format_func=lambda i: names[i], key="finding_owner"
        )
        due = st.date_input(
            "Due",
            utcnow().date() + timedelta(days=30),
            key="finding_due",
            min_value=utcnow().date(),
        )
        anchor = st.selectbox(
            "Pin to", [""] + anchors, format_func=lambda a: a or "The version as a whole",
            key="finding_anchor",
        )  # fmt: skip
        if st.form_submit_button("Raise finding", type="primary"):
            _act(
                lambda: findings.raise_finding(
                    ctx.db,
                    ctx.principal,
                    model,
                    number,
                    severity=str(severity),
                    text=text,
                    owner=owner or 0,
                    due_on=due,  # type: ignore[arg-type]
                    anchor=anchor or "",
                ),
                "Finding raised; its owner was told.",
            )


def _act(call: object, message: str) -> None:
    try:
        call()  # type: ignore[operator]
    except QuorumError as error:
        fail(error)
        return
    flash(message)
    st.rerun()


def pin_choices(view: model_view.VersionView) -> list[str]:
    """What a comment or finding may be pinned to: the version's metrics and charts."""
    metrics = view.evaluation.result.get("metrics", {}) if view.evaluation else {}
    names = [
        f"metric: {evaluation.METRIC_LABELS.get(k, k)}" for k, v in metrics.items() if v is not None
    ]
    charts = [
        "chart: ROC curve",
        "chart: confusion matrix",
        "chart: calibration",
        "chart: slices by group",
        "chart: residuals",
    ]
    return names + charts


# --- revalidation -----------------------------------------------------------------------------


def revalidation_section(ctx: PageContext, model: str, version: object) -> None:
    """The live version's revalidation date, its rounds, and the forms to start and decide one."""
    if getattr(version, "state", "") != VersionState.APPROVED:
        return
    number = int(getattr(version, "number", 0))
    try:
        status = revalidation.model_revalidation(ctx.db, ctx.principal, model)
        rounds = revalidation.revalidation_rounds(ctx.db, ctx.principal, model, number)
    except QuorumError as error:
        fail(error)
        return
    if status is None or status.version != number:
        return
    st.subheader("Revalidation")
    badge(status)
    for r in rounds:
        with st.container(border=True):
            st.caption(
                f"Round {r.round} · {r.status} · started by {r.started_by} on "
                f"{r.started_at:%Y-%m-%d}" + (f" · finding #{r.finding_id}" if r.finding_id else "")
            )
            for reviewer, kind, reason in r.decisions:
                st.text(f"{reviewer}: {kind}" + (f" — {reason}" if reason else ""))
            for signer, meaning, when in r.signoffs:
                st.text(f"Signed '{meaning}' by {signer} at {when[:16]}")
    if not ctx.principal.can_anywhere(Permission.DECIDE):
        return
    if status.open_round is None:
        with st.form("start_revalidation"):
            reason = st.text_input("Why now", key="revalidation_reason")
            if st.form_submit_button("Start a revalidation round"):
                _act(
                    lambda: revalidation.start_revalidation(
                        ctx.db, ctx.principal, model, number, reason
                    ),
                    "Revalidation round opened; reviewers were told.",
                )
        return
    with st.form("revalidation_decision"):
        kind = st.radio(
            "Your revalidation decision",
            [DecisionKind.APPROVE, DecisionKind.REJECT],
            format_func=lambda k: "Still valid" if k == DecisionKind.APPROVE else "Failed",
            horizontal=True,
            key="revalidation_kind",
        )
        reason = st.text_area("Reason (required when it failed)", key="revalidation_why")
        if st.form_submit_button("Record decision", type="primary"):
            _act(
                lambda: reviews.decide(
                    ctx.db,
                    ctx.principal,
                    model,
                    number,
                    kind or DecisionKind.APPROVE,
                    reason,
                    row_version=getattr(version, "row_version", None),
                ),
                "Revalidation decision recorded.",
            )


def badge(status: revalidation.RevalidationStatus) -> None:
    """One line: failed (error), overdue (warning), due soon or fine (caption)."""
    text = f"{status.model} v{status.version}: {status.label}"
    if status.open_round is not None:
        text += f" (round {status.open_round} open)"
    if status.failed:
        st.error(text, icon=":material/gpp_bad:")
    elif status.overdue:
        st.warning(text, icon=":material/event_busy:")
    elif status.days_left is not None and status.days_left <= revalidation.NOTICE_DAYS:
        st.info(text, icon=":material/event:")
    else:
        st.caption(text)


def revalidation_badges(ctx: PageContext, *, only_attention: bool = True) -> None:
    """Live versions whose revalidation failed, is overdue or due soon (Home, Monitoring)."""
    try:
        rows = revalidation.revalidation_overview(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    wanted = [
        r
        for r in rows
        if not only_attention
        or r.failed
        or (r.days_left is not None and r.days_left <= revalidation.NOTICE_DAYS)
    ]
    for r in wanted:
        badge(r)
