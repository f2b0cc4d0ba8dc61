"""Monitoring from Python: log production predictions and, later, their labels."""

from __future__ import annotations

import pandas as pd

from core.auth import Principal
from core.db import Database
from core.services import monitoring


def log_predictions(
    db: Database,
    actor: Principal,
    model: str,
    dataframe: pd.DataFrame,
    env: str = "production",
) -> monitoring.IngestResult:
    """Record predictions (timestamp, prediction_id, features, optional prediction/score)."""
    return monitoring.ingest(db, actor, model, dataframe, env=env, source="sdk", filename="sdk")


def log_labels(
    db: Database,
    actor: Principal,
    model: str,
    dataframe: pd.DataFrame,
    env: str = "production",
) -> monitoring.IngestResult:
    """Record the true outcomes (prediction_id, label) of predictions logged earlier."""
    return monitoring.ingest_labels(
        db, actor, model, dataframe, env=env, source="sdk", filename="sdk"
    )
