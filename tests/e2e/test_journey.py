"""Every role's journey in a real browser, in order, on one server and one store copy.

A data scientist registers credit-default-scorer v4 (high risk) with its evaluation file and
submits it; a reviewer and the compliance officer approve it; the compliance officer completes
the checklists, signs and downloads the approval pack; the reviewer promotes it and rolls back;
a business stakeholder reads the portfolio; an admin verifies the audit trail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from playwright.sync_api import Page, expect
from sklearn.linear_model import LogisticRegression

from core.artifacts import ArtifactStore
from core.auth import SYSTEM
from core.demo import data as demo_data
from core.services import compliance, users
from tests.e2e.conftest import (
    ROOT,
    AppServer,
    Store,
    as_demo_user,
    assert_accessible_basics,
    choose,
    click_button,
    click_until,
    expect_text,
    fill,
    go_to,
    open_tab,
    screenshot,
    sign_out,
    upload,
    wait_idle,
)

pytestmark = pytest.mark.e2e

MODEL = "credit-default-scorer"
NEW = 4
COMPLIANCE_PAGE = ROOT / "pages" / "6_Compliance.py"
MONITORING_PAGE = ROOT / "pages" / "5_Monitoring.py"


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A retrained credit model saved with skops, and the evaluation split as CSV."""
    train, evaluation, _ = credit = demo_data.credit_splits()
    assert len(credit) == 3
    estimator = demo_data._pipeline(
        demo_data.CREDIT_NUMERIC,
        demo_data.CREDIT_CATEGORICAL,
        LogisticRegression(max_iter=500, C=0.3, class_weight="balanced"),
        scale=True,
    )
    demo_data._fit(estimator, train, demo_data.CREDIT_TARGET)
    folder = tmp_path_factory.mktemp("upload")
    model_path, eval_path = folder / "credit-v4.skops", folder / "credit-evaluation.csv"
    sio.dump(estimator, model_path)
    evaluation.to_csv(eval_path, index=False)
    return model_path, eval_path


def test_data_scientist_registers_and_submits(
    page: Page,
    demo_app: AppServer,
    upload_files: tuple[Path, Path],
) -> None:
    model_path, eval_path = upload_files
    as_demo_user(page, demo_app, "dana")
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()
    screenshot(page, "home")
    go_to(page, "Register a version")
    assert_accessible_basics(page)
    choose(page, "Model", MODEL)
    upload(page, "Model file", model_path)
    upload(page, "Evaluation data", eval_path)
    fill(page, "Target column", demo_data.CREDIT_TARGET)
    fill(page, "Sensitive column (optional)", demo_data.CREDIT_SENSITIVE or "")
    fill(page, "Notes for reviewers", "Stronger regularisation; same features.")
    fill(page, "Code reference", "git:e2e@credit-v4")
    click_button(page, "Check files")
    expect(page.get_by_role("heading", name=f"Summary: {MODEL}")).to_be_visible()
    expect_text(page, "SHA-256:")
    screenshot(page, "register-summary")
    click_button(page, "Register version")
    expect_text(page, f"{MODEL} v{NEW} registered")

    go_to(page, "Reviews")
    choose(page, "Model", MODEL)
    choose(page, "Version", f"v{NEW}")
    fill(page, "Note to reviewers", "Please compare recall with v2 in production.")
    click_button(page, "Submit for review")
    expect_text(page, f"{MODEL} v{NEW} is in review")


def _open_from_home(page: Page, title: str) -> None:
    """Follow the Open link of `title` in Home's "Waiting for me" list."""
    expect(page.get_by_role("heading", name="Waiting for me")).to_be_visible()
    open_link = page.get_by_role("link", name="Open")
    row = page.get_by_test_id("stVerticalBlock").filter(has_text=title, has=open_link).last
    click_until(page, row.get_by_role("link", name="Open"))
    page.get_by_role("heading", level=1, name="Reviews").wait_for()
    wait_idle(page)
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def _approve(page: Page, reason: str) -> None:
    wait_idle(page)
    page.get_by_role("radio", name="Approve").check(force=True)
    fill(page, "Reason (required to request changes or reject)", reason)
    click_button(page, "Record decision")
    expect_text(page, "Decision recorded")


def test_reviewer_compares_comments_and_approves(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "riley")
    _open_from_home(page, f"{MODEL} v{NEW}")
    expect(page.get_by_role("heading", name="Compared with the champion")).to_be_visible()
    screenshot(page, "review", top=page.get_by_role("heading", name=f"{MODEL} v{NEW}"))
    fill(page, "Comment", "@casey the recall by region looks fine; please confirm.")
    click_button(page, "Post comment")
    expect_text(page, "Comment posted")
    expect_text(page, "@casey the recall by region looks fine")
    _approve(page, "Calibrated and better recall than production.")
    assert_accessible_basics(page)


def test_second_approver_completes_the_quorum(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "casey")
    expect_text(page, "You were mentioned")
    _open_from_home(page, f"{MODEL} v{NEW}")
    _approve(page, "Documentation complete for a high-risk model.")
    expect_text(page, "Approved:")


def test_open_from_the_review_queue(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "casey")
    go_to(page, "Reviews")
    expect(page.get_by_role("heading", name="My queue")).to_be_visible()
    row = page.get_by_test_id("stHorizontalBlock").filter(has_text=f"{MODEL} v3")
    click_until(page, row.get_by_role("button", name="Open").first)
    expect(page.get_by_role("heading", name=f"{MODEL} v3", exact=True)).to_be_visible()


def _complete_required_checklists(store: Store) -> int:
    """Required checklist items set to met through the service, as the compliance officer."""
    db = store.database()
    casey = users.principal_by_email(db, "casey@demo.quorum")
    done = 0
    for checklist in compliance.checklists(db, SYSTEM, MODEL, NEW):
        for item in checklist.required_open:
            compliance.update_item(
                db,
                casey,
                MODEL,
                NEW,
                checklist.key,
                item.key,
                status="met",
                notes="Checked during the e2e journey.",
                no_evidence_reason="Walked through during the e2e journey.",
                row_version=item.row_version,
            )
            done += 1
    return done


def _required_meanings(store: Store) -> list[str]:
    status = compliance.version_compliance(store.database(), SYSTEM, MODEL, NEW)
    missing = [line for line in status.gate if line.startswith("sign-off '")]
    return [line.split("'")[1] for line in missing] or ["approved for production"]


@pytest.mark.skipif(not COMPLIANCE_PAGE.exists(), reason="pages/6_Compliance.py is not there yet")
def test_compliance_officer_signs_and_downloads_the_pack(
    page: Page,
    demo_app: AppServer,
    module_store: Store,
) -> None:
    _complete_required_checklists(module_store)
    meanings = _required_meanings(module_store)
    if "validated" in meanings:  # a reviewer signs 'validated' under the default policy
        db = module_store.database()
        riley = users.principal_by_email(db, "riley@demo.quorum")
        compliance.sign(
            db,
            riley,
            MODEL,
            NEW,
            "validated",
            "Riley Reviewer",
            store=ArtifactStore(module_store.artifacts),
        )
        meanings.remove("validated")
    as_demo_user(page, demo_app, "casey")
    go_to(page, "Compliance")
    choose(page, "Model", MODEL)
    choose(page, "Version", f"v{NEW}")
    expect(page.get_by_role("heading", name=f"{MODEL} v{NEW}")).to_be_visible()
    open_tab(page, "Sign-offs")
    assert "tab=sign-offs" in page.url
    signoffs = page.get_by_role("tab", name="Sign-offs", exact=True)
    for meaning in meanings:
        choose(page, "Meaning of your signature", meaning)
        fill(page, "Type your full name to confirm (Casey Compliance)", "Casey Compliance")
        click_button(page, "Sign")
        expect_text(page, f"Signed v{NEW} as '{meaning}'")
        expect(signoffs).to_have_attribute("aria-selected", "true")  # the rerun kept the tab
    expect_text(page, "Production gate: nothing the approval policy requires is missing.")
    screenshot(page, "compliance", top=page.get_by_role("heading", name=f"{MODEL} v{NEW}"))
    open_tab(page, "Approval pack")
    click_button(page, "Export pack (PDF)")
    expect(page.get_by_role("tab", name="Approval pack", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    wait_idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile(r"^Download .+\.pdf$")).click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    assert Path(download.path()).read_bytes().startswith(b"%PDF")


def test_reviewer_promotes_then_rolls_back(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "riley")
    go_to(page, "Deployments")
    choose(page, "Model", MODEL)
    choose(page, "Version", f"v{NEW}")
    promote_row = page.get_by_test_id("stHorizontalBlock").filter(has_text="Version")
    choose(page, "Environment", "production", scope=promote_row)
    if COMPLIANCE_PAGE.exists():
        expect(page.get_by_text(re.compile("^Ready for production"))).to_be_visible()
        expect(page.get_by_text("Not ready for production")).to_have_count(0)
    fill(page, "Reason (optional)", "Better recall, approved and signed.")
    click_button(page, f"Promote v{NEW} to production")
    expect_text(page, f"{MODEL} v{NEW} is live in production")
    expect(page.get_by_test_id("stMetric").filter(has_text="Production")).to_contain_text(f"v{NEW}")
    screenshot(page, "deployments", top=page.get_by_role("heading", level=1))
    rollback_box = (
        page.get_by_test_id("stElementContainer")
        .filter(has=page.get_by_role("combobox", name="Environment", exact=True))
        .last
    )
    choose(page, "Environment", "production", scope=rollback_box)
    expect_text(page, f"Rolling back puts v2 back live in production, replacing v{NEW}.")
    fill(page, "Reason (required)", "Approval rate dropped in the first hour.")
    click_button(page, "Roll back production to v2")
    expect_text(page, f"Rolled back {MODEL} in production to v2")
    expect(page.get_by_test_id("stMetric").filter(has_text="Production")).to_contain_text("v2")


@pytest.fixture(scope="module")
def drifted_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A week of applications from stressed borrowers: higher debt-to-income, lower income."""
    _, evaluation, _ = demo_data.credit_splits()
    frame = evaluation.drop(columns=[demo_data.CREDIT_TARGET]).head(700).copy()
    frame["debt_to_income"] = (frame["debt_to_income"] * 2.2).clip(upper=0.95)
    frame["income"] = frame["income"] * 0.45
    start = pd.Timestamp(demo_data.CREDIT_STREAM_START) + pd.Timedelta(days=125)
    frame.insert(0, "timestamp", [start + pd.Timedelta(minutes=15 * i) for i in range(len(frame))])
    frame.insert(1, "prediction_id", [f"e2e-drift-{i:05d}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("monitoring") / "credit-production-stressed.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.skipif(not MONITORING_PAGE.exists(), reason="pages/5_Monitoring.py is not there yet")
def test_production_data_raises_a_drift_alert(
    page: Page,
    demo_app: AppServer,
    drifted_batch: Path,
) -> None:
    as_demo_user(page, demo_app, "riley")
    go_to(page, "Monitoring")
    assert_accessible_basics(page)
    choose(page, "Model", MODEL)
    if page.get_by_role("tab", name="Upload", exact=True).count():
        open_tab(page, "Upload")
    upload(page, "CSV or Parquet", drifted_batch)
    click_button(page, "Ingest")
    expect_text(page, "predictions for credit-default-scorer")
    expect(page.get_by_role("heading", name=re.compile("^Health: "))).to_be_visible()
    open_tab(page, "Alerts")
    alerts = page.get_by_test_id("stText").filter(
        has_text=re.compile("drift", re.IGNORECASE), visible=True
    )
    expect(alerts.first).to_be_visible()
    open_tab(page, "Over time")
    screenshot(page, "monitoring")


def test_business_stakeholder_reads_the_portfolio(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "blake")
    expect(page.get_by_role("heading", name="Portfolio")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Models")).to_contain_text("3")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("link", name="Register a version")).to_have_count(0)
    go_to(page, "Models")
    choose(page, "Open a model", MODEL)
    expect(page.get_by_role("heading", name=MODEL, exact=True)).to_be_visible()
    open_tab(page, "Evaluation")
    screenshot(page, "model-evaluation", top=page.get_by_role("tab", name="Evaluation"))
    assert_accessible_basics(page)
    if MONITORING_PAGE.exists():
        go_to(page, "Monitoring")
        choose(page, "Model", MODEL)
        expect(page.get_by_role("heading", name=re.compile("^Health: "))).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        assert_accessible_basics(page)


def test_admin_verifies_the_audit_trail(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "ada")
    go_to(page, "Audit trail")
    click_button(page, "Verify the chain")
    expect_text(page, "Audit trail intact")
    screenshot(page, "audit")
    assert_accessible_basics(page)
    go_to(page, "Admin")
    assert_accessible_basics(page)
    screenshot(page, "admin")


def test_sign_out_returns_to_the_sign_in_screen(page: Page, demo_app: AppServer) -> None:
    as_demo_user(page, demo_app, "dana")
    sign_out(page)
    expect(page.get_by_role("heading", name="Sign in as a demo user")).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text("Dana Scientist")).to_have_count(0)


def test_deep_link_to_admin_is_refused_for_a_data_scientist(
    page: Page,
    demo_app: AppServer,
) -> None:
    as_demo_user(page, demo_app, "dana", path="Admin")
    expect(page.get_by_role("heading", level=1, name="Admin")).to_be_visible()
    expect_text(page, "You cannot open Admin")
    expect(page.get_by_role("tab", name="People and roles")).to_have_count(0)
    assert_accessible_basics(page)
