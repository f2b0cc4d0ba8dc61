"""The health board and the stored comparisons on both stores (SQLite and PostgreSQL): the
board's one read of recent windows (a window function) and the comparison's content-hash
table behave the same on each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from core import demo
from core.db import Database
from core.services import board, compare, deployments, monitoring, registry, reviews, users
from core.services import versions as versions_service

MODEL = "store-check"
FEATURES = ["income", "debt"]


def _frame(seed: int, rows: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 2)), columns=FEATURES)
    frame["income"] += shift
    frame["y"] = (frame["debt"] - frame["income"] + rng.normal(0, 0.5, rows) > 0).astype(int)
    return frame


def _register(db: Database, who, c: float) -> None:
    frame = _frame(1, 200)
    estimator = LogisticRegression(C=c).fit(frame[FEATURES], frame["y"])
    versions_service.register_version(
        db,
        who,
        versions_service.VersionUpload(
            model=MODEL,
            model_file=sio.dumps(estimator),
            model_filename="model.skops",
            eval_file=_frame(2, 150).to_csv(index=False).encode(),
            eval_filename="evaluation.csv",
        ),
    )


def test_board_and_comparisons_on_each_store(db: Database) -> None:
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    riley = users.principal_by_email(db, "riley@demo.quorum")
    blake = users.principal_by_email(db, "blake@demo.quorum")
    spec = registry.ModelSpec(
        name=MODEL,
        team=demo.DEMO_TEAM,
        task="binary_classification",
        target="y",
        goal_metric="accuracy",
        goal_target=0.95,
    )
    registry.create_model(db, dana, spec)
    _register(db, dana, 1.0)
    reviews.submit_for_review(db, dana, MODEL, 1)
    reviews.decide(db, riley, MODEL, 1, "approve", "fine")
    deployments.promote(db, riley, MODEL, 1, "production")
    _register(db, dana, 0.01)

    production = _frame(3, 300, shift=0.5)
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=20)
    ids = [f"r{i}" for i in range(len(production))]
    sent = production[FEATURES].assign(
        timestamp=start + pd.to_timedelta(np.arange(len(production)) * 3600, "s"),
        prediction_id=ids,
    )
    monitoring.ingest(db, dana, MODEL, sent.to_csv(index=False).encode(), filename="p.csv")
    labels = pd.DataFrame({"prediction_id": ids, "label": production["y"]})
    monitoring.ingest_labels(db, dana, MODEL, labels.to_csv(index=False).encode(), filename="l.csv")

    (row,) = board.health_board(db, blake)
    card = monitoring.health_card(monitoring.monitoring_data(db, blake, MODEL))
    assert (row.status, row.goal_met) == (card.status, card.goal_met)
    assert row.goal_met is False, "accuracy 0.95 is out of reach on shifted data"
    assert row.goal == "Accuracy at least 0.95"
    assert len(row.trend) >= 1
    assert any(a.startswith("v2 registered") for a in row.activity)

    assert compare.compute_comparisons(db, dana, MODEL, 2) == 2
    stored = compare.stored_comparisons(db, blake, MODEL, 2, None)
    assert set(stored) == {compare.EVALUATION_DATA, compare.PRODUCTION_DATA}
    assert stored[compare.PRODUCTION_DATA].n_rows == 300
    assert compare.compute_comparisons(db, dana, MODEL, 2) == 0
