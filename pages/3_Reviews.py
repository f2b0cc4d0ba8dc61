"""Reviews: my queue, then one version's evidence, discussion and decision."""

import streamlit as st

from core.ui import reviews_page
from core.ui.session import page

ctx = page("pages/3_Reviews.py")
st.title("Reviews")
reviews_page.render(ctx)
