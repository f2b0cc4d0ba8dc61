"""Home page sections."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.errors import QuorumError
from core.services import board, findings, monitoring, revalidation, reviews
from core.services import portfolio as pf
from core.ui.findings_panel import revalidation_badges
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
    owned = findings.my_findings(ctx.db, ctx.principal)
    rounds = revalidation.open_revalidations(ctx.db, ctx.principal)
    if not items and not queue and not tasks and not alerts and not owned and not rounds:
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
    for f in owned:
        _task_row(
            "Your finding",
            f"#{f.id} {f.model} v{f.version} ({f.severity})",
            ("OVERDUE — " if f.overdue else "") + f"due {f.due_on.isoformat()}: {f.text[:120]}",
            f.link,
        )
    for r in rounds:
        _task_row("Revalidate", f"{r.model} v{r.version}", r.label, r.link)
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
        "approved": "Your version was approved",
        "rejected": "Your version was rejected",
        "incident.closed": "Incident closed",
        "deployment.promoted": "Promoted",
        "deployment.rolled_back": "Rolled back",
        "finding.raised": "Finding raised",
        "finding.due": "Finding overdue",
        "finding.answered": "Finding answered",
        "revalidation.due": "Revalidation due",
        "revalidation.failed": "Revalidation failed",
        "digest": "Weekly digest",
    }.get(kind, kind.replace("_", " ").replace(".", ": ").capitalize())


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


def revalidation_section(ctx: PageContext) -> None:
    """Live versions whose revalidation failed, is overdue or due soon."""
    revalidation_badges(ctx)


LIGHTS = {
    monitoring.HEALTHY: ("Healthy", "background-color: #d4edda; color: #155724"),
    monitoring.AT_RISK: ("At risk", "background-color: #fff3cd; color: #7a5a00"),
    monitoring.FAILING: ("Failing", "background-color: #f8d7da; color: #842029"),
    monitoring.NO_DATA: ("No data yet", "color: #555555"),
    board.NOT_LIVE: ("Not live", "color: #555555"),
}
LIGHT_STYLES = dict(LIGHTS.values())


def board_rows(ctx: PageContext) -> list[board.BoardRow]:
    """The board, recomputed only when something it shows changed (kept in the session)."""
    key = (ctx.principal.user_id, board.fingerprint(ctx.db))
    cached = st.session_state.get("_home_board_rows")
    if cached is not None and cached[0] == key:
        return list(cached[1])
    rows = board.health_board(ctx.db, ctx.principal, limit=PAGE_ROWS)
    st.session_state["_home_board_rows"] = (key, rows)
    return rows


def board_section(rows: list[board.BoardRow]) -> None:
    """One row per model: does it meet its goal, its recent values, what is being done."""
    st.markdown("**Health of each model in production**")
    if not rows:
        return
    flags = any(r.flags for r in rows)
    frame = pd.DataFrame(
        [
            {
                "Health": LIGHTS.get(r.status, (r.status, ""))[0],
                "Model": r.model,
                "In plain words": r.verdict,
                "Goal": r.goal,
                "Latest value": r.latest,
                "Being done": "; ".join(r.activity) or "nothing in progress",
                "Waiting for you": "; ".join(r.mine),
                **({"Notes": "; ".join(r.flags)} if flags else {}),
                "Recent windows": r.trend,
                "Live": ", ".join(f"{env}: v{n}" for env, n in sorted(r.live.items()))
                or "not deployed",
                "Team": r.team,
                "Risk": r.risk_tier,
            }
            for r in rows
        ]
    )
    st.dataframe(
        frame.style.map(lambda v: LIGHT_STYLES.get(v, ""), subset=["Health"]),
        hide_index=True,
        width="stretch",
        key="home_board",
        column_config={
            "Recent windows": st.column_config.LineChartColumn(
                "Goal metric, recent windows",
                help="The goal metric in each recent complete window, oldest to newest.",
            ),
            "Being done": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption(
        "Health is the Monitoring page's verdict on the latest production window; a partial "
        "window (still filling) is marked as such. Open Monitoring for the details."
    )


def portfolio_section(data: pf.Portfolio, rows: list[board.BoardRow] | None = None) -> None:
    st.subheader("Portfolio")
    cols = st.columns(4)
    cols[0].metric("Models", data.total_models or len(data.models))
    cols[1].metric("Live deployments", data.live_count)
    cols[2].metric("Awaiting review", data.state_counts.get("In review", 0))
    cols[3].metric("Approved, not live", data.state_counts.get("Approved", 0))
    if rows:
        board_section(rows)
        if data.total_models > len(rows):
            st.caption(
                f"The first {len(rows)} of {data.total_models} models; the Models page "
                "lists them all."
            )
    elif data.models:
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
