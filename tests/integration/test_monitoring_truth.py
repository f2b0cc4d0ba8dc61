"""Monitoring on data it has never seen, as a bank's ML team found it: labels in the wrong
classes, a goal replaced by another, alerts that never close, a flood of alerts, timestamps
from 1999 and 2031, drift counted over the wrong columns, unhelpful messages and files with
extra columns or semicolons. One test per finding, each on data and models built here."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sqlalchemy import func
from sqlmodel import select

from core import demo, migrate
from core.auth import SYSTEM, Principal
from core.db import Database
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.models import (
    Alert,
    AuditEvent,
    BatchFile,
    InferenceBatch,
    PredictionKey,
    Role,
    WindowAggregateRow,
)
from core.services import deployments, monitoring, registry, reviews, versions
from core.services.monitoring import rows as stored_rows

PrincipalFactory = Callable[[Role | None], Principal]
ENV = "staging"
FEATURES = ["x1", "x2", "segment"]


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "x1": rng.normal(shift * 2, 1, n),
            "x2": rng.normal(0, 1, n),
            "segment": rng.choice(["retail", "sme", "corporate"], n),
        }
    )
    signal = 2.5 * frame["x1"] - 2.0 * frame["x2"] + rng.normal(0, 1, n)
    frame["y"] = np.where(signal > 0, "Yes", "No")
    return frame


def _pipeline(classifier: Any) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["segment"]),
            ("num", StandardScaler(), ["x1", "x2"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", classifier)])


def _deploy(
    db: Database,
    principal: PrincipalFactory,
    name: str,
    classifier: Any,
    goal: tuple[str, str, float],
    config: dict[str, Any] | None = None,
) -> None:
    """Register, approve and promote a real scikit-learn model trained here."""
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    metric, operator, target = goal
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=name,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            target="y",
            goal_metric=metric,
            goal_operator=operator,
            goal_target=target,
        ),
    )
    rng = np.random.default_rng(0)
    train, evaluation = _frame(rng, 800), _frame(rng, 1200)
    model = _pipeline(classifier).fit(train[FEATURES], train["y"])
    versions.register_version(
        db,
        dana,
        versions.VersionUpload(
            model=name,
            model_file=sio.dumps(model),
            model_filename="model.skops",
            eval_file=evaluation.to_csv(index=False).encode(),
            eval_filename="eval.csv",
        ),
    )
    reviews.submit_for_review(db, dana, name, 1)
    reviews.decide(db, riley, name, 1, "approve", "fine")
    deployments.promote(db, riley, name, 1, ENV, "shadow")
    if config:
        monitoring.configure(db, riley, name, config)


def _production(
    days: int,
    per_day: int = 150,
    start: str = "2026-11-01",
    seed: int = 1,
    shift_days: tuple[int, ...] = (),
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for day in range(days):
        part = _frame(rng, per_day, 1.0 if day in shift_days else 0.0)
        stamp = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=day)
        seconds = np.arange(per_day) * (86_000 // per_day)
        part.insert(0, "timestamp", stamp + pd.to_timedelta(seconds, unit="s"))
        part.insert(1, "prediction_id", [f"p{seed}-{day}-{i}" for i in range(per_day)])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _predictions(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["timestamp", "prediction_id", *FEATURES]]


def _labels(frame: pd.DataFrame, column: str = "y") -> pd.DataFrame:
    return frame[["prediction_id", column]].rename(columns={column: "label"})


def _stored_rows(db: Database) -> pd.DataFrame:
    """Every raw row in the batches' Parquet files, with its label from the prediction index."""
    with db.read() as session:
        files = session.exec(select(BatchFile)).all()
        frames = [
            stored_rows.read_file(stored_rows.store(), f.key).assign(
                label=stored_rows.labels_of(session, f.id or 0, f.n_rows)
            )
            for f in files
        ]
    return pd.concat(frames, ignore_index=True)


def _counts(db: Database) -> dict[str, int]:
    tables = (InferenceBatch, PredictionKey, WindowAggregateRow, Alert, AuditEvent)
    with db.read() as session:
        return {t.__name__: session.exec(select(func.count()).select_from(t)).one() for t in tables}


def _incidents(db: Database, name: str) -> list[monitoring.AlertView]:
    return monitoring.alerts(db, SYSTEM, name, ENV, open_only=False)


def _windows(db: Database, name: str) -> dict[date, dict[str, Any]]:
    data = monitoring.monitoring_data(db, SYSTEM, name, ENV)
    return {day: window.to_dict() for day, window in data.windows.items()}


def _assert_same(got: Any, expected: Any, path: str = "") -> None:
    """Equal counts and text; floats equal to 1e-12 (raw rows keep 15 significant digits)."""
    if isinstance(expected, dict):
        assert set(got) == set(expected), path
        for key in expected:
            _assert_same(got[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_same(a, b, f"{path}[{index}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), path
    else:
        assert got == expected, path


# --- 1. labels in the wrong classes; voiding a batch ------------------------------------------


def test_labels_outside_the_model_classes_are_refused_naming_the_classes(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "yesno", LogisticRegression(), ("accuracy", ">=", 0.8))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2)
    monitoring.ingest(people_db, dana, "yesno", _predictions(frame), env=ENV)
    before = _counts(people_db)
    numeric = _labels(frame).assign(label=np.where(frame["y"] == "Yes", 1, 0))
    with pytest.raises(InvalidInput) as refused:
        monitoring.ingest_labels(people_db, dana, "yesno", numeric, env=ENV)
    message = refused.value.user_message
    assert "'0'" in message and "'1'" in message
    assert "the model's classes are 'No', 'Yes'" in message
    assert "\n" not in message and "Nothing was stored" in message
    words = _labels(frame).assign(label=np.where(frame["y"] == "Yes", "yes", "no"))
    with pytest.raises(InvalidInput, match="'no', 'yes'"):
        monitoring.ingest_labels(people_db, dana, "yesno", words, env=ENV)
    assert _counts(people_db) == before
    # the same check guards labels sent with the predictions
    later = _production(1, start="2026-11-05", seed=4)
    with_labels = _predictions(later).assign(label=1)
    with pytest.raises(InvalidInput) as refused_too:
        monitoring.ingest(people_db, dana, "yesno", with_labels, env=ENV)
    assert "the model's classes are 'No', 'Yes'" in " ".join(refused_too.value.details)


def test_a_wrong_label_batch_is_voided_exactly_and_sent_again(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "yesno", LogisticRegression(), ("accuracy", ">=", 0.8))
    dana, blake = principal(Role.DATA_SCIENTIST), principal(Role.BUSINESS)
    frame = _production(3)
    monitoring.ingest(people_db, dana, "yesno", _predictions(frame), env=ENV)
    unlabelled = _windows(people_db, "yesno")
    # valid classes, but swapped: the window reads accuracy near 0 and opens a false incident
    swapped = _labels(frame).assign(label=np.where(frame["y"] == "Yes", "No", "Yes"))
    wrong = monitoring.ingest_labels(people_db, dana, "yesno", swapped, env=ENV)
    realised = [i for i in _incidents(people_db, "yesno") if i.basis == "realised"]
    assert len(realised) == 1 and realised[0].status == "open"
    # sending the right labels is refused until the wrong batch is voided
    with pytest.raises(Conflict, match="void the batch"):
        monitoring.ingest_labels(people_db, dana, "yesno", _labels(frame), env=ENV)
    denials = _counts(people_db)["AuditEvent"]
    with pytest.raises(PermissionDenied):
        monitoring.void_batch(people_db, blake, "yesno", wrong.batch_id, "labels were swapped")
    with people_db.read() as session:
        denied = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert denied is not None and denied.action == "permission.denied"
    assert _counts(people_db)["AuditEvent"] == denials + 1
    with pytest.raises(InvalidInput, match="Say why"):
        monitoring.void_batch(people_db, dana, "yesno", wrong.batch_id, " ")

    voided = monitoring.void_batch(
        people_db, dana, "yesno", wrong.batch_id, "labels were swapped Yes/No"
    )
    assert voided.rows == len(frame) and len(voided.windows) == 3
    _assert_same(_windows(people_db, "yesno"), unlabelled)  # recomputed from the rows left
    incident = next(i for i in _incidents(people_db, "yesno") if i.id == realised[0].id)
    assert incident.status == "closed" and f"#{wrong.batch_id} was voided" in (
        incident.closed_reason or ""
    )
    with pytest.raises(Conflict, match="already voided"):
        monitoring.void_batch(people_db, dana, "yesno", wrong.batch_id, "again, to be sure")
    right = monitoring.ingest_labels(people_db, dana, "yesno", _labels(frame), env=ENV)
    assert right.n_rows == len(frame)
    card = monitoring.health_card(monitoring.monitoring_data(people_db, SYSTEM, "yesno", ENV))
    assert card.goal_met is True
    with people_db.read() as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "monitoring.batch_voided")
        ).all()
    assert len(events) == 1 and "labels were swapped" in events[0].summary


def test_voiding_predictions_equals_never_having_sent_them(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "yesno", LogisticRegression(), ("accuracy", ">=", 0.8))
    reviewer = principal(Role.REVIEWER)
    keep, drop = _production(3, seed=1), _production(2, start="2026-11-02", seed=2)
    monitoring.ingest(people_db, reviewer, "yesno", _predictions(keep), env=ENV)
    monitoring.ingest_labels(people_db, reviewer, "yesno", _labels(keep), env=ENV)
    expected = _windows(people_db, "yesno")
    payload = _predictions(drop).to_csv(index=False).encode()
    second = monitoring.ingest(people_db, reviewer, "yesno", payload, env=ENV, filename="b.csv")
    monitoring.ingest_labels(people_db, reviewer, "yesno", _labels(drop), env=ENV)
    assert _windows(people_db, "yesno") != expected
    monitoring.void_batch(people_db, reviewer, "yesno", second.batch_id, "sent to the wrong env")
    _assert_same(_windows(people_db, "yesno"), expected)
    # the same file can be sent again once its batch is voided
    again = monitoring.ingest(people_db, reviewer, "yesno", payload, env=ENV, filename="b.csv")
    assert again.n_rows == len(drop)


# --- 3. the goal the model states is the goal monitored ----------------------------------------


def test_the_stated_roc_auc_goal_is_monitored_from_aggregates(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "auc", LogisticRegression(), ("roc_auc", ">=", 0.9))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(4, per_day=600)
    monitoring.ingest(people_db, dana, "auc", _predictions(frame), env=ENV)
    monitoring.ingest_labels(people_db, dana, "auc", _labels(frame), env=ENV)
    data = monitoring.monitoring_data(people_db, SYSTEM, "auc", ENV)
    assert data.settings.goal is not None and data.settings.goal.metric == "roc_auc"
    assert "ROC AUC >= 0.9" in data.goal_description
    scored = _stored_rows(people_db)
    stored = pd.DataFrame(
        {"ts": scored["timestamp"], "score": scored["score"], "label": scored["label"]}
    )
    stored["day"] = pd.to_datetime(stored["ts"]).dt.date
    perf = monitoring.performance_results(data).set_index("window")
    for day, part in stored.groupby("day"):
        actual, scores = part["label"] == "Yes", part["score"].astype(float)
        assert abs(perf.loc[day, "roc_auc"] - roc_auc_score(actual, scores)) <= 0.002
        assert abs(perf.loc[day, "pr_auc"] - average_precision_score(actual, scores)) <= 0.002
        assert perf.loc[day, "brier"] == pytest.approx(brier_score_loss(actual, scores))
        assert perf.loc[day, "gini"] == pytest.approx(2 * perf.loc[day, "roc_auc"] - 1)
        assert 0 < perf.loc[day, "ks"] <= 1
    card = monitoring.health_card(data)
    assert card.goal.startswith("Goal met") and "ROC AUC is 0.9" in card.goal
    assert "F1" not in card.goal


def test_a_goal_production_data_cannot_compute_is_named_not_replaced(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "svc", LinearSVC(), ("roc_auc", ">=", 0.9))
    dana = principal(Role.DATA_SCIENTIST)
    monitoring.ingest(people_db, dana, "svc", _predictions(_production(2)), env=ENV)
    data = monitoring.monitoring_data(people_db, SYSTEM, "svc", ENV)
    goal = data.settings.goal
    assert goal is not None and goal.metric == "roc_auc" and "no predict_proba" in goal.unavailable
    card = monitoring.health_card(data)
    assert "cannot be checked on production data" in card.goal
    assert "No other metric is checked in its place" in card.goal and card.goal_met is None
    assert not [i for i in _incidents(people_db, "svc") if i.kind == "performance"]


# --- 4 and 9. incidents, not a flood ----------------------------------------------------------


def test_an_estimated_incident_closes_when_labels_show_the_goal_met(
    people_db: Database, principal: PrincipalFactory
) -> None:
    # heavy regularisation: scores huddle near 0.5 (under-confident) but rank well, so the
    # estimate from scores says the AUC goal fails while the labels show it met
    shy = LogisticRegression(C=0.0005)
    _deploy(people_db, principal, "shy", shy, ("roc_auc", ">=", 0.9))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(3, per_day=300)
    monitoring.ingest(people_db, dana, "shy", _predictions(frame), env=ENV)
    [estimated] = _incidents(people_db, "shy")
    assert (estimated.kind, estimated.basis, estimated.status) == (
        "performance",
        "estimated",
        "open",
    )
    assert estimated.windows_in_breach == 3
    assert monitoring.retraining_tasks(people_db, SYSTEM, "shy") == []  # an estimate alone
    monitoring.ingest_labels(people_db, dana, "shy", _labels(frame), env=ENV)
    [closed] = _incidents(people_db, "shy")
    assert closed.status == "closed" and "show the goal met" in (closed.closed_reason or "")
    perf = monitoring.performance_results(monitoring.monitoring_data(people_db, SYSTEM, "shy", ENV))
    assert (perf["estimated_roc_auc"] < 0.9).all() and (perf["roc_auc"] >= 0.9).all()
    with people_db.read() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "incident.closed")).one()
    assert "show the goal met" in event.summary


def test_a_realised_incident_supersedes_the_estimated_one(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "strict", LogisticRegression(), ("roc_auc", ">=", 0.999))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2, per_day=300)
    monitoring.ingest(people_db, dana, "strict", _predictions(frame), env=ENV)
    monitoring.ingest_labels(people_db, dana, "strict", _labels(frame), env=ENV)
    by_basis = {i.basis: i for i in _incidents(people_db, "strict")}
    assert by_basis["realised"].status == "open"
    assert by_basis["estimated"].status == "closed"
    assert by_basis["estimated"].superseded_by == by_basis["realised"].id


def test_small_windows_never_alert_and_an_episode_is_one_incident_that_closes(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(
        people_db,
        principal,
        "drifty",
        LogisticRegression(),
        ("accuracy", ">=", 0.5),
        {"drift_feature": "x1"},
    )
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    tiny = _production(6, per_day=30, start="2026-10-01", seed=3, shift_days=(0, 1, 2, 3, 4, 5))
    monitoring.ingest(people_db, dana, "drifty", _predictions(tiny), env=ENV)
    assert _incidents(people_db, "drifty") == []
    assert (
        len(monitoring.monitoring_data(people_db, SYSTEM, "drifty", ENV).windows) == 6
    )  # still shown
    episode = _production(9, per_day=2000, shift_days=(2, 3, 4, 5))
    result = monitoring.ingest(people_db, dana, "drifty", _predictions(episode), env=ENV)
    drift = [i for i in _incidents(people_db, "drifty") if i.kind == "drift"]
    assert len(drift) == 1 and drift[0].windows_in_breach == 4
    assert drift[0].window == date(2026, 11, 3) and drift[0].last_window == date(2026, 11, 6)
    assert drift[0].status == "closed"
    assert "cleared for 2 window(s) in a row (2026-11-07 to 2026-11-08)" in (
        drift[0].closed_reason or ""
    )
    kinds = [i.kind for i in _incidents(people_db, "drifty")]
    assert len(kinds) == len(set(kinds))  # one incident per kind for the whole episode
    assert f"{len(kinds)} incident(s) opened, {len(kinds)} incident(s) closed" in result.message
    # a second episode opens a new incident; bulk acknowledge needs MANAGE_MONITORING
    again = _production(3, per_day=2000, start="2026-11-20", seed=5, shift_days=(0, 1, 2))
    monitoring.ingest(people_db, dana, "drifty", _predictions(again), env=ENV)
    with pytest.raises(PermissionDenied):
        monitoring.acknowledge_incidents(people_db, dana, "drifty", ENV)
    open_now = [
        i for i in monitoring.alerts(people_db, SYSTEM, "drifty", ENV) if i.status == "open"
    ]
    assert open_now
    assert monitoring.acknowledge_incidents(people_db, riley, "drifty", ENV) == len(open_now)
    assert {i.status for i in monitoring.alerts(people_db, SYSTEM, "drifty", ENV)} == {
        "acknowledged"
    }
    with people_db.read() as session:
        model_id = session.exec(select(Alert.model_id)).first()
    assert monitoring.open_incident_counts(people_db, [model_id or 0]) == {model_id: len(open_now)}


# --- 6. timestamps from 1999 and 2031 -------------------------------------------------------


def test_timestamps_far_outside_the_model_life_refuse_the_batch(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "clock", LogisticRegression(), ("accuracy", ">=", 0.5))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _predictions(_production(2)).copy()
    frame.loc[3, "timestamp"] = pd.Timestamp("2031-05-01", tz="UTC")
    frame.loc[7, "timestamp"] = pd.Timestamp("1999-12-31", tz="UTC")
    before = _counts(people_db)
    with pytest.raises(InvalidInput) as refused:
        monitoring.ingest(people_db, dana, "clock", frame, env=ENV)
    message = refused.value.user_message
    assert message.startswith("2 row(s)") and "outside the accepted range" in message
    assert "1999-12-31 to 2031-05-01" in message and "days_before_registration" in message
    assert _counts(people_db) == before


# --- 8. drift over features; prediction and score drift on their own ---------------------------


def test_drift_share_counts_features_and_outputs_are_reported_apart(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "split", LogisticRegression(), ("accuracy", ">=", 0.5))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(1, per_day=2000, shift_days=(0,))
    monitoring.ingest(people_db, dana, "split", _predictions(frame), env=ENV)
    report = monitoring.report(people_db, SYSTEM, "split", ENV)
    features = {f["feature"]: f for f in report["features"]}
    assert set(features) == set(FEATURES)
    drifted = [name for name, f in features.items() if f["verdict"] == "drift"]
    assert drifted == ["x1"]
    assert report["dataset_drift"]["share"] == pytest.approx(1 / 3)
    assert report["prediction_drift"]["verdict"] == "drift"
    assert report["score_drift"]["verdict"] == "drift"
    assert "1 of 3 features drifted; prediction drift: yes; score drift: yes" in report["message"]
    card = monitoring.health_card(monitoring.monitoring_data(people_db, SYSTEM, "split", ENV))
    assert "The distribution of the model's scores changed." in card.reasons
    assert card.drift == [
        "Features: 1 of 3 drifted (x1).",
        "Predictions: distribution changed.",
        "Scores: distribution changed.",
    ]


# --- 10. messages ------------------------------------------------------------------------------


def test_messages_name_the_column_and_the_environment(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "msgs", LogisticRegression(), ("accuracy", ">=", 0.5))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _predictions(_production(1)).copy()
    frame.loc[[4, 9], "x2"] = np.nan
    with pytest.raises(InvalidInput) as refused:
        monitoring.ingest(people_db, dana, "msgs", frame, env=ENV)
    message = refused.value.user_message
    assert "column 'x2' is empty (2 row(s), e.g. row(s) 5, 10)" in message
    assert "\n" not in message and message.endswith("column.")
    with pytest.raises(InvalidInput) as no_env:
        monitoring.ingest(people_db, dana, "msgs", frame.dropna(), env="prod")
    assert no_env.value.user_message.startswith("There is no environment 'prod'")
    assert "staging, production" in no_env.value.user_message
    with pytest.raises(InvalidInput, match="There is no environment 'prod'"):
        monitoring.report(people_db, SYSTEM, "msgs", "prod")


# --- 11. extra columns and semicolons ---------------------------------------------------------


def test_extra_columns_are_ignored_with_a_note_and_semicolons_are_read(
    people_db: Database, principal: PrincipalFactory
) -> None:
    _deploy(people_db, principal, "files", LogisticRegression(), ("accuracy", ">=", 0.5))
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2)
    extra = _predictions(frame).assign(customer_id=range(len(frame)), y=frame["y"])
    result = monitoring.ingest(people_db, dana, "files", extra, env=ENV)
    assert result.notes == ["Ignored column(s) the model does not use: 'customer_id', 'y'."]
    assert result.notes[0] in result.message
    window = next(
        iter(monitoring.monitoring_data(people_db, SYSTEM, "files", ENV).windows.values())
    )
    assert window.unexpected_columns == []  # ignored columns are not a quality issue
    labels = _labels(frame).assign(source="core-banking")
    labelled = monitoring.ingest_labels(people_db, dana, "files", labels, env=ENV)
    assert labelled.notes == ["Ignored column(s) the model does not use: 'source'."]
    later = _predictions(_production(1, start="2026-11-10", seed=8))
    semicolons = later.to_csv(index=False, sep=";").encode()
    read = monitoring.ingest(people_db, dana, "files", semicolons, env=ENV, filename="eu.csv")
    assert read.n_rows == len(later)


# --- the demo shows incidents, not a flood ------------------------------------------------------


def test_the_demo_seed_holds_a_handful_of_open_incidents(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    demo.seed(db, with_models=True)
    bike = monitoring.alerts(db, SYSTEM, "bike-demand-forecaster", "production")
    assert 1 <= len(bike) <= 5
    assert len({(i.kind, i.basis) for i in bike}) == len(bike)  # one per kind
    everything = monitoring.alerts(
        db, SYSTEM, "bike-demand-forecaster", "production", open_only=False
    )
    assert any(i.status == "closed" and i.closed_reason for i in everything)
    assert max(i.windows_in_breach for i in bike) > 1
    credit = monitoring.monitoring_data(db, SYSTEM, "credit-default-scorer", "production")
    assert credit.settings.goal is not None and credit.settings.goal.metric == "roc_auc"
    assert monitoring.performance_results(credit)["roc_auc"].notna().all()
    db.dispose()


def test_library_warnings_stay_out_of_monitoring(
    people_db: Database, principal: PrincipalFactory
) -> None:
    """A model fitted on a bare array warns "X has feature names" whenever a table is scored;
    monitoring must not let that leak into the output of a CLI or a page."""
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    registry.create_model(
        people_db,
        dana,
        registry.ModelSpec(name="bare", team=demo.DEMO_TEAM, task="binary_classification"),
    )
    rng = np.random.default_rng(0)
    train, evaluation = _frame(rng, 500), _frame(rng, 800)
    model = LogisticRegression().fit(train[["x1", "x2"]].to_numpy(), train["y"])
    versions.register_version(
        people_db,
        dana,
        versions.VersionUpload(
            model="bare",
            model_file=sio.dumps(model),
            model_filename="bare.skops",
            eval_file=evaluation[["x1", "x2", "y"]].to_csv(index=False).encode(),
            eval_filename="eval.csv",
            target="y",
            features=["x1", "x2"],
        ),
    )
    reviews.submit_for_review(people_db, dana, "bare", 1)
    reviews.decide(people_db, riley, "bare", 1, "approve", "fine")
    deployments.promote(people_db, riley, "bare", 1, ENV, "shadow")
    frame = _production(2)[["timestamp", "prediction_id", "x1", "x2"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = monitoring.ingest(people_db, dana, "bare", frame, env=ENV)
        monitoring.report(people_db, SYSTEM, "bare", ENV)
    assert result.n_rows == len(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict_proba(frame[["x1", "x2"]])
    assert any("feature names" in str(w.message) for w in caught)  # the warning is real


def test_upgrading_a_store_merges_its_alert_flood_into_incidents(
    people_db: Database, principal: PrincipalFactory
) -> None:
    if people_db.url.startswith("postgresql"):
        pytest.skip("runs the migration down and up again; the SQLite copy is the store's own")
    from alembic import command
    from sqlalchemy import text

    _deploy(
        people_db,
        principal,
        "legacy",
        LogisticRegression(),
        ("accuracy", ">=", 0.5),
        {"drift_feature": "x1"},
    )
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2, per_day=2000, shift_days=(0, 1))
    monitoring.ingest(people_db, dana, "legacy", _predictions(frame), env=ENV)
    people_db.dispose()
    command.downgrade(migrate.alembic_config(people_db.url), "1fe4137086f4")
    copy = (
        "INSERT INTO alert (model_id, version_id, environment, window_start, kind, metric, "
        "value, threshold, message, status, created_at) SELECT model_id, version_id, "
        "environment, datetime(window_start, :shift), kind, metric, value, threshold, message, "
        "'open', created_at FROM alert WHERE id = (SELECT min(id) FROM alert WHERE kind = 'drift')"
    )
    with people_db.engine.begin() as connection:
        for days in ("+1 day", "+2 days", "+3 days"):  # one alert per window, as before
            connection.execute(text(copy).bindparams(shift=days))
    migrate.upgrade(people_db.url)
    drift = [i for i in _incidents(people_db, "legacy") if i.kind == "drift"]
    active = [i for i in drift if i.status in ("open", "acknowledged")]
    assert len(drift) == 4 and len(active) == 1
    assert active[0].windows_in_breach == 4
    assert active[0].window == date(2026, 11, 1) and active[0].last_window == date(2026, 11, 4)
    merged = [i for i in drift if i.status == "closed"]
    assert all(i.superseded_by == active[0].id for i in merged)
