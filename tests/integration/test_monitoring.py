"""Monitoring on a live model: ingest validation, idempotency, labels, stored aggregates,
alerts and retraining tasks, retraining with lineage, permissions and the machine report."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sqlalchemy import func
from sqlmodel import col, select

from core import demo, modelfile
from core.artifacts import default_store
from core.auth import SYSTEM, Principal
from core.db import Database
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.models import (
    Alert,
    AuditEvent,
    BatchFile,
    InferenceBatch,
    ModelVersion,
    Notification,
    PredictionKey,
    RetrainingTask,
    Role,
    WindowAggregateRow,
)
from core.monitoring.windows import aggregate_chunk
from core.services import deployments, monitoring, registry, reviews, versions

PrincipalFactory = Callable[[Role | None], Principal]
MODEL = "toy-scorer"
ENV = "staging"
FEATURES = ["income", "debt", "region"]


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 30, 10, n),
            "debt": rng.normal(20 + shift * 15, 5, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    signal = (frame["debt"] - 20) / 5 - (frame["income"] - 50) / 10 + rng.normal(0, 1, n)
    frame["y"] = (signal > 0).astype(int)
    return frame


def _estimator(frame: pd.DataFrame) -> Pipeline:
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough"
    )
    return Pipeline([("pre", pre), ("lr", LogisticRegression())]).fit(frame[FEATURES], frame["y"])


@pytest.fixture
def live(people_db: Database, principal: PrincipalFactory) -> Database:
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    registry.create_model(
        people_db,
        dana,
        registry.ModelSpec(
            name=MODEL,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            target="y",
            goal_metric="accuracy",
            goal_operator=">=",
            goal_target=0.7,
        ),
    )
    rng = np.random.default_rng(0)
    train, evaluation = _frame(rng, 600), _frame(rng, 1500)
    versions.register_version(
        people_db,
        dana,
        versions.VersionUpload(
            model=MODEL,
            model_file=sio.dumps(_estimator(train)),
            model_filename="toy.skops",
            eval_file=evaluation.to_csv(index=False).encode(),
            eval_filename="eval.csv",
        ),
    )
    reviews.submit_for_review(people_db, dana, MODEL, 1)
    reviews.decide(people_db, riley, MODEL, 1, "approve", "fine")
    deployments.promote(people_db, riley, MODEL, 1, ENV, "shadow")
    return people_db


def _production(
    days: int,
    start: str = "2026-01-01",
    shift_from: int | None = None,
    seed: int = 1,
    per_day: int = 60,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for day in range(days):
        shift = 1.0 if shift_from is not None and day >= shift_from else 0.0
        part = _frame(rng, per_day, shift)
        stamp = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=day)
        seconds = np.arange(per_day) * (86_000 // per_day)
        part.insert(0, "timestamp", stamp + pd.to_timedelta(seconds, unit="s"))
        part.insert(1, "prediction_id", [f"p-{seed}-{day}-{i}" for i in range(per_day)])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _csv(frame: pd.DataFrame, with_label: bool = False) -> bytes:
    columns = ["timestamp", "prediction_id", *FEATURES] + (["y"] if with_label else [])
    return frame[columns].to_csv(index=False).encode()


def _labels(frame: pd.DataFrame) -> bytes:
    return frame[["prediction_id", "y"]].rename(columns={"y": "label"}).to_csv(index=False).encode()


def _counts(db: Database) -> dict[str, int]:
    tables = (InferenceBatch, PredictionKey, WindowAggregateRow, Alert, RetrainingTask)
    with db.read() as session:
        return {t.__name__: session.exec(select(func.count()).select_from(t)).one() for t in tables}


def test_bad_file_names_each_problem_and_stores_nothing(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(2)
    bad = frame.drop(columns=["debt", "timestamp"]).assign(extra=1)
    bad["income"] = bad["income"].astype(object)
    bad.loc[3, "income"] = "lots"
    before = _counts(live)
    with pytest.raises(InvalidInput) as refused:
        monitoring.ingest(
            live, dana, MODEL, bad.to_csv(index=False).encode(), env=ENV, filename="bad.csv"
        )
    text = " ".join(refused.value.details)
    for needle in ("'timestamp' is missing", "'debt' is missing", "'income'"):
        assert needle in text
    assert "'extra'" not in text  # extra columns are ignored, not refused
    assert "Nothing was stored" in refused.value.user_message
    # a problem in a late chunk rolls back the earlier chunks too
    late = frame.copy()
    late["timestamp"] = late["timestamp"].astype(str)
    late.loc[len(late) - 1, "timestamp"] = "not a time"
    with pytest.raises(InvalidInput, match="does not match"):
        monitoring.ingest(live, dana, MODEL, _csv(late), env=ENV, chunk_rows=50)
    assert _counts(live) == before


def test_ingest_is_idempotent_and_refuses_known_ids(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(3)
    result = monitoring.ingest(live, dana, MODEL, _csv(frame), env=ENV, filename="day1.csv")
    assert result.n_rows == 180 and len(result.windows) == 3
    after = _counts(live)
    with pytest.raises(Conflict, match=f"batch #{result.batch_id}"):
        monitoring.ingest(live, dana, MODEL, _csv(frame), env=ENV, filename="again.csv")
    overlap = pd.concat([frame.iloc[:5], _production(1, "2026-02-01", seed=9)])
    with pytest.raises(InvalidInput, match="p-1-0-0"):
        monitoring.ingest(live, dana, MODEL, _csv(overlap), env=ENV)
    repeated = pd.concat([_production(1, "2026-03-01", seed=5)] * 2)
    with pytest.raises(InvalidInput, match="repeats"):
        monitoring.ingest(live, dana, MODEL, _csv(repeated), env=ENV)
    assert _counts(live) == after
    with pytest.raises(InvalidInput, match="No version of toy-scorer is live in 'production'"):
        monitoring.ingest(live, dana, MODEL, _csv(_production(1, seed=3)), env="production")


def test_aggregates_equal_recomputation_and_labels_join(
    live: Database, principal: PrincipalFactory
) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    frame = _production(4)
    monitoring.ingest(live, dana, MODEL, _csv(frame), env=ENV, chunk_rows=70)
    data = monitoring.monitoring_data(live, SYSTEM, MODEL, ENV)
    with live.read() as session:
        version = session.exec(select(ModelVersion)).one()
        stored = session.exec(select(PredictionKey).limit(1)).one()
        first_file = session.exec(select(BatchFile).limit(1)).one()
    estimator = modelfile.load_model_bytes(
        default_store().get(version.artifact_key, sha256=version.artifact_sha256)
    )
    scored = frame[["timestamp", "prediction_id", *FEATURES]].copy()
    scored["prediction"] = estimator.predict(scored[FEATURES])
    scored["score"] = estimator.predict_proba(scored[FEATURES])[:, 1]
    expected = aggregate_chunk(scored, data.profile)
    assert set(data.windows) == set(expected)
    for day, window in expected.items():
        stored_window = data.windows[day]
        assert set(stored_window.columns) == set(window.columns)
        for name, column in window.columns.items():
            got = stored_window.columns[name]
            assert got.counts == column.counts and got.missing == column.missing
            assert got.sum == pytest.approx(column.sum) and got.min == column.min
        stored_hist, expected_hist = stored_window.cbpe.pop("hist"), window.cbpe.pop("hist")
        assert stored_hist == expected_hist
        assert stored_window.cbpe == pytest.approx(window.cbpe)
        assert data.windows[day].n_rows == window.n_rows == 60
    raw = pq.read_table(io.BytesIO(default_store().get(first_file.key))).to_pandas()
    assert stored.label is None and "region" in raw.columns and len(raw) == first_file.n_rows
    assert first_file.key.startswith(f"predictions/model={stored.model_id}/env={ENV}/day=")

    labelled = monitoring.ingest_labels(live, dana, MODEL, _labels(frame), env=ENV)
    assert labelled.n_rows == 240
    with live.read() as session:
        labels = session.exec(
            select(PredictionKey.label).where(col(PredictionKey.label).is_not(None))
        ).all()
    assert len(labels) == 240 and set(labels) <= {"0", "1"}
    perf = monitoring.performance_results(monitoring.monitoring_data(live, SYSTEM, MODEL, ENV))
    assert list(perf["source"]) == ["realised"] * 4
    truth = frame["y"].to_numpy()
    accuracy = float((scored["prediction"].to_numpy() == truth).mean())
    weighted = float((perf["accuracy"] * perf["n_labelled"]).sum() / perf["n_labelled"].sum())
    assert weighted == pytest.approx(accuracy)
    with pytest.raises(Conflict, match="already ingested"):
        monitoring.ingest_labels(live, dana, MODEL, _labels(frame), env=ENV)
    unknown = pd.DataFrame({"prediction_id": ["nope-1"], "label": [1]}).to_csv(index=False)
    with pytest.raises(InvalidInput, match="nope-1"):
        monitoring.ingest_labels(live, dana, MODEL, unknown.encode(), env=ENV)


def test_drift_opens_alert_and_one_retraining_task_then_retrain(
    live: Database, principal: PrincipalFactory
) -> None:
    dana, riley = principal(Role.DATA_SCIENTIST), principal(Role.REVIEWER)
    frame = _production(12, shift_from=8, per_day=2000)
    result = monitoring.ingest(live, dana, MODEL, _csv(frame, with_label=False), env=ENV)
    assert any("Data drift" in a for a in result.alerts)
    assert result.retraining_task_id is not None
    with live.read() as session:
        drift_alerts = session.exec(select(Alert).where(Alert.kind == "drift")).all()
        notes = session.exec(select(Notification).where(Notification.kind == "alert")).all()
    # one incident for the whole episode, not one alert per window
    assert len(drift_alerts) == 1
    incident = drift_alerts[0]
    assert incident.window_start.date() == date(2026, 1, 9)
    assert incident.last_window is not None and incident.last_window.date() == date(2026, 1, 12)
    assert incident.windows_in_breach == 4 and incident.status == "open"
    assert notes and all("pages/5_Monitoring.py?model=toy-scorer" == n.link for n in notes)
    more = _production(3, "2026-01-13", shift_from=0, seed=2, per_day=2000)
    monitoring.ingest(live, dana, MODEL, _csv(more), env=ENV)
    monitoring.ingest_labels(live, dana, MODEL, _labels(frame), env=ENV)
    with live.read() as session:
        assert len(session.exec(select(RetrainingTask)).all()) == 1
    card = monitoring.health_card(monitoring.monitoring_data(live, SYSTEM, MODEL, ENV))
    assert card.status in (monitoring.AT_RISK, monitoring.FAILING)
    assert "since 2026-01" in card.headline

    with pytest.raises(PermissionDenied):
        monitoring.retrain(live, riley, MODEL, env=ENV)
    new = monitoring.retrain(live, dana, MODEL, result.retraining_task_id, env=ENV)
    with live.read() as session:
        parent = session.get(ModelVersion, new.parent_id)
        task = session.get(RetrainingTask, result.retraining_task_id)
    assert new.number == 2 and parent is not None and parent.number == 1
    assert f"task #{result.retraining_task_id}" in new.notes
    assert task is not None and task.status == "done" and task.result_version_id == new.id
    tasks = monitoring.retraining_tasks(live, SYSTEM, MODEL)
    assert tasks[0].result_version == 2


def test_permissions_and_audit(live: Database, principal: PrincipalFactory) -> None:
    frame = _csv(_production(1))
    for role in (Role.BUSINESS, Role.COMPLIANCE, None):
        with pytest.raises(PermissionDenied):
            monitoring.ingest(live, principal(role), MODEL, frame, env=ENV)
    with live.read() as session:
        denials = session.exec(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).all()
    assert len(denials) >= 3
    result = monitoring.ingest(live, principal(Role.REVIEWER), MODEL, frame, env=ENV)
    with live.read() as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "monitoring.predictions_ingested")
        ).one()
    assert event.object_id == str(result.batch_id)
    alert_id = None
    with live.read() as session:
        alert = session.exec(select(Alert)).first()
        alert_id = alert.id if alert else None
    if alert_id is not None:
        with pytest.raises(PermissionDenied):
            monitoring.set_alert_status(live, principal(Role.DATA_SCIENTIST), alert_id, "resolved")
        done = monitoring.set_alert_status(live, principal(Role.REVIEWER), alert_id, "resolved")
        assert done.status == "resolved"


def test_report_for_machines(live: Database, principal: PrincipalFactory, tmp_path: Path) -> None:
    dana = principal(Role.DATA_SCIENTIST)
    path = tmp_path / "prod.csv"
    path.write_bytes(_csv(_production(3, shift_from=2, per_day=2000)))
    monitoring.ingest(live, dana, MODEL, path, env=ENV)
    report = monitoring.report(live, SYSTEM, MODEL, ENV)
    assert report["window"] == "2026-01-03"
    by_feature = {f["feature"]: f for f in report["features"]}
    assert set(FEATURES) <= set(by_feature)
    income = by_feature["income"]
    assert income["test"] == "wasserstein" and income["verdict"] == "drift"
    assert income["threshold"] == 0.1 and "reason" in income
    assert by_feature["region"]["test"] == "jensenshannon"
    assert "issues" in report["quality"] and "goal" in report["performance"]
    earlier = monitoring.report(live, SYSTEM, MODEL, ENV, date(2026, 1, 1))
    assert {f["feature"]: f["verdict"] for f in earlier["features"]}["income"] == "no drift"
    import json

    json.dumps(report)
