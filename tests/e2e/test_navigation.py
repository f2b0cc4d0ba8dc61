"""Page switches keep widgets responsive, and every page has one h1 and labelled inputs.

Guards the Streamlit behaviour where the first widget change after a page switch was dropped
(a selectbox snapped back); AppTest cannot see it, a browser can.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import (
    ROOT,
    AppServer,
    as_demo_user,
    assert_accessible_basics,
    choose,
    go_to,
)

pytestmark = pytest.mark.e2e

PAGES_FOR_ADMIN = ["Models", "Reviews", "Deployments", "Audit trail", "Admin", "Profile and tokens"]
OPTIONAL_PAGES = {"Compliance": "6_Compliance.py", "Monitoring": "5_Monitoring.py"}


def _selected(page: Page, label: str) -> Locator:
    return page.get_by_role("combobox", name=label, exact=True)


def test_first_selectbox_change_after_a_page_switch_sticks(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "riley")
    go_to(page, "Models")
    go_to(page, "Deployments")
    model = _selected(page, "Model")
    expect(model).to_have_value("bike-demand-forecaster")
    choose(page, "Model", "tumour-benchmark-classifier")  # fails if the value snaps back
    expect(model).to_have_value("tumour-benchmark-classifier")
    assert "model=tumour-benchmark-classifier" in page.url
    expect(page.get_by_test_id("stMetric").first).to_be_visible()

    go_to(page, "Home")
    go_to(page, "Models")
    choose(page, "Open a model", "credit-default-scorer")
    expect(page.get_by_role("heading", name="credit-default-scorer", exact=True)).to_be_visible()


def test_every_page_has_one_heading_and_labelled_inputs(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "ada")
    assert_accessible_basics(page)
    labels = PAGES_FOR_ADMIN + [
        label for label, file in OPTIONAL_PAGES.items() if (ROOT / "pages" / file).exists()
    ]
    for label in labels:
        go_to(page, label)
        assert_accessible_basics(page)
