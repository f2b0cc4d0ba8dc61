"""The monitoring page through AppTest: health card in plain words and plotly charts for a
live model with ingested production data; batch scoring page for a data scientist."""

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
from core.models import Notification
from core.services import deployments, monitoring, registry, reviews, users, versions
from core.ui.session import USER_KEY
from tests.ui.conftest import shown_tab

ROOT = Path(__file__).resolve().parents[2]
MODEL = "toy-monitored"
ENV = "staging"


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"income": rng.normal(50 + 30 * shift, 10, n), "debt": rng.normal(20, 5, n)}
    )
    frame["y"] = ((frame["debt"] - 20) / 5 - (frame["income"] - 50) / 10 > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path_factory.mktemp('mon_ui') / 'quorum.db'}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    riley = users.principal_by_email(db, "riley@demo.quorum")
    registry.create_model(
        db,
        dana,
        registry.ModelSpec(
            name=MODEL,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            target="y",
            goal_metric="accuracy",
            goal_target=0.8,
        ),
    )
    rng = np.random.default_rng(0)
    train, evaluation = _frame(rng, 500), _frame(rng, 1500)
    estimator = LogisticRegression().fit(train[["income", "debt"]], train["y"])
    versions.register_version(
        db,
        dana,
        versions.VersionUpload(
            MODEL,
            sio.dumps(estimator),
            "m.skops",
            evaluation.to_csv(index=False).encode(),
            "eval.csv",
        ),
    )
    reviews.submit_for_review(db, dana, MODEL, 1)
    reviews.decide(db, riley, MODEL, 1, "approve", "ok")
    deployments.promote(db, riley, MODEL, 1, ENV, "shadow")
    parts = []
    for day in range(10):
        part = _frame(rng, 1500, 1.0 if day >= 7 else 0.0)
        part.insert(0, "timestamp", pd.Timestamp("2026-02-01", tz="UTC") + pd.Timedelta(days=day))
        part.insert(1, "prediction_id", [f"d{day}-{i}" for i in range(len(part))])
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    monitoring.ingest(db, dana, MODEL, frame.drop(columns=["y"]), env=ENV)
    labels = frame[["prediction_id", "y"]].rename(columns={"y": "label"})
    monitoring.ingest_labels(db, dana, MODEL, labels, env=ENV)
    db.dispose()
    return url, dana.user_id


@pytest.fixture(autouse=True)
def _clean(store: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("QUORUM_DATABASE_URL", store[0])
    monkeypatch.setenv("QUORUM_ENVIRONMENTS", "staging,production")
    monkeypatch.chdir(ROOT)
    config.reset_settings()
    st.session_state.clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _open(path: str, user_id: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[USER_KEY] = user_id
    at.switch_page(path)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_monitoring_page_shows_health_card_and_charts(store: tuple[str, int]) -> None:
    at = _open("pages/5_Monitoring.py", store[1])
    at.selectbox(key="mon_env").set_value(ENV).run()
    assert not at.exception
    texts = " ".join(t.value for t in at.text)
    assert f"{MODEL} v1 in {ENV}" in texts and "since 2026-02-0" in texts
    assert any("Health: " in s.value for s in at.subheader)
    charts = at.get("plotly_chart")
    assert len(charts) >= 4
    assert "Data drift" in texts or "Open incidents" in " ".join(s.value for s in at.subheader)


def test_incidents_are_acknowledged_in_bulk_from_the_page(store: tuple[str, int]) -> None:
    db = Database(store[0])
    riley = users.principal_by_email(db, "riley@demo.quorum")
    open_before = [i for i in monitoring.alerts(db, SYSTEM, MODEL, ENV) if i.status == "open"]
    assert open_before
    at = _open("pages/5_Monitoring.py", riley.user_id)
    at.selectbox(key="mon_env").set_value(ENV).run()
    at.button(key="ack_all").click().run()
    assert not at.exception
    assert {i.status for i in monitoring.alerts(db, SYSTEM, MODEL, ENV)} == {"acknowledged"}
    db.dispose()


def test_home_shows_one_monitoring_card_per_model(store: tuple[str, int]) -> None:
    db = Database(store[0])
    with db.read() as session:
        notes = session.exec(
            select(Notification).where(
                Notification.user_id == store[1], Notification.kind == "alert"
            )
        ).all()
    assert len(notes) >= 2  # several incidents opened, each notified
    count = len(monitoring.alerts(db, SYSTEM, MODEL, ENV))
    db.dispose()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[USER_KEY] = store[1]
    at.run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value == "**Monitoring**"]
    assert len(cards) == 1
    assert f"{MODEL}: {count} open incident(s)" in [t.value for t in at.text]


def test_batch_scoring_page_renders_for_a_data_scientist(store: tuple[str, int]) -> None:
    at = _open("pages/45_Batch_scoring.py", store[1])
    assert not at.exception
    assert at.title[0].value == "Batch scoring"
    assert at.selectbox(key="score_model").options == [MODEL]


def test_a_tab_link_opens_that_tab_and_a_new_environment_keeps_it(store: tuple[str, int]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state[USER_KEY] = store[1]
    at.switch_page("pages/5_Monitoring.py")
    at.query_params["tab"] = "data-quality"
    at.run()
    at.selectbox(key="mon_env").set_value(ENV).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Health: " in s.value for s in at.subheader)
    assert shown_tab(at) == "Data quality"
    assert at.query_params["tab"] == "data-quality"


def test_monitoring_page_never_starts_a_sandbox(
    store: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page reads stored aggregates only: no model is loaded or run to draw it."""
    from core.sandbox import process

    started: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        started.append("worker")
        raise AssertionError("the monitoring page started a sandbox worker")

    monkeypatch.setattr(process.WorkerProcess, "__init__", refuse)
    monkeypatch.setattr(process.Template, "fork", refuse)
    at = _open("pages/5_Monitoring.py", store[1])
    at.selectbox(key="mon_env").set_value(ENV).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 4
    assert started == []
