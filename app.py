"""Home: what waits for me, the portfolio at a glance, recent activity."""

import streamlit as st

from core.services import portfolio as pf
from core.ui import home
from core.ui.session import page

ctx = page("app.py")
st.title("Home")
st.caption(f"Welcome, {ctx.principal.name}.")
if ctx.settings.demo_login:
    st.caption("Demo mode is on: the data here is the demo portfolio.")

home.inbox_section(ctx)
home.portfolio_section(pf.portfolio(ctx.db, ctx.principal, limit=home.PAGE_ROWS))
