"""Models: the registry, one model's versions, card and evaluation."""

import streamlit as st

from core.ui import models_page
from core.ui.session import page

ctx = page("pages/1_Models.py")
st.title("Models")
models_page.render(ctx)
