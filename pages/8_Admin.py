"""Admin: people, teams, role grants and approval policies."""

import streamlit as st

from core.ui import admin, notifications_ui, widgets
from core.ui.session import page

ctx = page("pages/8_Admin.py")
st.title("Admin")
st.caption("Manage who may do what. Every change here is recorded in the audit trail.")
people, teams, services, policies, mappings, pending, outbox = widgets.tabs(
    [
        "People and roles",
        "Teams",
        "Service accounts",
        "Approval policies",
        "Sign-in role mappings",
        "Changes waiting for a second admin",
        "Notifications",
    ],
    key="admin_tab",
)
with people:
    admin.people_section(ctx)
with teams:
    admin.teams_section(ctx)
with services:
    admin.service_accounts_section(ctx)
with policies:
    admin.policies_section(ctx)
with mappings:
    admin.mappings_section(ctx)
with pending:
    admin.pending_section(ctx)
with outbox:
    notifications_ui.admin_section(ctx)
