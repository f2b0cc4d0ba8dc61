"""Register: a new model, or a new version of one, with its evaluation data."""

import streamlit as st

from core.ui import register_page
from core.ui.session import page

ctx = page("pages/2_Register.py")
st.title("Register a version")
st.caption(
    "Upload a scikit-learn model and its evaluation data. Quorum scans the file without running "
    "it, evaluates it, and shows you a summary before anything is stored."
)
register_page.render(ctx)
