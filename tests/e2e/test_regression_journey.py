"""The regression model's day in the browser, and the admin's policy edit.

`bike-demand-forecaster` (a regression model) is opened on Models, approved on Reviews, and
read on Monitoring and Compliance, with no traceback on any of them: issue 18 found that
opening it on Models or Reviews crashed while every other browser test passed, because none
opened it. A fourth version, registered and submitted through the services before the
browser starts, is the one the reviewer approves. Then an admin edits an approval policy.
"""

from __future__ import annotations

import io
import re

import pytest
import skops.io as sio
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    AppServer,
    Store,
    as_demo_user,
    choose,
    click_button,
    expect_text,
    fill,
    go_to,
    open_tab,
    wait_idle,
)

pytestmark = pytest.mark.e2e

MODEL = "bike-demand-forecaster"
NEW = 4


@pytest.fixture(scope="module")
def bike_in_review(module_store: Store) -> int:
    """Register the forecaster's newest estimator again as v4 and submit it for review."""
    from core import config
    from core.demo.data import bike_demand_model
    from core.services import reviews, users, versions

    with pytest.MonkeyPatch.context() as patch:
        for key, value in module_store.env().items():
            patch.setenv(key, value)
        config.reset_settings()
        db = module_store.database()
        try:
            dana = users.principal_by_email(db, "dana@demo.quorum")
            version = bike_demand_model().versions[-1]
            buffer = io.BytesIO()
            version.evaluation.to_csv(buffer, index=False)
            registered = versions.register_version(
                db,
                dana,
                versions.VersionUpload(
                    model=MODEL,
                    model_file=sio.dumps(version.estimator),
                    model_filename=f"{MODEL}.skops",
                    eval_file=buffer.getvalue(),
                    eval_filename=f"{MODEL}-evaluation.csv",
                    notes="Retrained on the same months: a candidate for the browser review.",
                    code_ref=version.code_ref,
                    training_data=version.train,
                ),
            )
            reviews.submit_for_review(db, dana, MODEL, registered.number)
        finally:
            db.dispose()
    config.reset_settings()
    return int(registered.number)


def _no_traceback(page: Page) -> None:
    wait_idle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_regression_model_on_models_reviews_monitoring_compliance(
    page: Page, demo_app: AppServer, bike_in_review: int
) -> None:
    assert bike_in_review == NEW
    as_demo_user(page, demo_app, "morgan")

    go_to(page, "Models")
    choose(page, "Open a model", MODEL)
    expect(page.get_by_role("heading", name=MODEL, exact=True)).to_be_visible()
    _no_traceback(page)
    expect(page.get_by_role("tab", name="Evaluation", exact=True)).to_be_visible()

    go_to(page, "Reviews")
    choose(page, "Model", MODEL)
    choose(page, "Version", f"v{NEW}")
    _no_traceback(page)
    expect(page.get_by_role("button", name="Post comment")).to_be_visible()
    page.get_by_role("radio", name="Approve").check(force=True)
    fill(page, "Reason (required to request changes or reject)", "Error within goal.")
    click_button(page, "Record decision")
    expect_text(page, "Decision recorded")
    _no_traceback(page)

    go_to(page, "Monitoring")
    choose(page, "Model", MODEL)
    _no_traceback(page)
    expect(page.locator(".js-plotly-plot").first).to_be_visible()

    go_to(page, "Compliance")
    choose(page, "Model", MODEL)
    _no_traceback(page)


def test_admin_edits_an_approval_policy(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "ada")
    go_to(page, "Admin")
    open_tab(page, "Approval policies")
    choose(page, "Risk tier", "medium")
    approvals = page.get_by_role("spinbutton", name="Approvals needed")
    wanted = int(approvals.input_value()) + 1
    approvals.fill(str(wanted))
    fill(page, "Why this change", "Two more eyes on medium-risk models this quarter.")
    click_button(page, "Save a new version")
    expect(
        page.get_by_text(re.compile(r"^(Saved: .* is now in force|Proposed as change)"))
    ).to_be_visible()
    _no_traceback(page)
