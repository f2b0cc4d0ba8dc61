"""Helpers for the AppTest page tests: the demo people by role, a page opened through a deep
link, the text a page shows, a health check (no exception, no traceback), and a walk through
the options of every picker a page draws."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from streamlit.components.v2.component_manager import BidiComponentManager
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import DateInput, Radio, Selectbox, Widget

from core.models import Role
from core.ui.session import USER_KEY

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60
NO_ROLE_EMAIL = "nobody@demo.quorum"
EMAIL_BY_ROLE: dict[Role | None, str] = {
    Role.DATA_SCIENTIST: "dana@demo.quorum",
    Role.REVIEWER: "riley@demo.quorum",
    Role.COMPLIANCE: "casey@demo.quorum",
    Role.BUSINESS: "blake@demo.quorum",
    Role.ADMIN: "ada@demo.quorum",
    None: NO_ROLE_EMAIL,
}
ROLES = list(EMAIL_BY_ROLE)
MAX_OPTIONS = 5  # a picker with more options is sampled: first, middle and last
TRACEBACK = re.compile(r"Traceback|File \"|\b[A-Z]\w*(Error|Exception)\b")


@dataclass(frozen=True)
class DemoStore:
    url: str
    user_ids: dict[Role | None, int]


def role_id(role: Role | None) -> str:
    return "no_role" if role is None else role.value


@cache
def _components() -> BidiComponentManager:
    """Each new AppTest scans every installed distribution's metadata for custom components
    (about 0.6 s of CPU; Quorum uses none). A server does it once; so do the tests."""
    manager = BidiComponentManager()
    manager.discover_and_register_components(start_file_watching=False)
    return manager


def new_session() -> AppTest:
    """A fresh browser session on the app (empty st.session_state)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at._bidi_component_manager = _components()
    return at


def open_page(path: str, user_id: int | None, params: dict[str, str] | None = None) -> AppTest:
    """A fresh session (empty st.session_state) that deep-links straight to `path`?`params`."""
    at = new_session()
    if user_id is not None:
        at.session_state[USER_KEY] = user_id
    for name, value in (params or {}).items():
        at.query_params[name] = value
    if path != "app.py":
        at.switch_page(path)
    at.run()
    assert_healthy(at, f"open {path} {params or ''}")
    return at


def assert_healthy(at: AppTest, step: str) -> None:
    """No exception escaped the script, and no message shows a traceback or an exception name."""
    assert not at.exception, f"{step}: {[e.message for e in at.exception]}"
    for kind in ("error", "warning", "info", "text", "markdown"):
        for element in at.get(kind):
            value = str(getattr(element, "value", ""))
            assert not TRACEBACK.search(value), f"{step}: {kind} shows {value!r}"


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("title", "header", "subheader", "caption", "markdown", "text")
        for e in at.get(kind)
        if isinstance(getattr(e, "value", None), str)
    ]
    return "\n".join(parts)


def labels(at: AppTest, kind: str) -> set[str]:
    return {e.proto.label for e in at.get(kind)}


def frame_values(at: AppTest) -> str:
    return "\n".join(df.value.to_csv() for df in at.dataframe)


# --- walking the pickers -----------------------------------------------------------------------


def _ident(widget: Widget) -> str:
    return widget.key or widget.id


def pickers(at: AppTest, skip: Iterable[str] = ()) -> list[Widget]:
    """Widgets that redraw the page when changed: choices outside forms (a form's widgets change
    nothing until it is submitted, and this walk never submits)."""
    skipped = set(skip)
    found: list[Widget] = []
    for kind in ("selectbox", "radio", "date_input"):
        for widget in at.get(kind):
            assert isinstance(widget, Widget)
            if getattr(widget.proto, "form_id", "") or _ident(widget) in skipped:
                continue
            if isinstance(widget, Selectbox | Radio) and len(widget.options) < 2:
                continue
            found.append(widget)
    return found


def choices(widget: Widget) -> list[Any]:
    """What to try in `widget`: every other option, or first, middle and last of a long list;
    for a date, a year ago (a single date) or the last thirty days (a range)."""
    if isinstance(widget, DateInput):
        today = date.today()
        return (
            [(today - timedelta(days=30), today)]
            if widget.proto.is_range
            else [today - timedelta(days=365)]
        )
    assert isinstance(widget, Selectbox | Radio)
    options, current = widget.options, widget.index
    picked = (
        options
        if len(options) <= MAX_OPTIONS
        else [options[0], options[len(options) // 2], options[-1]]
    )
    return [o for o in dict.fromkeys(picked) if current is None or o != options[current]]


def choose(widget: Widget, choice: Any) -> None:
    """Set `widget` as the browser would: a selectbox or radio sends the text of the option."""
    if isinstance(widget, DateInput):
        widget.set_value(choice)
        return
    state = WidgetState(id=widget.id, string_value=choice)
    widget.__class__ = type(
        f"Chosen{type(widget).__name__}",
        (type(widget),),
        {"_widget_state": property(lambda _self: state)},
    )


def walk_pickers(
    at: AppTest, check: Callable[[AppTest], None], skip: Iterable[str] = ()
) -> list[str]:
    """Try the options of every picker on the page, one picker at a time (the others keep their
    last choice), including pickers that appear along the way; after each choice the page must
    be healthy and pass `check`. Returns the steps taken."""
    done: set[str] = set()
    steps: list[str] = []
    while True:
        widget = next((w for w in pickers(at, skip) if _ident(w) not in done), None)
        if widget is None:
            return steps
        name = _ident(widget)
        done.add(name)
        for choice in choices(widget):
            current = next((w for w in pickers(at, skip) if _ident(w) == name), None)
            if current is None:
                break
            if isinstance(current, Selectbox | Radio) and choice not in current.options:
                continue
            choose(current, choice)
            at.run()
            step = f"{current.label} = {choice}"
            assert_healthy(at, step)
            check(at)
            steps.append(step)
