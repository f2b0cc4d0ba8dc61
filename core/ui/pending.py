"""A change waiting for a second person (an admin, or a compliance officer for a model's
settings), drawn as a card with Confirm and Refuse; the service decides who may do which."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import QuorumError
from core.models import PendingChange
from core.services import changes
from core.ui.session import PageContext, fail, flash


def change_card(
    ctx: PageContext, change: changes.ChangeView, *, key: str = "change", title: str = ""
) -> None:
    with st.container(border=True):
        st.markdown(f"**{title or f'#{change.id} {change.kind}'}**")
        st.text(change.summary)
        st.caption(f"Proposed by {change.proposed_by} on {change.proposed_at:%Y-%m-%d %H:%M} UTC")
        reason = st.text_input("Reason (to refuse or withdraw)", key=f"{key}_reason_{change.id}")
        left, right = st.columns(2)
        if left.button("Confirm", key=f"{key}_confirm_{change.id}", type="primary"):
            act(lambda: changes.confirm(ctx.db, ctx.principal, change.id), "confirmed")
        if right.button("Refuse", key=f"{key}_refuse_{change.id}"):
            act(lambda: changes.refuse(ctx.db, ctx.principal, change.id, reason), "refused")


def act(call: Callable[[], PendingChange], verb: str) -> None:
    try:
        change = call()
        flash(f"Change #{change.id} {verb}.")
        st.rerun()
    except QuorumError as error:
        fail(error)
