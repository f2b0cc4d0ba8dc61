"""Audit page sections."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import QuorumError
from core.services import audit_trail, registry, users
from core.ui.session import PageContext, fail


def verify_section(ctx: PageContext) -> None:
    if st.button(
        "Verify the chain", key="audit_verify", type="primary", icon=":material/verified_user:"
    ):
        try:
            with st.status("Verifying every event's hash…", expanded=False) as status:
                report = audit_trail.verify(ctx.db, ctx.principal)
                status.update(label="Verification finished", state="complete")
        except QuorumError as error:
            fail(error)
            return
        if report.intact:
            st.success(report.message, icon=":material/check_circle:")
        else:
            st.error(report.message, icon=":material/gpp_bad:")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "What": f.kind,
                            "From #": f.first_seq,
                            "To #": f.last_seq,
                            "Finding": f.message,
                        }
                        for f in report.findings
                    ]
                ),
                hide_index=True,
                width="stretch",
            )


def anchors_section(ctx: PageContext) -> None:
    """The public key, the last signed checkpoint, and the scheduler's recent runs."""
    try:
        status = audit_trail.anchor_status(ctx.db, ctx.principal)
        runs = audit_trail.recent_job_runs(ctx.db, ctx.principal, limit=10)
    except QuorumError as error:
        fail(error)
        return
    st.subheader("Checkpoints")
    latest = status.last_checkpoint
    if latest is None:
        st.warning(
            f"No checkpoint yet: {status.pending} events are not anchored. The scheduler writes "
            "one within minutes; an operator can run `quorum admin audit checkpoint` now.",
            icon=":material/schedule:",
        )
    else:
        st.caption(
            f"Checkpoint {latest.number} ({latest.created_at.replace('T', ' ')[:19]} UTC) "
            f"anchors events up to "
            f"#{latest.seq}; {status.pending} newer events wait for the next one. "
            f"Checkpoints are kept in {status.location}."
        )
    st.text_input(
        "Public key that verifies checkpoints (Ed25519, base64)",
        value=status.public_key,
        disabled=True,
        key="audit_public_key",
        help=f"Key id {status.key_id}. Verify an export anywhere with: "
        "python -m core.audit_offline EXPORT_DIR --public-key KEY",
    )
    if runs:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Job": r.job,
                        "Started (UTC)": r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                        "Status": r.status,
                        "Message": r.message,
                        "Host / pid": f"{r.host} / {r.pid}",
                    }
                    for r in runs
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No periodic job has run yet.")


def search_section(ctx: PageContext) -> None:
    with ctx.db.read() as session:
        models = registry.list_models(session, ctx.principal, include_archived=True)
        people = users.list_users(session)
    cols = st.columns(4)
    model = cols[0].selectbox(
        "Model",
        [None, *models],
        key="audit_model",
        format_func=lambda m: "All models" if m is None else m.name,
    )
    person = cols[1].selectbox(
        "Actor",
        [None, *people],
        key="audit_actor",
        format_func=lambda u: "Everyone" if u is None else u.email,
    )
    action = cols[2].selectbox(
        "Action",
        [None, *audit_trail.action_names(ctx.db)],
        key="audit_action",
        format_func=lambda a: "All actions" if a is None else a,
    )
    dates = cols[3].date_input("Dates (UTC)", value=[], key="audit_dates")
    start, end = (
        (list(dates) + [None, None])[:2] if isinstance(dates, list | tuple) else (None, None)
    )
    try:
        events = audit_trail.search(
            ctx.db,
            ctx.principal,
            model_id=model.id if model else None,
            actor_id=person.id if person else None,
            action=action,
            start=start,
            end=end or start,
        )
    except QuorumError as error:
        fail(error)
        return
    st.caption(f"{len(events)} events (newest first, at most 500).")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "#": e.seq,
                    "When (UTC)": e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    "Actor": e.actor_label,
                    "Action": e.action,
                    "Summary": e.summary,
                    "Hash": e.hash[:12] + "…",
                }
                for e in events
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.download_button(
        "Export CSV",
        audit_trail.to_csv(events),
        file_name="quorum-audit.csv",
        mime="text/csv",
        key="audit_export",
        icon=":material/download:",
    )
