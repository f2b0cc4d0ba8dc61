"""The only streamlit-aware part of core: engine cache, sign-in gate, navigation, messages."""
