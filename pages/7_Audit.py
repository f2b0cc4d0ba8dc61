"""Audit trail: search, verify the hash chain, export CSV."""

import streamlit as st

from core.ui import audit_page
from core.ui.session import page

ctx = page("pages/7_Audit.py")
st.title("Audit trail")
st.caption(
    "Every change and every refusal, hash-chained: editing, removing or reordering an event "
    "breaks the chain from that event on."
)
audit_page.verify_section(ctx)
audit_page.search_section(ctx)
