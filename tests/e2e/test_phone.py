"""At phone width (390 x 844): Home's health board shows each model's health and name without scrolling
sideways, and the sidebar folds away after a page is chosen in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import (
    RUN_WATCH,
    TIMEOUT_MS,
    AppServer,
    as_demo_user,
    click_until,
    screenshot,
    wait_idle,
)

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.add_init_script(RUN_WATCH)
    yield ctx
    ctx.close()


def _folded(page: Page) -> None:
    expect(page.get_by_test_id("stSidebar")).to_have_attribute("data-collapsed", "true")


def _headers_on_screen(page: Page) -> list[str]:
    """The portfolio table's column headers that are drawn, left to right (the grid keeps an
    accessible copy of the cells it draws, so a column scrolled out of view is not there)."""
    headers = page.get_by_test_id("stDataFrame").first.locator("th")
    expect(headers.first).to_be_attached()
    return [h.strip() for h in headers.all_text_contents() if h.strip()]


def test_home_on_a_phone_shows_state_and_live_and_the_sidebar_folds(
    phone: BrowserContext, demo_app: AppServer
) -> None:
    page = phone.new_page()
    as_demo_user(page, demo_app, "blake")
    _folded(page)  # a phone starts with the page, not the menu
    headers = _headers_on_screen(page)
    assert headers[:3] == ["Health", "Model", "In plain words"], headers  # the health board
    screenshot(page, "phone-home")

    for label in ("Models", "Home"):
        click_until(page, page.get_by_test_id("stExpandSidebarButton"), done=lambda: True)
        expect(page.get_by_test_id("stSidebar")).to_have_attribute("data-collapsed", "false")
        click_until(page, page.get_by_test_id("stSidebar").get_by_role("link", name=label))
        expect(page.get_by_role("heading", level=1, name=label)).to_be_visible()
        wait_idle(page)
        _folded(page)
        box = page.get_by_role("heading", level=1, name=label).bounding_box()
        assert box is not None and 0 <= box["x"] < PHONE["width"], box
