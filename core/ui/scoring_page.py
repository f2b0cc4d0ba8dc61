"""Batch scoring page: upload a table, score it with the live version, download the result."""

from __future__ import annotations

import streamlit as st

from core.errors import QuorumError
from core.services import monitoring, scoring
from core.ui.pickers import asked_index
from core.ui.session import PageContext, fail

RESULT_KEY = "scoring_result"


def render(ctx: PageContext) -> None:
    names = monitoring.monitored_models(ctx.db, ctx.principal)
    if not names:
        st.info("No model is live yet; deploy a version to score with it.")
        return
    st.caption(
        "The live version scores every row. The predictions are also recorded for monitoring, "
        "with a generated prediction_id and the current time when the file has none."
    )
    with st.form("score_form"):
        model = st.selectbox(
            "Model", names, index=asked_index(names, "model", "score_model") or 0, key="score_model"
        )
        env = st.selectbox("Environment", list(ctx.settings.environments), key="score_env")
        file = st.file_uploader("CSV or Parquet", type=["csv", "parquet"], key="score_file")
        sent = st.form_submit_button("Score", type="primary")
    if sent and file is not None:
        bar = st.progress(0.0, text="Reading…")

        def progress(fraction: float, text: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=text)

        try:
            result = scoring.score_batch(
                ctx.db, ctx.principal, model, file.getvalue(), file.name, env, progress
            )
        except QuorumError as error:
            bar.empty()
            fail(error)
            return
        st.session_state[RESULT_KEY] = (model, result.message, result.predictions)
    stored = st.session_state.get(RESULT_KEY)
    if stored is None:
        return
    model, message, predictions = stored
    st.success(message)
    st.dataframe(predictions.head(1000), hide_index=True, width="stretch", key="score_preview")
    st.download_button(
        "Download predictions (CSV)",
        predictions.to_csv(index=False).encode(),
        file_name=f"{model}-predictions.csv",
        mime="text/csv",
        key="score_download",
    )
