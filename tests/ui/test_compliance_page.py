"""The compliance page in a real script run: queue, status, sign-off form, revoke, export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import streamlit as st
from sklearn.linear_model import LogisticRegression
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core import config, demo, migrate
from core.auth import SYSTEM
from core.db import Database
from core.models import Signoff
from core.services import compliance, registry, reviews, versions
from core.services import users as users_service
from core.ui import compliance_page
from tests.ui.conftest import shown_tab

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE = "pages/6_Compliance.py"
MODEL = "ui-credit-scorer"
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("QUORUM_DATABASE_URL", url)
    config.reset_settings()
    st.cache_data.clear()
    st.cache_resource.clear()
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users_service.principal_by_email(db, "dana@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=MODEL,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            risk_tier="medium",
            target="y",
        ),
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=120), "x2": rng.normal(size=120)})
    frame["y"] = (frame.x1 > 0).astype(int)
    upload = versions.VersionUpload(
        model=MODEL,
        model_file=sio.dumps(LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])),
        model_filename="m.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="eval.csv",
    )
    versions.register_version(db, dana, upload)
    reviews.submit_for_review(db, dana, MODEL, 1)
    yield db
    db.dispose()
    st.cache_resource.clear()


def _open(db: Database, email: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    at.session_state["quorum_user_id"] = users_service.principal_by_email(db, email).user_id
    at.query_params["model"] = MODEL
    at.query_params["version"] = "1"
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [t.value for t in at.text] + [m.value for m in at.markdown]
    parts += (
        [e.value for e in at.error] + [s.value for s in at.success] + [i.value for i in at.info]
    )
    return "\n".join(str(p) for p in parts)


def test_officer_sees_queue_status_and_signs(store: Database) -> None:
    at = _open(store, "casey@demo.quorum")
    assert not at.exception
    texts = _texts(at)
    assert "Waiting for compliance" in [s.value for s in at.subheader]
    assert f"{MODEL} v1" in texts
    assert "Status by framework" in [s.value for s in at.subheader]
    assert any("Internal model release policy" in str(df.value) for df in at.dataframe)
    assert len(at.data_editor) == 2  # internal policy and NIST AI RMF, editable inline
    at.text_input(key="comp_typed").input("Casey Compliance")
    at.selectbox(key="comp_meaning").select("compliance reviewed")
    at.button(key="FormSubmitter:comp_sign-Sign").click()
    at.run()
    assert not at.exception
    assert any("Signed v1 as 'compliance reviewed'" in s.value for s in at.success)
    with store.read() as session:
        rows = session.exec(select(Signoff)).all()
    assert [(r.printed_name, r.meaning) for r in rows] == [
        ("Casey Compliance", "compliance reviewed")
    ]
    table = next(df.value for df in at.dataframe if "Printed name" in df.value.columns)
    assert table.iloc[0]["Printed name"] == "Casey Compliance"
    assert table.iloc[0]["Meaning"] == "compliance reviewed"
    assert table.iloc[0]["Signed (UTC)"] == rows[0].signed_at.strftime("%Y-%m-%d %H:%M:%S")


def test_wrong_typed_name_shows_the_refusal(store: Database) -> None:
    at = _open(store, "casey@demo.quorum")
    at.text_input(key="comp_typed").input("Somebody Else")
    at.button(key="FormSubmitter:comp_sign-Sign").click()
    at.run()
    assert any("does not match your full name" in e.value for e in at.error)
    with store.read() as session:
        assert session.exec(select(Signoff)).first() is None


def test_revoke_from_the_page_adds_a_record(store: Database) -> None:
    blake = users_service.principal_by_email(store, "blake@demo.quorum")
    signed = compliance.sign(store, blake, MODEL, 1, "business accepted", "Blake Business")
    at = _open(store, "blake@demo.quorum")
    assert not at.exception
    assert len(at.data_editor) == 0  # a business stakeholder reads the checklists only
    at.text_input(key="comp_revoke_reason").input("Premature.")
    at.button(key="FormSubmitter:comp_revoke-Revoke").click()
    at.run()
    assert not at.exception
    with store.read() as session:
        rows = session.exec(select(Signoff).order_by(Signoff.id)).all()  # type: ignore[arg-type]
    assert [(r.kind, r.supersedes_id) for r in rows] == [
        ("signature", None),
        ("revocation", signed.id),
    ]


def test_user_text_is_shown_as_text_and_pack_exports(store: Database) -> None:
    casey = users_service.principal_by_email(store, "casey@demo.quorum")
    compliance.update_item(
        store, casey, MODEL, 1, "internal_policy", "peer_review",
        status="not_applicable", na_reason=HOSTILE, row_version=0,
    )  # fmt: skip
    at = _open(store, "casey@demo.quorum")
    assert not at.exception
    assert all(HOSTILE not in m.value for m in at.markdown)
    at.button(key=f"comp_pack_{MODEL}_1_html_make").click()
    at.run()
    assert not at.exception
    pack = at.session_state[f"comp_pack_{MODEL}_1_html"]
    assert "&lt;script&gt;" in pack.data.decode() and HOSTILE not in pack.data.decode()
    timeline = next(df.value for df in at.dataframe if "When (UTC)" in df.value.columns)
    assert list(timeline["What"])[:2] == ["model", "registration"]


def test_a_tab_link_opens_the_tab_and_signing_keeps_it_open(store: Database) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    at.session_state["quorum_user_id"] = users_service.principal_by_email(
        store, "casey@demo.quorum"
    ).user_id
    at.query_params.update({"model": MODEL, "version": "1", "tab": "sign-offs"})
    at.run()
    assert not at.exception
    assert shown_tab(at) == "Sign-offs"
    assert at.session_state["comp_tab"] == "Sign-offs"
    at.run()
    assert shown_tab(at) == "Sign-offs"
    at.text_input(key="comp_typed").input("Casey Compliance")
    at.button(key="FormSubmitter:comp_sign-Sign").click()
    at.run()  # the signature flashes a message above the tabs and reruns the page
    assert any("Signed v1" in s.value for s in at.success)
    assert shown_tab(at) == "Sign-offs"
    assert at.query_params["tab"] == "sign-offs"


def test_the_first_tab_drops_the_parameter_and_an_unknown_one_is_ignored(store: Database) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    at.session_state["quorum_user_id"] = users_service.principal_by_email(
        store, "casey@demo.quorum"
    ).user_id
    at.query_params.update({"model": MODEL, "version": "1", "tab": "no-such-tab"})
    at.run()
    assert shown_tab(at) == "Checklists"
    assert "tab" not in at.query_params
    at.session_state["comp_tab"] = "Timeline"
    at.run()
    assert shown_tab(at) == "Timeline"
    assert at.query_params["tab"] == "timeline"
    at.session_state["comp_tab"] = "Checklists"
    at.run()
    assert "tab" not in at.query_params


def _edit_item(at: AppTest, checklist: str, item: str, changes: dict[str, str]) -> AppTest:
    """Edit one row of a checklist's editor as the browser would, then press Save changes."""
    key = f"comp_items_{MODEL}_1_{checklist}"
    table = next(df for df in at.data_editor if "peer_review" in list(df.value["Item"]))
    row = list(table.value["Item"]).index(item)
    at.session_state[key] = {"edited_rows": {row: changes}, "added_rows": [], "deleted_rows": []}
    at.run()
    at.button(key=f"{key}_save").click()
    return at.run()


def test_met_needs_evidence_or_a_reason_and_the_page_says_why(store: Database) -> None:
    def peer_review() -> compliance.ItemView:
        lists = {c.key: c for c in compliance.checklists(store, SYSTEM, MODEL, 1)}
        return next(i for i in lists["internal_policy"].items if i.key == "peer_review")

    at = _edit_item(
        _open(store, "casey@demo.quorum"), "internal_policy", "peer_review", {"Status": "Met"}
    )
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("'peer_review' cannot be met without evidence" in e for e in errors), errors
    assert "Add evidence to it first, or write why it needs none." in errors[-1]
    assert peer_review().status == "open", "the refusal changed nothing"

    reason = compliance_page.REASON
    at = _edit_item(
        _open(store, "casey@demo.quorum"),
        "internal_policy",
        "peer_review",
        {"Status": "Met", reason: "Peer review was held live; minutes are not kept."},
    )
    assert not at.exception and not at.error
    item = peer_review()
    assert (item.status, item.na_reason) == (
        "met",
        "Peer review was held live; minutes are not kept.",
    )
    table = next(df.value for df in at.data_editor if "peer_review" in list(df.value["Item"]))
    shown = table[table["Item"] == "peer_review"].iloc[0]
    assert shown["Evidence"] == "none: see the reason"
    assert shown[reason] == "Peer review was held live; minutes are not kept."


def test_point_2_the_gate_links_each_open_item_and_the_link_opens_it(store: Database) -> None:
    """Issue 14 point 2: the gate's missing list links to the exact checklist item, and the
    page opened from that link shows the checklist open on that item."""
    from core.auth import OPERATOR

    with store.read() as session:
        medium = reviews.policy_for(session, "medium")
    reviews.update_policy(
        store, OPERATOR, "medium", required_checklists=["internal_policy"],
        row_version=medium.version,
    )  # fmt: skip
    gate = compliance.version_compliance(store, SYSTEM, MODEL, 1).gate_items
    first = gate[0].items[0]
    at = _open(store, "casey@demo.quorum")
    links = [e.proto for e in at.get("page_link")]
    wanted = f"item=internal_policy.{first}"
    assert any(wanted in link.query_string for link in links), [link.query_string for link in links]
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    at.session_state["quorum_user_id"] = users_service.principal_by_email(
        store, "casey@demo.quorum"
    ).user_id
    for name, value in (
        ("model", MODEL), ("version", "1"), ("tab", "checklists"),
        ("item", f"internal_policy.{first}"),
    ):  # fmt: skip
        at.query_params[name] = value
    at.run()
    assert not at.exception
    shown = [i.value for i in at.info]
    assert any(v.startswith(f"Item {first} — ") for v in shown), shown
    plain = _open(store, "casey@demo.quorum")  # no item asked: nothing is marked
    assert not any(i.value.startswith("Item ") for i in plain.info)


def test_point_2_a_compliance_officer_confirms_a_setting_on_the_models_page(
    store: Database,
) -> None:
    """Issue 14 point 2: a change that can drop a requirement waits on the Models page, where
    a compliance officer (not the proposer) confirms it; the gate reopens."""
    dana = users_service.principal_by_email(store, "dana@demo.quorum")
    proposed = versions.set_decision_threshold(store, dana, MODEL, 1, 0.3, "fewer misses")
    casey = users_service.principal_by_email(store, "casey@demo.quorum")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/1_Models.py")
    at.session_state["quorum_user_id"] = casey.user_id
    for name, value in (("model", MODEL), ("version", "1"), ("tab", "model-card")):
        at.query_params[name] = value
    at.run()
    assert not at.exception
    title = f"**Change #{proposed.id} waits for a compliance officer**"
    assert title in [m.value for m in at.markdown]
    at.button(key=f"pc_confirm_{proposed.id}").click().run()
    assert not at.exception
    with store.read() as session:
        version = registry.get_version(session, registry.model_row(session, MODEL), 1)
    assert version.decision_threshold == 0.3
    reopened = [e for e in compliance.timeline(store, SYSTEM, MODEL) if e.kind == "gate"]
    assert reopened and "decision threshold -> 0.3 (fewer misses)" in reopened[0].summary
