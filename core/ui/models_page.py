"""Models page: list of models; a chosen model's details."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.services import portfolio as pf
from core.ui.session import PageContext


def render(ctx: PageContext) -> None:
    data = pf.portfolio(ctx.db, recent=0)
    if not data.models:
        st.info("No models are registered yet. Data scientists register them on the Register page.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Model": m.name,
                    "Team": m.team,
                    "Task": m.task.replace("_", " "),
                    "Risk": m.risk_tier,
                    "Owner": m.owner,
                    "Latest": m.latest_version,
                    "State": m.latest_state,
                }
                for m in data.models
            ]
        ),
        hide_index=True,
        width="stretch",
    )
