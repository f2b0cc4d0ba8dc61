"""Home: what waits for me, the portfolio at a glance, recent activity.

`streamlit run app.py` finds the module-level `st.App` below and serves, on one port, the
pages (this script as Home, pages/ beside it), /_stcore/health and the REST API at /api/v1.
The server imports this file as a module to build that app; each page run executes it as
`__main__`, which draws Home.
"""

import streamlit as st

if __name__ == "__main__":
    from core.services import portfolio as pf
    from core.ui import home
    from core.ui.session import page

    ctx = page("app.py")
    st.title("Home")
    st.caption(f"Welcome, {ctx.principal.name}.")
    if ctx.settings.demo_login:
        st.caption("Demo mode is on: the data here is the demo portfolio.")

    home.inbox_section(ctx)
    home.revalidation_section(ctx)
    home.portfolio_section(
        pf.portfolio(ctx.db, ctx.principal, limit=home.PAGE_ROWS), home.board_rows(ctx)
    )
else:
    from starlette.routing import Mount

    from core import scheduler
    from core.api.app import PREFIX, create_app

    app = st.App("app.py", routes=[Mount(PREFIX, app=create_app())])
    scheduler.start_with_server()  # each process runs the due jobs it wins (once per cluster)
