"""Compliance: checklists, sign-offs, approval packs and the model timeline."""

import streamlit as st

from core.ui import compliance_page
from core.ui.session import page

ctx = page("pages/6_Compliance.py")
st.title("Compliance")
compliance_page.render(ctx)
