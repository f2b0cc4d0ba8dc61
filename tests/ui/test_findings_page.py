"""Findings and revalidation on the pages: the finding link opens the Findings tab with the
finding, its owner answers there; Home and Monitoring flag the overdue revalidation; a
validator starts a revalidation round on the Reviews page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st

from core import config
from core.db import Database
from core.models import Role
from core.services import findings, revalidation, users
from tests.ui.conftest import shown_tab
from tests.ui.kit import DemoStore, assert_healthy, open_page, texts

CREDIT, BIKE = "credit-default-scorer", "bike-demand-forecaster"


@pytest.fixture(autouse=True)
def _store(demo_store: DemoStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("QUORUM_ENV", "QUORUM_AUTH", "QUORUM_SECRET_KEY", "QUORUM_COOKIE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUORUM_DATABASE_URL", demo_store.url)
    config.reset_settings()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    config.reset_settings()


def _demo_finding(store: DemoStore) -> findings.FindingView:
    db = Database(store.url)
    try:
        dana = users.principal_by_email(db, "dana@demo.quorum")
        (finding,) = findings.my_findings(db, dana)
        return finding
    finally:
        db.dispose()


def test_the_finding_link_opens_the_findings_tab_and_the_owner_answers(
    demo_store: DemoStore,
) -> None:
    finding = _demo_finding(demo_store)
    params = dict(p.split("=") for p in finding.link.split("?", 1)[1].split("&"))
    at = open_page("pages/1_Models.py", demo_store.user_ids[Role.DATA_SCIENTIST], params)
    assert shown_tab(at) == "Findings"
    assert any(f"#{finding.id} · medium · open" in e.proto.label for e in at.expander)
    at.text_area(key=f"answer_note_{finding.id}").input("Calibration by region added.")
    at.button(key=f"FormSubmitter:answer_{finding.id}-Answer").click().run()
    assert_healthy(at, "answer")
    assert f"Answered finding #{finding.id}" in texts(at) + "".join(
        str(s.value) for s in at.success
    )
    assert _demo_finding(demo_store).status == findings.ANSWERED
    assert "Raise finding" not in [b.label for b in at.button]  # a data scientist cannot


def test_home_and_monitoring_flag_the_overdue_revalidation(demo_store: DemoStore) -> None:
    at = open_page("app.py", demo_store.user_ids[Role.COMPLIANCE])
    warnings = [str(w.value) for w in at.warning]
    assert any(f"{BIKE} v2: revalidation overdue" in w for w in warnings), warnings
    at = open_page("pages/5_Monitoring.py", demo_store.user_ids[Role.REVIEWER], {"model": BIKE})
    assert any("revalidation overdue" in str(w.value) for w in at.warning)


def test_a_validator_starts_a_revalidation_round_on_the_reviews_page(
    demo_store: DemoStore,
) -> None:
    db = Database(demo_store.url)
    morgan = users.principal_by_email(db, "morgan@demo.quorum")
    at = open_page("pages/3_Reviews.py", morgan.user_id, {"model": BIKE, "version": "2"})
    assert "Revalidation" in [s.value for s in at.subheader]
    at.text_input(key="revalidation_reason").input("Overdue by the policy.")
    at.button(key="FormSubmitter:start_revalidation-Start a revalidation round").click().run()
    assert_healthy(at, "start revalidation")
    try:
        status = revalidation.model_revalidation(db, morgan, BIKE)
    finally:
        db.dispose()
    assert status is not None and status.open_round is not None
