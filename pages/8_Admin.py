"""Admin: people, teams and role grants."""

import streamlit as st

from core.ui import admin, widgets
from core.ui.session import page

ctx = page("pages/8_Admin.py")
st.title("Admin")
st.caption("Manage who may do what. Every change here is recorded in the audit trail.")
people, teams, services = widgets.tabs(
    ["People and roles", "Teams", "Service accounts"], key="admin_tab"
)
with people:
    admin.people_section(ctx)
with teams:
    admin.teams_section(ctx)
with services:
    admin.service_accounts_section(ctx)
