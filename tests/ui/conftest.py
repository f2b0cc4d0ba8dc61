"""Helpers shared by the AppTest page tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def shown_tab(at: AppTest) -> str:
    """The label of the tab the server tells the browser to show (the page has one st.tabs)."""
    (container,) = [node for node in at if getattr(node, "type", "") == "tab_container"]
    labels = [tab.label for tab in container.children.values()]
    return labels[container.proto.tab_container.default_tab_index]
