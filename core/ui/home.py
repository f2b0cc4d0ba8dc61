"""Home page sections."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import QuorumError
from core.services import portfolio as pf
from core.ui.session import PageContext, fail


def inbox_section(ctx: PageContext) -> None:
    st.subheader("Waiting for me")
    items = pf.inbox(ctx.db, ctx.principal)
    if not items:
        st.success("Nothing waits for you right now.", icon=":material/inbox:")
        return
    for item in items:
        with st.container(border=True):
            cols = st.columns([6, 2, 2])
            cols[0].markdown(f"**{_kind_label(item.kind)}**")
            cols[0].text(item.title)
            if item.body:
                cols[0].caption(item.body)
            cols[1].caption(pf.since(item.created_at))
            if item.link:
                cols[1].page_link(
                    item.link.split("?")[0], label="Open", icon=":material/open_in_new:"
                )
            if cols[2].button("Mark done", key=f"inbox_done_{item.id}"):
                try:
                    pf.mark_read(ctx.db, ctx.principal, item.id or 0)
                    st.rerun()
                except QuorumError as error:
                    fail(error)


def _kind_label(kind: str) -> str:
    return {
        "review_requested": "Review requested",
        "mention": "You were mentioned",
        "changes_requested": "Changes requested on your version",
        "alert": "Monitoring alert",
        "signoff_expiring": "Sign-off expiring",
    }.get(kind, kind.replace("_", " ").capitalize())


def portfolio_section(data: pf.Portfolio) -> None:
    st.subheader("Portfolio")
    cols = st.columns(4)
    cols[0].metric("Models", len(data.models))
    cols[1].metric("Live deployments", data.live_count)
    cols[2].metric("Awaiting review", data.state_counts.get("In review", 0))
    cols[3].metric("Approved, not live", data.state_counts.get("Approved", 0))
    if data.models:
        frame = pd.DataFrame(
            [
                {
                    "Model": m.name,
                    "Team": m.team,
                    "Owner": m.owner,
                    "Risk": m.risk_tier,
                    "Latest version": m.latest_version,
                    "State": m.latest_state,
                    "Live": ", ".join(f"{env}: v{n}" for env, n in sorted(m.live.items()))
                    or "not deployed",
                }
                for m in data.models
            ]
        )
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.info("No models yet. A data scientist can register one on the Register page.")
    st.subheader("Recent activity")
    if not data.recent:
        st.caption("Nothing has happened yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": e.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Who": e.actor_label,
                    "What": e.summary,
                }
                for e in data.recent
            ]
        ),
        hide_index=True,
        width="stretch",
    )
