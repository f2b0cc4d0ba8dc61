"""Widgets whose state survives reruns, shared by the pages.

`tabs` is `st.tabs` with its selection kept as widget state (Streamlit sends it back with every
rerun, so a rerun never snaps back to the first tab) and mirrored in the URL as a slug,
`?tab=sign-offs`, so a link opens the page on the right tab.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st
from streamlit.elements.lib.mutable_tab_container import TabContainer

TAB_PARAM = "tab"


def slug(label: str) -> str:
    """The URL form of a tab label: lowercase words joined by '-' ("Sign-offs" -> "sign-offs")."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def tabs(labels: Sequence[str], *, key: str, param: str = TAB_PARAM) -> Sequence[TabContainer]:
    """Tabs that keep their place across reruns and follow `?{param}=<slug>`.

    The selected label is `st.session_state[key]`. A session's first run takes it from the
    URL (an unknown slug is ignored); from then on the widget state leads and the URL follows
    it, without the parameter while the first tab is open. Every tab's content still runs, so
    widgets in hidden tabs keep their values.
    """
    names = list(labels)
    by_slug = {slug(label): label for label in names}
    if len(by_slug) != len(names) or "" in by_slug:
        raise ValueError(f"tab labels need distinct, non-empty slugs: {names}")
    wanted = by_slug.get(str(st.query_params.get(param, "")))
    if wanted is not None and key not in st.session_state:
        st.session_state[key] = wanted
    containers = st.tabs(names, key=key, on_change="rerun")
    selected = st.session_state.get(key, names[0])
    _follow(param, slug(selected) if selected != names[0] else None)
    return containers


def _follow(param: str, value: str | None) -> None:
    """Write `param` to the URL only when it changes (each write is a message to the browser)."""
    current = st.query_params.get(param)
    if value is None:
        if current is not None:
            del st.query_params[param]
    elif current != value:
        st.query_params[param] = value
