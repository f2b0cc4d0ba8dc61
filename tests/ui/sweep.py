"""The page sweep: a page, opened by one role through a deep link to every demo model (and
every version) it can show, then every picker on it tried. Each stop must be free of exceptions
and tracebacks and show what the page is for (its content signal)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from streamlit.testing.v1 import AppTest

from core.auth import ROLE_PERMISSIONS, SYSTEM, Permission
from core.db import Database
from core.models import Role, VersionState
from core.services import model_view, monitoring
from core.services import portfolio as pf
from core.ui import nav
from tests.ui.kit import DemoStore, frame_values, labels, open_page, role_id, texts, walk_pickers

ENVIRONMENTS = ("staging", "production")
# Pickers the sweep reaches through the URL, for every model and version, rather than by
# clicking: the walk leaves them alone.
DEEP_LINKED = frozenset(
    {
        "models_choice",
        "models_version",
        "review_model",
        "review_version",
        "comp_model",
        "comp_version",
        "deploy_model",
        "mon_model",
        "register_model",
    }
)


@dataclass(frozen=True)
class Stop:
    """One deep link: a page as `role` sees it for `model` v`number` (either may be None)."""

    page: str
    role: Role | None
    model: str | None = None
    number: int | None = None
    state: str = ""
    live: bool = False  # the model is live somewhere (so it has monitoring)
    versions: int = 0  # how many versions the model has
    promotable: bool = False  # some version is approved or in review
    walking: bool = False  # pickers have been changed since the deep link opened

    @property
    def params(self) -> dict[str, str]:
        params = {"model": self.model} if self.model else {}
        if self.number is not None:
            params["version"] = str(self.number)
        return params

    def may(self, permission: Permission) -> bool:
        return self.role is not None and permission in ROLE_PERMISSIONS[self.role]

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.page}?{query} as {role_id(self.role)}"


def may_open(page: str, role: Role | None) -> bool:
    spec = nav.spec_for(page)
    return spec.permission is None or (
        role is not None and spec.permission in ROLE_PERMISSIONS[role]
    )


def stops(url: str, page: str, role: Role | None, per_version: bool) -> list[Stop]:
    """Every demo model (and every version of it) in the store, as deep links for `page`."""
    db = Database(url)
    try:
        live_models = set(monitoring.monitored_models(db, SYSTEM))
        found = []
        for name in pf.model_names(db, SYSTEM):
            detail = model_view.model_detail(db, SYSTEM, name, ENVIRONMENTS)
            live = name in live_models
            count = len(detail.versions)
            promotable = any(
                v.version.state in (VersionState.APPROVED, VersionState.IN_REVIEW)
                for v in detail.versions
            )
            if not per_version:
                found.append(
                    Stop(page, role, name, live=live, versions=count, promotable=promotable)
                )
                continue
            for view in detail.versions:
                v = view.version
                found.append(
                    Stop(page, role, name, v.number, str(v.state), live, count, promotable)
                )
        return found
    finally:
        db.dispose()


def sweep(stop: Stop, user_id: int, check: Callable[[AppTest, Stop], None]) -> list[str]:
    """Open the deep link, check it, then walk every picker, checking after each choice."""
    at = open_page(stop.page, user_id, stop.params)
    where = str(stop)
    try:
        check(at, stop)
        walking = replace(stop, walking=True)
        steps = walk_pickers(at, lambda again: check(again, walking), skip=DEEP_LINKED)
    except AssertionError as error:
        raise AssertionError(f"{where}: {error}") from error
    return steps


# --- content signals ---------------------------------------------------------------------------


def _headers(at: AppTest) -> list[str]:
    return [h.value for h in at.header]


def _subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def _compare_signal(at: AppTest, number: int) -> None:
    """The comparison drew its verdict, or said in words why there is nothing to compare."""
    shown = texts(at) + "\n".join(i.value for i in at.info)
    assert (
        f"**v{number} (candidate) against" in shown
        or "nothing to compare" in shown
        or "only one version" in shown
        or "no evaluation to compare on" in shown
        or "has not been computed yet" in shown
    ), "the comparison neither drew nor explained itself"
    if f"**v{number} (candidate) against" not in shown:
        return
    tables = [df.value for df in at.dataframe if "Verdict" in df.value.columns]
    assert 1 <= len(tables) <= 2, "one table per kind of data: evaluation, production"
    for table in tables:
        assert len(table) > 0
        for change, verdict in zip(table["Change"], table["Verdict"], strict=True):
            assert verdict in ("better", "worse", "same", "—"), verdict
            assert (f"({verdict}" in change) == (verdict in ("better", "worse")), (change, verdict)
            assert "▲" not in change and "▼" not in change


def models_page(at: AppTest, stop: Stop) -> None:
    if stop.role is None:
        return sees_nothing(at, stop)
    assert stop.model in _headers(at), _headers(at)
    assert at.selectbox(key="models_version").value == stop.number
    assert "Save model card" in labels(at, "button")
    _compare_signal(at, stop.number or 0)


def reviews_page(at: AppTest, stop: Stop) -> None:
    if stop.role is None:
        return sees_nothing(at, stop)
    assert f"{stop.model} v{stop.number}" in _headers(at), _headers(at)
    subheaders = _subheaders(at)
    assert {"Compared with the champion", "Decisions", "Discussion"} <= set(subheaders)
    assert "Post comment" in labels(at, "button")
    _compare_signal(at, stop.number or 0)
    shown = "\n".join(e.value for kind in ("info", "success") for e in at.get(kind))
    for given, needed in re.findall(r"(\d+) of (\d+) approvals", shown):
        assert int(given) <= int(needed), f"{given} of {needed} approvals"
    deciding = stop.state == VersionState.IN_REVIEW and stop.may(Permission.DECIDE)
    assert ("Your decision" in subheaders) == deciding
    assert ("Record decision" in labels(at, "button")) == deciding


def compliance_page(at: AppTest, stop: Stop) -> None:
    if stop.role is None:
        return sees_nothing(at, stop)
    assert f"{stop.model} v{stop.number}" in _headers(at), _headers(at)
    assert "Status by framework" in _subheaders(at)
    assert {t.label for t in at.tabs} >= {"Checklists", "Sign-offs", "Approval pack", "Timeline"}


def sees_nothing(at: AppTest, stop: Stop) -> None:
    """A signed-in person with no role sees no team's models: none is offered or listed, and
    the deep-linked one answers as if it did not exist."""
    offered = {o for box in at.selectbox for o in (box.options or [])}
    assert stop.model not in offered, f"{stop.model} is offered to someone with no role"
    if stop.model:
        assert stop.model not in frame_values(at), f"{stop.model} is listed to someone with no role"
    assert "bike-demand-forecaster" not in frame_values(at)


def deployments_page(at: AppTest, stop: Stop) -> None:
    if stop.role is None:
        return sees_nothing(at, stop)
    assert at.selectbox(key="deploy_model").value == stop.model
    assert [m.label for m in at.metric][: len(ENVIRONMENTS)] == [
        e.capitalize() for e in ENVIRONMENTS
    ]
    assert "History" in _subheaders(at)
    assert ("Promote" in _subheaders(at)) == stop.may(Permission.DEPLOY)
    live = {m.label.lower(): m.value for m in at.metric}
    not_ready = any(w.value.startswith("Not ready for production") for w in at.warning)
    for button in at.button:
        offer = re.fullmatch(r"Promote v(\d+) to (\w+)", button.proto.label)
        if offer:
            assert live.get(offer[2]) != f"v{offer[1]}", f"offers {offer[0]}, already live"
            assert button.proto.disabled == (offer[2] == "production" and not_ready)
        back = re.fullmatch(r"Roll back (\w+) to v(\d+)", button.proto.label)
        if back:
            assert live.get(back[1]) not in (None, f"v{back[2]}"), f"{back[0]}: nothing to undo"


def monitoring_page(at: AppTest, stop: Stop) -> None:
    if stop.role is None:
        return sees_nothing(at, stop)
    shown = at.selectbox(key="mon_model").value
    if not stop.live:  # the page says so, then shows a live model instead
        assert shown != stop.model
        told = any(f"{stop.model} is not live" in i.value for i in at.info)
        assert told or stop.walking, [i.value for i in at.info]
    else:
        assert shown == stop.model
    env = at.selectbox(key="mon_env").value
    health = any(s.startswith("Health: ") for s in _subheaders(at))
    nothing_there = any(f"live in '{env}'" in i.value for i in at.info)
    assert health or nothing_there, (_subheaders(at), [i.value for i in at.info])


def register_page(at: AppTest, stop: Stop) -> None:
    box = at.selectbox(key="register_model")
    assert box.options[box.index or 0] == stop.model
    assert "Check files" in labels(at, "button")


def scoring_page(at: AppTest, stop: Stop) -> None:
    box = at.selectbox(key="score_model")
    if stop.live:
        assert box.value == stop.model
    assert "Score" in labels(at, "button")


def home_page(at: AppTest, stop: Stop) -> None:
    assert {"Waiting for me", "Portfolio", "Recent activity"} <= set(_subheaders(at))
    if stop.role is None:
        return sees_nothing(at, stop)
    assert "bike-demand-forecaster" in frame_values(at)


def audit_page(at: AppTest, stop: Stop) -> None:
    assert "Verify the chain" in labels(at, "button")
    assert "events (newest first" in texts(at)


def admin_page(at: AppTest, stop: Stop) -> None:
    assert "ada@demo.quorum" in frame_values(at)
    assert {"Grant role", "Add person", "Create team"} <= labels(at, "button")


def profile_page(at: AppTest, stop: Stop) -> None:
    assert "Personal access tokens" in _subheaders(at)
    assert "Create token" in labels(at, "button")


def _nothing(stop: Stop) -> set[str]:
    return set()


def _compare(stop: Stop) -> set[str]:
    return {"Compare with"} if stop.versions > 1 and stop.role is not None else set()


def _deployments(stop: Stop) -> set[str]:
    if stop.role is None:
        return set()
    walked = {"in"} if stop.live else set()
    if stop.may(Permission.DEPLOY) and stop.promotable:
        walked |= {"Version"}
    return walked


@dataclass(frozen=True)
class PageSweep:
    check: Callable[[AppTest, Stop], None]
    per_model: bool = False  # deep-link every demo model
    per_version: bool = False  # ... and every version of it
    must_walk: Callable[[Stop], set[str]] = _nothing  # picker labels the walk must try


PAGES: dict[str, PageSweep] = {
    "pages/1_Models.py": PageSweep(models_page, True, True, _compare),
    "pages/3_Reviews.py": PageSweep(reviews_page, True, True, _compare),
    "pages/6_Compliance.py": PageSweep(compliance_page, True, True),
    "pages/4_Deployments.py": PageSweep(deployments_page, True, False, _deployments),
    "pages/5_Monitoring.py": PageSweep(monitoring_page, True),
    "pages/2_Register.py": PageSweep(register_page, True),
    "pages/45_Batch_scoring.py": PageSweep(scoring_page, True),
    "app.py": PageSweep(home_page),
    "pages/7_Audit.py": PageSweep(audit_page, must_walk=lambda _: {"Model", "Actor", "Action"}),
    "pages/8_Admin.py": PageSweep(admin_page),
    "pages/9_Profile.py": PageSweep(profile_page),
}


def cases(pages: list[str]) -> list[object]:
    """(page, role) pairs for every role allowed to open the page (refusals are checked in
    tests/ui/test_pages.py)."""
    from tests.ui.kit import ROLES

    return [
        pytest.param(page, role, id=f"{page}-{role_id(role)}")
        for page in pages
        for role in ROLES
        if may_open(page, role)
    ]


def run_sweep(page: str, role: Role | None, store: DemoStore) -> int:
    """Sweep `page` for `role` over every demo model and version; returns the stops made."""
    plan = PAGES[page]
    targets = (
        stops(store.url, page, role, plan.per_version) if plan.per_model else [Stop(page, role)]
    )
    assert targets, "the demo store has no models"
    made = 0
    for stop in targets:
        steps = sweep(stop, store.user_ids[role], plan.check)
        walked = {step.split(" = ", 1)[0] for step in steps}
        missing = plan.must_walk(stop) - walked
        assert not missing, f"{stop}: the walk never reached {sorted(missing)}"
        made += 1 + len(steps)
    return made
