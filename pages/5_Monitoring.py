"""Monitoring: how live models do in production, from stored window aggregates."""

import streamlit as st

from core.ui import monitoring_page
from core.ui.session import page

ctx = page("pages/5_Monitoring.py")
st.title("Monitoring")
monitoring_page.render(ctx)
