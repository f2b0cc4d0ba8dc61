"""Deployments: what is live where, promotion, rollback and history."""

import streamlit as st

from core.ui import deployments_page
from core.ui.session import page

ctx = page("pages/4_Deployments.py")
st.title("Deployments")
deployments_page.render(ctx)
