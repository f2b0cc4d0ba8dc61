"""The model and version pickers that pages share, kept in step with the URL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from core.services import model_view
from core.services import portfolio as pf
from core.ui.session import PageContext


def asked_index(
    options: Sequence[Any],
    param: str,
    key: str,
    *,
    text: Callable[[Any], str] = str,
    default: int | None = 0,
) -> int | None:
    """Where ?param= points among `options` (matched by `text`), for a widget's first run;
    once the widget `key` holds a value of its own, that value wins and `default` is returned."""
    if key in st.session_state:
        return default
    asked = st.query_params.get(param)
    names = [text(option) for option in options]
    return names.index(asked) if asked in names else default


def open_version(model: str, number: int, prefix: str) -> None:
    """Point a page's pickers at one version, then rerun to show it."""
    st.session_state[f"{prefix}_model"] = model
    st.session_state[f"{prefix}_version"] = number
    st.query_params.update({"model": model, "version": str(number)})
    st.rerun()


def pick_version(ctx: PageContext, prefix: str) -> tuple[str, int] | None:
    """A model and one of its versions, from the widgets or else from ?model=&version=."""
    model_key, version_key = f"{prefix}_model", f"{prefix}_version"
    names = pf.model_names(ctx.db, ctx.principal)
    if not names:
        st.info("No models are registered yet.")
        return None
    wanted = st.query_params.get("model")
    cols = st.columns(2)
    name = cols[0].selectbox(
        "Model",
        names,
        index=None
        if model_key in st.session_state
        else (names.index(wanted) if wanted in names else None),
        key=model_key,
        placeholder="Choose a model",
    )
    if name is None:
        return None
    detail = model_view.model_detail(ctx.db, ctx.principal, name, ctx.settings.environments)
    numbers = [v.version.number for v in detail.versions]
    if not numbers:
        st.info(f"{name} has no versions yet.")
        return None
    asked = st.query_params.get("version")
    index = numbers.index(int(asked)) if asked and asked.isdigit() and int(asked) in numbers else 0
    number = cols[1].selectbox(
        "Version",
        numbers,
        index=0 if version_key in st.session_state else index,
        key=version_key,
        format_func=lambda n: f"v{n} — {detail.version(n).state_label}",
    )
    st.query_params.update({"model": name, "version": str(number)})
    return name, int(number or numbers[0])
