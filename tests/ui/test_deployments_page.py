"""The Deployments page on the demo store: promotion offers only environments where the version
is not live, production promotion is disabled with its reasons beside it while the version is
not ready, and rollback starts on an environment it can undo, naming the version it restores."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from streamlit.testing.v1 import AppTest

from core.auth import SYSTEM
from core.db import Database
from core.models import Role
from core.services import deployments
from tests.ui.kit import DemoStore, choose, labels, open_page

T = TypeVar("T")
PAGE = "pages/4_Deployments.py"
BIKE = "bike-demand-forecaster"  # v2 live in staging (after a rollback) and in production
CREDIT = "credit-default-scorer"  # v2 live in production, v3 in review


def _open(store: DemoStore, model: str) -> AppTest:
    return open_page(PAGE, store.user_ids[Role.REVIEWER], {"model": model})


def _pick(at: AppTest, key: str, label: str) -> AppTest:
    choose(at.selectbox(key=key), label)
    return at.run()


def _service(store: DemoStore, call: Callable[[Database], T]) -> T:
    db = Database(store.url)
    try:
        return call(db)
    finally:
        db.dispose()


def _promote_buttons(at: AppTest) -> list[str]:
    return sorted(label for label in labels(at, "button") if label.startswith("Promote "))


def test_promotion_never_offers_an_environment_where_the_version_is_live(
    demo_env: DemoStore,
) -> None:
    at = _open(demo_env, BIKE)
    assert [m.value for m in at.metric][:2] == ["v2", "v2"]
    _pick(at, "promote_version", "v2 — Approved")
    assert "promote_env" not in {box.key for box in at.selectbox}
    assert _promote_buttons(at) == []
    assert any("v2 is live in every environment already" in i.value for i in at.info)

    _pick(at, "promote_version", "v3 — Approved")
    assert at.selectbox(key="promote_env").options == ["staging (now v2)", "production (now v2)"]
    assert _promote_buttons(at) == ["Promote v3 to staging"]

    at = _open(demo_env, CREDIT)
    _pick(at, "promote_version", "v2 — Approved")
    assert at.selectbox(key="promote_env").options == ["staging"]
    assert "v2 is already live in production." in [c.value for c in at.caption]


def test_production_promotion_is_disabled_with_the_reasons_beside_it(demo_env: DemoStore) -> None:
    at = _open(demo_env, CREDIT)
    _pick(at, "promote_version", "v3 — In review")
    staging = next(b for b in at.button if b.proto.label == "Promote v3 to staging")
    assert not staging.proto.disabled

    _pick(at, "promote_env", "production (now v2)")
    button = next(b for b in at.button if b.proto.label == "Promote v3 to production")
    assert button.proto.disabled
    (warning,) = [w.value for w in at.warning if w.value.startswith("Not ready for production")]
    missing = _service(demo_env, lambda db: deployments.readiness(db, SYSTEM, CREDIT, 3))
    assert missing and all(line in warning for line in missing)
    assert not any(s.value.startswith("Ready for production") for s in at.success)


def test_rollback_starts_where_there_is_something_to_restore_and_names_it(
    demo_env: DemoStore,
) -> None:
    at = _open(demo_env, BIKE)
    box = at.selectbox(key="rollback_env")
    assert box.value == "production"
    assert box.options == [
        "staging (v2 live, nothing earlier)",
        "production (v2 live, back to v1)",
    ]
    assert "Roll back production to v1" in labels(at, "button")
    assert "Rolling back puts v1 back live in production, replacing v2." in [
        t.value for t in at.text
    ]

    _pick(at, "rollback_env", "staging (v2 live, nothing earlier)")
    assert not any(label.startswith("Roll back ") for label in labels(at, "button"))
    assert any("nothing to roll back to" in c.value for c in at.caption)

    _pick(at, "rollback_env", "production (v2 live, back to v1)")
    at.text_input(key="rollback_reason").input("v2 forecasts badly at night")
    next(b for b in at.button if b.proto.label == "Roll back production to v1").click()
    at.run()
    assert not at.exception
    assert any("in production to v1" in s.value for s in at.success)
    live = _service(demo_env, lambda db: deployments.status(db, SYSTEM, BIKE))
    assert live == {"staging": 2, "production": 1}
    assert [m.value for m in at.metric][:2] == ["v2", "v1"]
