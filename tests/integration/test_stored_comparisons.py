"""Comparisons are computed once and stored: the candidate's champion on the candidate's
evaluation data, and both versions on the newest labelled production data when there is
some; a page reads them without loading a model; new labels give a new comparison."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sqlalchemy import func
from sqlmodel import select

from core.auth import SYSTEM
from core.models import AuditEvent, StoredComparison
from core.services import compare, deployments, monitoring, reviews
from tests.integration.test_registration import (  # noqa: F401 (the fixture)
    FEATURES,
    MODEL,
    World,
    fit_logistic,
    register,
    training_frame,
    world,
)


@pytest.fixture
def w(world: World) -> World:  # noqa: F811 (the imported fixture)
    return world


def _production(seed: int, rows: int, first_id: int) -> tuple[bytes, bytes]:
    """Predictions (made by the live model elsewhere) and, apart, their true outcomes; the
    inputs have shifted from the evaluation data, so scores there differ."""
    frame = training_frame(seed, rows=rows)
    frame["income"] = frame["income"] + 0.8
    now = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3)
    ids = [f"p{first_id + i}" for i in range(rows)]
    predictions = frame[FEATURES].assign(
        timestamp=now + pd.to_timedelta(np.arange(rows) * 60, "s"),
        prediction_id=ids,
        prediction=1,
    )
    labels = pd.DataFrame({"prediction_id": ids, "label": frame["defaulted"]})
    return (
        predictions.to_csv(index=False).encode(),
        labels.to_csv(index=False).encode(),
    )


def _live_v1_with_candidate_v2(w: World) -> None:
    register(w, fit_logistic(seed=0, c=1.0))
    reviews.submit_for_review(w.db, w.dana, MODEL, 1)
    reviews.decide(w.db, w.riley, MODEL, 1, "approve", "fine")
    deployments.promote(w.db, w.riley, MODEL, 1, "production")
    register(w, fit_logistic(seed=7, c=0.01))


def _label(w: World, seed: int, rows: int, first_id: int) -> None:
    predictions, labels = _production(seed, rows, first_id)
    monitoring.ingest(w.db, w.dana, MODEL, predictions, filename=f"p{seed}.csv")
    monitoring.ingest_labels(w.db, w.dana, MODEL, labels, filename=f"l{seed}.csv")


def _compared(w: World) -> int:
    with w.db.read() as session:
        stmt = select(func.count()).where(AuditEvent.action == "version.compared")
        return int(session.exec(stmt).one())


def test_both_versions_are_scored_on_recent_labelled_production_data(w: World) -> None:
    _live_v1_with_candidate_v2(w)
    assert compare.stored_comparisons(w.db, w.dana, MODEL, 2, None) == {}

    _label(w, seed=11, rows=120, first_id=0)
    made = compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store)
    assert made == 2
    stored = compare.stored_comparisons(w.db, w.dana, MODEL, 2, None)
    assert set(stored) == {compare.EVALUATION_DATA, compare.PRODUCTION_DATA}
    on_eval, on_prod = stored[compare.EVALUATION_DATA], stored[compare.PRODUCTION_DATA]
    assert (on_prod.comparison.candidate, on_prod.comparison.champion) == (2, 1)
    assert on_eval.n_rows == 160 and on_prod.n_rows == 120
    assert "120 most recent labelled production rows" in on_prod.data_words
    # each version's metrics on production are those scikit-learn gives on the same rows
    frame = training_frame(11, rows=120)
    frame["income"] = frame["income"] + 0.8
    for version, estimator in (
        (on_prod.comparison.candidate_result, fit_logistic(7, 0.01)),
        (on_prod.comparison.champion_result, fit_logistic(0, 1.0)),
    ):
        expected = accuracy_score(frame["defaulted"], estimator.predict(frame[FEATURES]))
        assert abs(version["metrics"]["accuracy"] - expected) < 1e-12
    assert on_prod.comparison.rows != on_eval.comparison.rows
    # on the evaluation data, the same numbers the comparison computed on demand gives
    live = compare.compare(w.db, SYSTEM, MODEL, 2, store=w.store)
    assert on_eval.comparison.rows == live.rows


def test_a_comparison_is_computed_once_and_read_without_the_models(w: World) -> None:
    _live_v1_with_candidate_v2(w)
    _label(w, seed=11, rows=80, first_id=0)
    assert compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store) == 2
    before = _compared(w)
    assert compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store) == 0
    assert _compared(w) == before, "a known hash is not scored again"

    shutil.rmtree(w.store.root)  # no artifact can be loaded any more
    stored = compare.stored_comparisons(w.db, w.riley, MODEL, 2, None)
    assert stored[compare.EVALUATION_DATA].comparison.rows


def test_new_labels_give_a_new_production_comparison(w: World) -> None:
    _live_v1_with_candidate_v2(w)
    _label(w, seed=11, rows=60, first_id=0)
    compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store)
    _label(w, seed=12, rows=60, first_id=1000)
    assert compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store) == 1
    stored = compare.stored_comparisons(w.db, w.dana, MODEL, 2, None)
    assert stored[compare.PRODUCTION_DATA].n_rows == 120
    with w.db.read() as session:
        kinds = session.exec(select(StoredComparison.data)).all()
    assert sorted(kinds) == ["evaluation", "production", "production"]


def test_too_few_labels_give_only_the_evaluation_comparison(w: World) -> None:
    _live_v1_with_candidate_v2(w)
    _label(w, seed=11, rows=compare.MIN_LABELLED - 1, first_id=0)
    assert compare.compute_comparisons(w.db, w.dana, MODEL, 2, store=w.store) == 1
    stored = compare.stored_comparisons(w.db, w.dana, MODEL, 2, None)
    assert set(stored) == {compare.EVALUATION_DATA}


def test_the_periodic_refresh_covers_every_version_shown(w: World) -> None:
    _live_v1_with_candidate_v2(w)
    message = compare.refresh_comparisons(w.db, store=w.store)
    assert message.startswith("1 comparison(s) computed for 2 version(s)")
    assert compare.refresh_comparisons(w.db, store=w.store).startswith("0 comparison")
