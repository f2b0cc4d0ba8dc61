"""Issue 14, the points not covered by test_monitoring_truth.py: the gate never asks for what
cannot be done (2), positional feature matching (5), messages (10), a decision threshold per
version and identical artifacts (11), and voiding from the API and the CLI (1). Each test
reproduces what was seen, on data and models built here, and shows it fixed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score

from core import demo
from core.auth import OPERATOR, SYSTEM, Principal
from core.db import Database
from core.errors import InvalidInput, InvalidTransition, PermissionDenied
from core.models import PendingChange, Role
from core.services import (
    changes,
    compliance,
    deployments,
    monitoring,
    registry,
    reviews,
    versions,
)
from tests.integration.test_monitoring_truth import (
    PrincipalFactory,
    _frame,
)

# --- 5. a model without feature names is never matched to columns by position ----------------


def _create(db: Database, actor: Principal, name: str, **spec: Any) -> None:
    """A binary classification model with target y in the demo team."""
    registry.create_model(
        db,
        actor,
        registry.ModelSpec(
            name=name, team=demo.DEMO_TEAM, task="binary_classification", target="y", **spec
        ),
    )


def _bare_model(db: Database, principal: PrincipalFactory, name: str) -> tuple[bytes, pd.DataFrame]:
    _create(db, principal(Role.DATA_SCIENTIST), name)
    rng = np.random.default_rng(0)
    train, evaluation = _frame(rng, 600), _frame(rng, 900)
    model = LogisticRegression().fit(train[["x1", "x2"]].to_numpy(), train["y"])
    return sio.dumps(model), evaluation[["x1", "x2", "y"]]


def _upload(
    name: str, model: bytes, frame: pd.DataFrame, **extra: object
) -> versions.VersionUpload:
    return versions.VersionUpload(
        model=name,
        model_file=model,
        model_filename="model.skops",
        eval_file=frame.to_csv(index=False).encode(),
        eval_filename="eval.csv",
        **extra,  # type: ignore[arg-type]
    )


def test_point_5_positional_matching_is_refused_unless_the_features_are_given(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    model, evaluation = _bare_model(people_db, principal, "bare-five")
    swapped = evaluation[["x2", "x1", "y"]]  # what was seen: accuracy 0.034, no warning
    with pytest.raises(InvalidInput) as refused:
        versions.register_version(people_db, dana, _upload("bare-five", model, swapped))
    message = refused.value.user_message
    assert "saved without feature names" in message and "--features" in message
    with pytest.raises(InvalidInput, match="no column 'x3' named in the feature list"):
        versions.register_version(
            people_db, dana, _upload("bare-five", model, swapped, features=["x1", "x3"])
        )
    with pytest.raises(InvalidInput, match="1 feature\\(s\\) were given but the model takes 2"):
        versions.register_version(
            people_db, dana, _upload("bare-five", model, swapped, features=["x1"])
        )
    given = versions.register_version(
        people_db, dana, _upload("bare-five", model, swapped, features=["x1", "x2"])
    )
    assert given.feature_names == ["x1", "x2"]
    with people_db.read() as session:
        ev = versions.evaluation_of(session, given.id or 0)
    assert ev is not None and ev.result["metrics"]["accuracy"] > 0.85


# --- 11. a decision threshold per version; identical artifacts flagged -------------------------


def _imbalanced(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    signal = 1.2 * frame["x1"] + rng.normal(0, 1.2, n)
    frame["y"] = np.where(signal > 2.6, "Yes", "No")  # about 5% positives
    return frame


def test_point_11_the_decision_threshold_is_used_by_class_metrics_and_copies_are_flagged(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    _create(people_db, dana, "rare")
    rng = np.random.default_rng(3)
    train, evaluation = _imbalanced(rng, 3000), _imbalanced(rng, 3000)
    forest = RandomForestClassifier(n_estimators=30, min_samples_leaf=40, random_state=0)
    forest.fit(train[["x1", "x2"]], train["y"])
    blob = sio.dumps(forest)
    at_half = versions.register_version(people_db, dana, _upload("rare", blob, evaluation))
    at_low = versions.register_version(
        people_db, dana, _upload("rare", blob, evaluation, decision_threshold=0.2)
    )
    assert at_half.decision_threshold is None and at_low.decision_threshold == 0.2
    scores = forest.predict_proba(evaluation[["x1", "x2"]])[:, 1]
    expected = f1_score(evaluation["y"] == "Yes", scores >= 0.2)
    with people_db.read() as session:
        half = versions.evaluation_of(session, at_half.id or 0)
        low = versions.evaluation_of(session, at_low.id or 0)
    assert half is not None and low is not None
    assert half.result["metrics"]["f1"] < 0.1  # what was seen: F1 = 0 at 0.5
    assert low.result["metrics"]["f1"] == pytest.approx(expected, abs=1e-12)
    assert low.result["metrics"]["f1"] > 0.3
    # the same file registered twice is flagged, not refused
    prepared = versions.prepare_version(people_db, dana, _upload("rare", blob, evaluation))
    assert prepared.same_artifact_as == [1, 2]
    assert "identical (same SHA-256) to v1, v2" in prepared.warnings[0]
    with pytest.raises(InvalidInput, match="outside \\(0, 1\\)"):
        versions.prepare_version(
            people_db, dana, _upload("rare", blob, evaluation, decision_threshold=1.5)
        )


def test_point_11_extra_columns_in_the_evaluation_file_are_ignored_with_a_note(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    _create(people_db, dana, "extra")
    rng = np.random.default_rng(5)
    train, evaluation = _frame(rng, 500), _frame(rng, 700)
    model = LogisticRegression().fit(train[["x1", "x2"]], train["y"])
    extra = evaluation[["x1", "x2", "y"]].assign(customer_id=range(700), y2=evaluation["y"])
    version = versions.register_version(people_db, dana, _upload("extra", sio.dumps(model), extra))
    with people_db.read() as session:
        ev = versions.evaluation_of(session, version.id or 0)
    assert ev is not None
    assert "Ignored column(s) the model does not use: 'customer_id', 'y2'." in ev.result["notes"]
    assert version.feature_names == ["x1", "x2"]


# --- 10. messages: one sentence naming the column, value or state ------------------------------


def test_point_10_messages_name_the_column_the_state_and_the_environment(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    _create(people_db, dana, "msg10")
    rng = np.random.default_rng(2)
    train, evaluation = _frame(rng, 500), _frame(rng, 600)
    blob = sio.dumps(LogisticRegression().fit(train[["x1", "x2"]], train["y"]))
    numeric = evaluation[["x1", "x2", "y"]].assign(y=(evaluation["y"] == "Yes").astype(int))
    with pytest.raises(InvalidInput) as mismatch:  # what was seen: raw scikit-learn text
        versions.register_version(people_db, dana, _upload("msg10", blob, numeric))
    text = mismatch.value.user_message
    assert text.startswith("The target column 'y' holds ") and "'No', 'Yes'" in text
    assert "y_true" not in text and "\n" not in text
    versions.register_version(
        people_db, dana, _upload("msg10", blob, evaluation[["x1", "x2", "y"]])
    )
    reviews.submit_for_review(people_db, dana, "msg10", 1)
    reviews.decide(people_db, riley, "msg10", 1, "reject", "trained on last year's book")
    with pytest.raises(InvalidTransition) as rejected:  # what was seen: "0 of 1 approvals"
        deployments.promote(people_db, riley, "msg10", 1, "production")
    assert rejected.value.user_message == (
        "msg10 v1 was rejected by Riley Reviewer (trained on last year's book), so it can never "
        "be deployed; register a new version with the changes."
    )
    with pytest.raises(InvalidInput) as no_env:  # what was seen: "nothing is live there"
        deployments.promote(people_db, riley, "msg10", 1, "prod")
    assert no_env.value.user_message == (
        "There is no environment 'prod'; the environments are staging, production. "
        "Choose one of them."
    )
    with pytest.raises(InvalidInput, match="There is no environment 'prod'"):
        versions.artifact_of(people_db, dana, "msg10", env="prod")
    with pytest.raises(PermissionDenied) as refused:  # what was seen: "deployments deploy msg10"
        deployments.promote(people_db, dana, "msg10", 1, "staging")
    assert refused.value.user_message == (
        "You may not deploy msg10: your roles (Data scientist in team risk-analytics) do not "
        "give that permission; ask an admin to grant you a role that may promote and roll back "
        "deployments."
    )


# --- 2. the gate never asks for what cannot be done --------------------------------------------


def _high_risk_version(db: Database, principal: PrincipalFactory, name: str) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    _create(db, dana, name, risk_tier="high", goal_metric="roc_auc", goal_target=0.9)
    rng = np.random.default_rng(4)
    train, evaluation = _frame(rng, 500), _frame(rng, 600)
    blob = sio.dumps(LogisticRegression().fit(train[["x1", "x2"]], train["y"]))
    versions.register_version(db, dana, _upload(name, blob, evaluation[["x1", "x2", "y"]]))


def test_point_2_a_policy_never_requires_a_checklist_that_cannot_apply(
    people_db: Database, principal: PrincipalFactory
) -> None:
    with people_db.read() as session:
        medium = reviews.policy_for(session, "medium")
    with pytest.raises(InvalidInput) as refused:  # what was seen: accepted
        reviews.update_policy(
            people_db,
            OPERATOR,
            "medium",
            required_checklists=["iso_42001"],
            row_version=medium.version,
        )
    assert "applies only to high-risk models" in refused.value.user_message
    assert "a medium-risk model could never fill it in" in refused.value.user_message
    with people_db.read() as session:
        assert reviews.policy_for(session, "medium").version == medium.version
    _high_risk_version(people_db, principal, "gate-two")
    with people_db.read() as session:
        high = reviews.policy_for(session, "high")
    reviews.update_policy(
        people_db,
        OPERATOR,
        "high",
        required_checklists=["eu_ai_act_high_risk", "internal_policy"],
        row_version=high.version,
    )
    warned = reviews.policy_warnings(people_db, "high", ["eu_ai_act_high_risk", "internal_policy"])
    assert len(warned) == 1 and "region=eu" in warned[0] and "none of the" in warned[0]
    status = compliance.version_compliance(people_db, SYSTEM, "gate-two", 1)
    assert not any("EU AI Act" in line for line in status.gate)  # was "16 of 16 ... not met"
    internal = next(g for g in status.gate_items if g.template == "internal_policy")
    assert len(internal.items) == 7 and internal.items[0] in internal.text


def test_point_2_settings_that_can_drop_a_requirement_wait_for_a_compliance_officer(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    casey = principal(Role.COMPLIANCE)
    _high_risk_version(people_db, principal, "meta")
    with people_db.read() as session:
        high = reviews.policy_for(session, "high")
    reviews.update_policy(
        people_db, OPERATOR, "high", required_checklists=["eu_ai_act_high_risk"],
        row_version=high.version,
    )  # fmt: skip
    # adding region=eu adds a requirement: it takes effect at once, and the gate asks for it
    added = registry.update_model(
        people_db, dana, "meta", registry.ModelChanges(tags={"region": "eu"})
    )
    assert not isinstance(added, PendingChange) and added.tags == {"region": "eu"}
    eu = next(g for g in compliance.version_compliance(people_db, SYSTEM, "meta", 1).gate_items)
    assert eu.template == "eu_ai_act_high_risk" and len(eu.items) == 16
    # taking it away drops the requirement: it waits, with a reason, for a compliance officer
    with pytest.raises(InvalidInput, match="Say why tags of meta changes"):
        registry.update_model(people_db, dana, "meta", registry.ModelChanges(tags={}))
    pending = registry.update_model(
        people_db, dana, "meta", registry.ModelChanges(tags={}), reason="not sold in the EU"
    )
    assert isinstance(pending, PendingChange)
    with people_db.read() as session:
        assert registry.model_row(session, "meta").tags == {"region": "eu"}
    waiting = registry.pending_changes(people_db, riley, "meta")
    assert [c.id for c in waiting] == [pending.id]
    for person in (dana, riley):  # the proposer, and someone without the compliance role
        with pytest.raises((PermissionDenied, InvalidInput)):
            changes.confirm(people_db, person, pending.id or 0)
    changes.confirm(people_db, casey, pending.id or 0)
    with people_db.read() as session:
        assert registry.model_row(session, "meta").tags == {}
    status = compliance.version_compliance(people_db, SYSTEM, "meta", 1)
    # the checklist no longer applies, so it is not asked for (the high tier's policy still
    # asks for the model card's sections, which this test does not write)
    assert [line for line in status.gate if "checklist" in line] == []
    assert all(line.startswith("model card section") for line in status.gate), status.gate
    reopened = [e for e in compliance.timeline(people_db, SYSTEM, "meta") if e.kind == "gate"]
    assert len(reopened) == 1 and reopened[0].version == 1
    assert "reopened: tags changed (not sold in the EU)" in reopened[0].summary
    # the goal can be loosened only the same way; the owner changes at once
    goal = registry.update_model(
        people_db,
        dana,
        "meta",
        registry.ModelChanges(goal_target=0.6, owner="riley@demo.quorum"),
        reason="the business accepts a weaker model",
    )
    assert isinstance(goal, PendingChange)
    with people_db.read() as session:
        row = registry.model_row(session, "meta")
    assert row.goal_target == 0.9 and row.owner_id == riley.user_id
    changes.refuse(people_db, casey, goal.id or 0, "the goal stands")
    with people_db.read() as session:
        assert registry.model_row(session, "meta").goal_target == 0.9


def test_point_11_a_threshold_edit_waits_is_evaluated_again_and_reopens_the_gate(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana, casey = principal(Role.DATA_SCIENTIST), principal(Role.COMPLIANCE)
    _high_risk_version(people_db, principal, "cut")
    proposed = versions.set_decision_threshold(
        people_db, dana, "cut", 1, 0.2, "catch more defaults"
    )
    assert isinstance(proposed, PendingChange)
    with people_db.read() as session:
        first = registry.get_version(session, registry.model_row(session, "cut"), 1)
        before = versions.evaluation_of(session, first.id or 0)
    assert before is not None and before.result["metrics"]["recall"] < 1.0
    changes.confirm(people_db, casey, proposed.id or 0)
    with people_db.read() as session:
        model = registry.model_row(session, "cut")
        version = registry.get_version(session, model, 1)
        after = versions.evaluation_of(session, version.id or 0)
    assert version.decision_threshold == 0.2 and after is not None and after.id != before.id
    assert after.result["metrics"]["recall"] > before.result["metrics"]["recall"]
    assert after.result["metrics"]["roc_auc"] == before.result["metrics"]["roc_auc"]
    kinds = [e.kind for e in compliance.timeline(people_db, SYSTEM, "cut")]
    assert "gate" in kinds


def test_point_11_monitoring_windows_use_the_version_decision_threshold(
    people_db: Database, principal: PrincipalFactory
) -> None:
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    _create(people_db, dana, "rare-live")
    rng = np.random.default_rng(9)
    train, evaluation, live = (_imbalanced(rng, n) for n in (3000, 2000, 1500))
    forest = RandomForestClassifier(n_estimators=30, min_samples_leaf=40, random_state=0)
    forest.fit(train[["x1", "x2"]], train["y"])
    upload = _upload("rare-live", sio.dumps(forest), evaluation, decision_threshold=0.2)
    versions.register_version(people_db, dana, upload)
    reviews.submit_for_review(people_db, dana, "rare-live", 1)
    reviews.decide(people_db, riley, "rare-live", 1, "approve", "fine")
    deployments.promote(people_db, riley, "rare-live", 1, "staging", "shadow")
    day = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=2)
    live.insert(0, "timestamp", day + pd.to_timedelta(np.arange(len(live)) * 20, unit="s"))
    live.insert(1, "prediction_id", [f"r{i}" for i in range(len(live))])
    monitoring.ingest(
        people_db,
        dana,
        "rare-live",
        live[["timestamp", "prediction_id", "x1", "x2"]],
        env="staging",
    )
    labels = live[["prediction_id", "y"]].rename(columns={"y": "label"})
    monitoring.ingest_labels(people_db, dana, "rare-live", labels, env="staging")
    data = monitoring.monitoring_data(people_db, SYSTEM, "rare-live", "staging")
    assert data.decision_threshold == 0.2
    table = monitoring.performance_results(data)
    scores = forest.predict_proba(live[["x1", "x2"]])[:, 1]
    actual = (live["y"] == "Yes").to_numpy()
    at_threshold = recall_score(actual, scores >= 0.2)
    assert at_threshold > recall_score(actual, forest.predict(live[["x1", "x2"]]) == "Yes")
    assert table["recall"].iloc[0] == pytest.approx(at_threshold, abs=1e-12)
