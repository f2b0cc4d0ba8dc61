"""Home page sections."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.errors import QuorumError
from core.services import monitoring, reviews
from core.services import portfolio as pf
from core.ui.session import PageContext, fail


def inbox_section(ctx: PageContext) -> None:
    st.subheader("Waiting for me")
    queue = _review_queue(ctx)
    tasks = pf.my_versions_needing_action(ctx.db, ctx.principal)
    queued = {f"{q.model} v{q.number}" for q in queue}
    everything = [
        i
        for i in pf.inbox(ctx.db, ctx.principal)
        if not (i.kind == "review_requested" and i.title.removeprefix("Review ") in queued)
    ]
    items = [i for i in everything if i.kind != "alert"]
    alerts = [i for i in everything if i.kind == "alert"]
    if not items and not queue and not tasks and not alerts:
        st.success("Nothing waits for you right now.", icon=":material/inbox:")
        return
    for entry in queue:
        _task_row(
            "Review",
            f"{entry.model} v{entry.number}",
            "; ".join(entry.status),
            f"pages/3_Reviews.py?model={entry.model}&version={entry.number}",
        )
    for task in tasks:
        _task_row("Your version", task.title, task.detail, task.link)
    _alert_cards(ctx, alerts)
    for item in items:
        with st.container(border=True):
            cols = st.columns([6, 2, 2])
            cols[0].markdown(f"**{_kind_label(item.kind)}**")
            cols[0].text(item.title)
            if item.body:
                cols[0].caption(item.body)
            cols[1].caption(pf.since(item.created_at))
            if item.link:
                _open_link(cols[1], item.link)
            if cols[2].button("Mark done", key=f"inbox_done_{item.id}"):
                try:
                    pf.mark_read(ctx.db, ctx.principal, item.id or 0)
                    st.rerun()
                except QuorumError as error:
                    fail(error)


def _alert_cards(ctx: PageContext, alerts: list[Any]) -> None:
    """One card per model, however many incident notifications it sent."""
    by_model: dict[int, list[Any]] = {}
    for item in alerts:
        by_model.setdefault(item.model_id or 0, []).append(item)
    counts = monitoring.open_incident_counts(ctx.db, [m for m in by_model if m])
    for model_id, notes in by_model.items():
        name = notes[0].title.split(":", 1)[0]
        count = counts.get(model_id, 0)
        with st.container(border=True):
            cols = st.columns([6, 2, 2])
            cols[0].markdown("**Monitoring**")
            cols[0].text(
                f"{name}: {count} open incident(s)"
                if count
                else f"{name}: no open incident (the {len(notes)} notification(s) are settled)"
            )
            cols[0].caption(notes[0].body)
            cols[1].caption(pf.since(notes[0].created_at))
            if notes[0].link:
                _open_link(cols[1], notes[0].link)
            if cols[2].button("Mark done", key=f"inbox_alerts_{model_id}"):
                try:
                    for note in notes:
                        pf.mark_read(ctx.db, ctx.principal, note.id or 0)
                    st.rerun()
                except QuorumError as error:
                    fail(error)


def _review_queue(ctx: PageContext) -> list[reviews.QueueItem]:
    if not ctx.principal.can_anywhere(Permission.DECIDE):
        return []
    return reviews.review_queue(ctx.db, ctx.principal)


def _task_row(kind: str, title: str, detail: str, link: str) -> None:
    with st.container(border=True):
        cols = st.columns([6, 2, 2])
        cols[0].markdown(f"**{kind}**")
        cols[0].text(f"{title}\n{detail}")
        _open_link(cols[1], link)


def _open_link(container: Any, link: str) -> None:
    path, _, query = link.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    container.page_link(path, label="Open", icon=":material/open_in_new:", query_params=params)


def _kind_label(kind: str) -> str:
    return {
        "review_requested": "Review requested",
        "mention": "You were mentioned",
        "changes_requested": "Changes requested on your version",
        "alert": "Monitoring alert",
        "signoff_expiring": "Sign-off expiring",
    }.get(kind, kind.replace("_", " ").capitalize())


PAGE_ROWS = 50


def page_of(rows: list[pf.ModelRow], key: str) -> list[pf.ModelRow]:
    """One page of a long model list, with a page picker when there is more than one page."""
    pages = max((len(rows) + PAGE_ROWS - 1) // PAGE_ROWS, 1)
    if pages == 1:
        return rows
    number = int(
        st.number_input(
            f"Page (of {pages}, {PAGE_ROWS} models each)",
            min_value=1,
            max_value=pages,
            value=1,
            step=1,
            key=key,
        )
    )
    return rows[(number - 1) * PAGE_ROWS : number * PAGE_ROWS]


def portfolio_section(data: pf.Portfolio) -> None:
    st.subheader("Portfolio")
    cols = st.columns(4)
    cols[0].metric("Models", data.total_models or len(data.models))
    cols[1].metric("Live deployments", data.live_count)
    cols[2].metric("Awaiting review", data.state_counts.get("In review", 0))
    cols[3].metric("Approved, not live", data.state_counts.get("Approved", 0))
    if data.models:
        frame = pd.DataFrame(
            [
                {  # State and Live first: on a phone only the first columns fit the screen
                    "Model": m.name,
                    "State": m.latest_state,
                    "Live": ", ".join(f"{env}: v{n}" for env, n in sorted(m.live.items()))
                    or "not deployed",
                    "Latest version": m.latest_version,
                    "Risk": m.risk_tier,
                    "Team": m.team,
                    "Owner": m.owner,
                }
                for m in data.models
            ]
        )
        st.dataframe(frame, hide_index=True, width="stretch")
        if data.total_models > len(data.models):
            st.caption(
                f"The first {len(data.models)} of {data.total_models} models; the Models page "
                "lists them all."
            )
    else:
        st.info(
            "No model is visible to you. Models belong to teams: a data scientist registers one "
            "on the Register page, or ask an admin for a role in the team whose models you need."
        )
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
