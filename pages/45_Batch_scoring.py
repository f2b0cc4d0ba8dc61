"""Batch scoring: score a file with the live version and download the predictions."""

import streamlit as st

from core.ui import scoring_page
from core.ui.session import page

ctx = page("pages/45_Batch_scoring.py")
st.title("Batch scoring")
scoring_page.render(ctx)
