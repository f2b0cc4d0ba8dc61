"""Profile: my roles and my personal access tokens for the CLI and SDK."""

import streamlit as st

from core.ui import profile
from core.ui.session import page

ctx = page("pages/9_Profile.py")
st.title("Profile and tokens")
profile.roles_section(ctx)
profile.notifications_section(ctx)
profile.tokens_section(ctx)
profile.service_accounts_section(ctx)
