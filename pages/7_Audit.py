"""Audit trail: search, verify the hash chain, export CSV."""

import streamlit as st

from core.ui import audit_page
from core.ui.session import page

ctx = page("pages/7_Audit.py")
st.title("Audit trail")
st.caption(
    "Every change and every refusal, chained under a key only the server holds and anchored "
    "in signed, write-once checkpoints: editing, removing, truncating or replacing events is "
    "named by the verifier."
)
audit_page.verify_section(ctx)
audit_page.anchors_section(ctx)
audit_page.search_section(ctx)
