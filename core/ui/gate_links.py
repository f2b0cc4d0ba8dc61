"""The production gate's missing list with a deep link per open checklist item: the link
opens the Compliance page on the version, the Checklists tab, and that item
(`?model=&version=&tab=checklists&item=<template>.<item>`), which the page opens and marks."""

from __future__ import annotations

import streamlit as st

from core.services import compliance

COMPLIANCE_PAGE = "pages/6_Compliance.py"
ITEM_PARAM = "item"


def item_params(model: str, number: int, template: str, item: str) -> dict[str, str]:
    return {
        "model": model,
        "version": str(number),
        "tab": "checklists",
        ITEM_PARAM: f"{template}.{item}",
    }


def asked_item() -> tuple[str, str] | None:
    """The (template, item) a deep link asks the Compliance page to open, if any."""
    raw = str(st.query_params.get(ITEM_PARAM, ""))
    template, dot, item = raw.partition(".")
    return (template, item) if dot and template and item else None


def gate_list(items: list[compliance.GateItem], model: str, number: int) -> None:
    """Each missing thing as a line; under a checklist line, a link to each open item."""
    for entry in items:
        st.text(f"• {entry.text}")
        if entry.template is not None:
            item_links([entry], model, number)


def item_links(items: list[compliance.GateItem], model: str, number: int) -> None:
    """One link per open checklist item of `items`, four to a row."""
    for entry in items:
        if entry.template is None or not entry.items:
            continue
        links = st.columns(min(len(entry.items), 4))
        for n, key in enumerate(entry.items):
            links[n % len(links)].page_link(
                COMPLIANCE_PAGE,
                label=f"Open {entry.template} item {key}",
                icon=":material/checklist:",
                query_params=item_params(model, number, entry.template, key),
            )
