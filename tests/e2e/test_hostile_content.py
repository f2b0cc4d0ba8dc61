"""R8 in a real browser: user text carrying HTML and script shows as text and runs nothing.

Hostile text goes in through the services (a model's purpose and goal description, a team
description, a review comment) and through an upload (a CSV column header); the pages are
then opened in Chromium, which listens for dialogs and console errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from playwright.sync_api import Dialog, Page, expect
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from core.demo import DEMO_TEAM
from core.services import registry, reviews, users
from tests.e2e.conftest import (
    AppServer,
    Store,
    as_demo_user,
    choose,
    click_button,
    fill,
    go_to,
    open_tab,
    screenshot,
    upload,
)

pytestmark = pytest.mark.e2e

SCRIPT = "<script>window.__xss=1</script>"
IMAGE = '<img src=x onerror="window.__xss=1">'
HOSTILE = f"Before {SCRIPT} middle {IMAGE} after"
HOSTILE_MODEL = "hostile-text-model"
COMMENTED = ("credit-default-scorer", 3)


@pytest.fixture(scope="module")
def hostile_store(module_store: Store) -> Store:
    db = module_store.database()
    dana = users.principal_by_email(db, "dana@demo.quorum")
    ada = users.principal_by_email(db, "ada@demo.quorum")
    riley = users.principal_by_email(db, "riley@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=HOSTILE_MODEL,
            team=DEMO_TEAM,
            task="binary_classification",
            purpose=HOSTILE,
            target="malignant",
            goal_metric="recall",
            goal_target=0.9,
            goal_description=HOSTILE,
        ),
    )
    users.create_team(db, ada, "hostile-team", HOSTILE)
    reviews.add_comment(db, riley, *COMMENTED, HOSTILE)
    return module_store


@pytest.fixture(scope="module")
def hostile_app(hostile_store: Store, demo_app: AppServer) -> AppServer:
    return demo_app


@pytest.fixture(scope="module")
def hostile_upload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small classifier, and an evaluation CSV with a hostile column header."""
    bundle = load_breast_cancer(as_frame=True)
    features = bundle.data.iloc[:, :4].rename(columns=lambda c: str(c).replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(features, bundle.target)
    folder = tmp_path_factory.mktemp("hostile")
    model_path, csv_path = folder / "small.skops", folder / "hostile-header.csv"
    sio.dump(model, model_path)
    frame = features.assign(malignant=bundle.target).head(120)
    frame[IMAGE] = 1
    frame[SCRIPT] = 2
    frame.to_csv(csv_path, index=False)
    return model_path, csv_path


@pytest.fixture
def watched(page: Page) -> Iterator[dict[str, list[str]]]:
    """The dialogs and console errors the page produced while the test ran."""
    seen: dict[str, list[str]] = {"dialogs": [], "errors": []}

    def on_dialog(dialog: Dialog) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    yield seen


def _assert_inert(page: Page, seen: dict[str, list[str]]) -> None:
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert seen["dialogs"] == []
    injected = [e for e in seen["errors"] if "__xss" in e or "/x" in e or "onerror" in e]
    assert injected == [], injected
    assert page.locator('img[src="x"]').count() == 0
    scripts = page.locator("script").evaluate_all("els => els.map(e => e.textContent)")
    assert not any("__xss" in text for text in scripts)


def _literal(page: Page, text: str) -> None:
    expect(page.get_by_text(text, exact=False).first).to_be_visible()


def test_model_purpose_and_goal_are_shown_as_text(
    page: Page,
    hostile_app: AppServer,
    watched: dict[str, list[str]],
) -> None:
    as_demo_user(page, hostile_app, "riley", path=f"Models?model={HOSTILE_MODEL}")
    expect(page.get_by_role("heading", name=HOSTILE_MODEL)).to_be_visible()
    _literal(page, HOSTILE)
    main_text = page.get_by_test_id("stMain").inner_text()
    assert SCRIPT in main_text and IMAGE in main_text
    screenshot(page, "hostile-model")
    _assert_inert(page, watched)


def test_review_comment_is_shown_as_text(
    page: Page,
    hostile_app: AppServer,
    watched: dict[str, list[str]],
) -> None:
    model, number = COMMENTED
    as_demo_user(page, hostile_app, "riley", path=f"Reviews?model={model}&version={number}")
    expect(page.get_by_role("heading", name="Discussion")).to_be_visible()
    _literal(page, HOSTILE)
    fill(page, "Comment", f"Reply quoting {IMAGE}")
    click_button(page, "Post comment")
    _literal(page, f"Reply quoting {IMAGE}")
    _assert_inert(page, watched)


def test_team_description_runs_nothing(
    page: Page,
    hostile_app: AppServer,
    watched: dict[str, list[str]],
) -> None:
    as_demo_user(page, hostile_app, "ada", path="Admin")
    open_tab(page, "Teams")
    expect(page.get_by_test_id("stDataFrame").filter(visible=True).first).to_be_visible()
    _assert_inert(page, watched)


def test_hostile_csv_header_in_an_upload_is_shown_as_text(
    page: Page,
    hostile_app: AppServer,
    hostile_upload: tuple[Path, Path],
    watched: dict[str, list[str]],
) -> None:
    model_path, csv_path = hostile_upload
    as_demo_user(page, hostile_app, "dana")
    go_to(page, "Register a version")
    choose(page, "Model", HOSTILE_MODEL)
    upload(page, "Model file", model_path)
    upload(page, "Evaluation data", csv_path)
    fill(page, "Target column", "no_such_target")
    click_button(page, "Check files")
    expect(page.get_by_text("columns found:")).to_have_count(1)
    main_text = page.get_by_test_id("stMain").text_content() or ""
    assert IMAGE in main_text, main_text[-2000:]
    assert SCRIPT in main_text
    screenshot(page, "hostile-upload")
    _assert_inert(page, watched)


def test_csv_header_read_back(hostile_upload: tuple[Path, Path]) -> None:
    """The upload really carries the hostile headers (so the browser test means something)."""
    assert {IMAGE, SCRIPT} <= set(pd.read_csv(hostile_upload[1]).columns)
