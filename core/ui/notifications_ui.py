"""The Admin page's Notifications tab: team webhooks, the host allow-list and the delivery
log with replay."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import QuorumError
from core.services.notifications import hooks
from core.services.notifications.events import EVENTS, PERSONAL_ONLY
from core.ui.session import PageContext, fail, flash

NEW_WEBHOOK_SECRET_KEY = "admin_new_webhook_secret"  # noqa: S105


def admin_section(ctx: PageContext) -> None:
    st.caption(
        "E-mails and webhook messages wait in an outbox and are sent every 30 seconds; a "
        "failure is retried with growing waits, then marked failed. Replay sends one again."
    )
    try:
        log = hooks.delivery_log(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    _delivery_log(ctx, log)
    st.divider()
    _webhooks(ctx)
    st.divider()
    _allow_list(ctx)


def _delivery_log(ctx: PageContext, log: list[hooks.LogRow]) -> None:
    st.markdown("**Delivery log**")
    if not log:
        st.caption("Nothing was sent yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "#": r.id,
                    "Channel": r.channel,
                    "To": r.to,
                    "Event": r.event,
                    "Subject": r.subject,
                    "Status": r.status,
                    "Attempts": r.attempts,
                    "Next try (UTC)": r.next_attempt_at.strftime("%H:%M:%S")
                    if r.next_attempt_at
                    else "",
                    "Last error": r.last_error,
                }
                for r in log
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    done = [r for r in log if r.status != "pending"]
    if not done:
        return
    choice = st.selectbox(
        "Delivery",
        done,
        key="delivery_choice",
        format_func=lambda r: f"#{r.id} {r.channel} to {r.to}: {r.subject[:60]} ({r.status})",
    )
    tries = hooks.attempts_of(ctx.db, ctx.principal, choice.id)
    for t in tries:
        st.text(f"{t.attempted_at:%Y-%m-%d %H:%M:%S} {'sent' if t.ok else 'failed'}: {t.detail}")
    if st.button("Replay this delivery", key="replay_delivery"):
        try:
            hooks.replay(ctx.db, ctx.principal, choice.id)
            flash(f"Delivery #{choice.id} is queued again; it is sent within 30 seconds.")
            st.rerun()
        except QuorumError as error:
            fail(error)


def _webhooks(ctx: PageContext) -> None:
    st.markdown("**Team webhooks**")
    secret = st.session_state.pop(NEW_WEBHOOK_SECRET_KEY, None)
    if secret:
        st.success(
            "Webhook added. Copy its signing secret now: it will not be shown again. The "
            "receiver checks X-Quorum-Signature = sha256=HMAC(secret, timestamp + '.' + body)."
        )
        st.code(secret, language=None)
    existing = hooks.webhooks(ctx.db, ctx.principal)
    if existing:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Team": w.team,
                        "Name": w.name,
                        "Address": w.url,
                        "Events": ", ".join(w.events) or "all",
                    }
                    for w in existing
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    with st.form("new_webhook", clear_on_submit=True):
        team = st.text_input("Team", key="webhook_team")
        name = st.text_input("Name", key="webhook_name", placeholder="risk channel")
        url = st.text_input("Address", key="webhook_url", placeholder="https://hooks.slack.com/…")
        events = st.multiselect(
            "Events (none: all)",
            [e for e in EVENTS if e not in PERSONAL_ONLY],
            key="webhook_events",
        )
        if st.form_submit_button("Add webhook"):
            try:
                new = hooks.create_webhook(
                    ctx.db, ctx.principal, ctx.settings, team, name, url, events
                )
                st.session_state[NEW_WEBHOOK_SECRET_KEY] = new.secret
                st.rerun()
            except QuorumError as error:
                fail(error)
    if existing:
        gone = st.selectbox(
            "Remove a webhook", existing, key="webhook_remove", format_func=lambda w: w.name
        )
        if st.button("Remove webhook", key="webhook_remove_button"):
            try:
                hooks.revoke_webhook(ctx.db, ctx.principal, gone.id)
                flash(f"Webhook {gone.name} removed: nothing more is sent to it.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def _allow_list(ctx: PageContext) -> None:
    st.markdown("**Hosts webhooks may reach**")
    allowed = hooks.allowed_hosts(ctx.db, ctx.principal)
    for row in allowed:
        st.text(f"{row.host}{' (private addresses allowed)' if row.allow_private else ''}")
    with st.form("allow_host", clear_on_submit=True):
        host = st.text_input("Host", key="allow_host_name", placeholder="hooks.slack.com")
        private = st.checkbox(
            "Allow private and loopback addresses for this host", key="allow_host_private"
        )
        reason = st.text_input("Reason", key="allow_host_reason")
        if st.form_submit_button("Allow host"):
            try:
                hooks.allow_host(ctx.db, ctx.principal, host, allow_private=private, reason=reason)
                flash(f"Webhooks may now go to {host.strip().lower()}.")
                st.rerun()
            except QuorumError as error:
                fail(error)
