"""Batch scoring: the live version scores an uploaded table; the predictions are then
recorded through monitoring ingest so they show on the monitoring page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import tables
from core.auth import Permission, Principal
from core.config import known_environment
from core.db import Database
from core.errors import InvalidInput, SandboxFailure
from core.evaluation import thresholded
from core.models import Task, utcnow
from core.services import monitoring, read_as
from core.services.compare import live_version
from core.services.registry import get_model
from core.services.sandboxed import allowed_patterns, audited, version_sandbox
from core.services.versions import data_hints


@dataclass(frozen=True)
class ScoringResult:
    predictions: pd.DataFrame
    batch_id: int
    version: int
    message: str


def score(
    db: Database,
    actor: Principal,
    model_name: str,
    data: bytes,
    filename: str,
    env: str = "production",
    progress: monitoring.Progress | None = None,
) -> pd.DataFrame:
    """Predictions (prediction_id, prediction, score) of the live version; also ingested."""
    return score_batch(db, actor, model_name, data, filename, env, progress).predictions


def score_batch(
    db: Database,
    actor: Principal,
    model_name: str,
    data: bytes,
    filename: str,
    env: str = "production",
    progress: monitoring.Progress | None = None,
) -> ScoringResult:
    with read_as(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.SCORE,
            what="score with {model}",
        )
        version = live_version(session, model, known_environment(env))
        patterns = allowed_patterns(session)
        if version is None:
            raise InvalidInput(
                f"No version of {model.name} is live in '{env}', so there is nothing to score "
                "with. Choose the environment where it is live, or deploy a version first."
            )
    frame = tables.read_table(data, filename)
    features = dict(version.feature_types)
    tables.check_columns(
        frame, features, allow_extra=[monitoring.ID_COL, monitoring.TS_COL, monitoring.LABEL_COL]
    )
    if progress is not None:
        progress(0.1, f"{len(frame):,} rows read; scoring with v{version.number}")
    scored = _with_ids_and_times(frame)
    with audited(db, actor, model, "batch scoring", sha256=version.artifact_sha256):
        box = version_sandbox(version, patterns)
        try:
            predictions = box.predict(frame[list(features)], proba=model.task != Task.REGRESSION)
        except SandboxFailure as failed:
            failed.details = failed.details + data_hints(frame, features)
            raise
    scored[monitoring.PRED_COL] = thresholded(
        predictions.prediction, predictions.proba, box.check().classes, version.decision_threshold
    )
    if predictions.proba is not None:
        scored[monitoring.SCORE_COL] = predictions.proba[:, -1]
    if progress is not None:
        progress(0.5, "Scored; recording the predictions for monitoring")
    result = monitoring.ingest(
        db, actor, model.name, scored, env=env, source="scoring", filename=filename
    )
    if progress is not None:
        progress(1.0, result.message)
    columns = [monitoring.ID_COL, monitoring.PRED_COL]
    if monitoring.SCORE_COL in scored.columns:
        columns.append(monitoring.SCORE_COL)
    output = scored[columns].reset_index(drop=True)
    if monitoring.SCORE_COL not in output.columns:
        output[monitoring.SCORE_COL] = np.nan
    return ScoringResult(output, result.batch_id, version.number, result.message)


def _with_ids_and_times(frame: pd.DataFrame) -> pd.DataFrame:
    scored = frame.copy()
    if monitoring.ID_COL not in scored.columns:
        prefix = uuid.uuid4().hex[:12]
        scored.insert(0, monitoring.ID_COL, [f"score-{prefix}-{i}" for i in range(len(frame))])
    if monitoring.TS_COL not in scored.columns:
        scored.insert(1, monitoring.TS_COL, pd.Timestamp(utcnow()))
    return scored
