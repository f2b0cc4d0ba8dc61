"""Production monitoring: ingest predictions and labels into per-window aggregates, open alerts
and retraining tasks, retrain, and the reads the monitoring page and reports use.

Ingest writes raw rows once (for labels and retraining) and merges per-window counts; every
read for the page uses only the stored window aggregates, never raw prediction rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, evaluation, tables
from core.artifacts import ArtifactStore
from core.auth import Permission, Principal, require
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    Alert,
    Evaluation,
    InferenceBatch,
    MLModel,
    ModelVersion,
    Prediction,
    RetrainingTask,
    Role,
    RoleGrant,
    Task,
    User,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.anomalies import flag_anomalies
from core.monitoring.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    as_labels,
    cbpe_estimate,
    metrics_from_sums,
    performance_table,
)
from core.monitoring.profile import NUMERIC, PREDICTION, SCORE, ReferenceProfile
from core.monitoring.quality import QualityThresholds, quality_table
from core.monitoring.stats import DriftConfig, FeatureDrift
from core.monitoring.windows import (
    WINDOWS,
    SeenIds,
    WindowAggregate,
    aggregate_chunk,
    aggregate_labels,
    dataset_drift_share,
    drift_table,
    merge_windows,
    window_drift,
)
from core.services import read_as, unit_of_work
from core.services.compare import live_version
from core.services.portfolio import notify
from core.services.registry import get_model, get_version
from core.services.versions import evaluation_of, load_estimator

ID_COL = "prediction_id"
TS_COL = "timestamp"
PRED_COL = "prediction"
SCORE_COL = "score"
LABEL_COL = "label"
OPTIONAL_COLUMNS = (PRED_COL, SCORE_COL, LABEL_COL)
CHUNK_ROWS = 100_000
ID_BATCH = 5_000
MAX_LISTED = 5
MAX_TEXT = 120
PREDICTIONS, LABELS = "predictions", "labels"
OPEN, ACKNOWLEDGED, RESOLVED, DONE = "open", "acknowledged", "resolved", "done"
HEALTHY, AT_RISK, FAILING, NO_DATA = "healthy", "at risk", "failing", "no data"
DRIFT, PERFORMANCE, QUALITY, ANOMALY = "drift", "performance", "quality", "anomaly"
RETRAIN_KINDS = (DRIFT, PERFORMANCE)
DEFAULT_TOLERANCE = 0.1
MIN_RETRAIN_ROWS = 20
ANOMALY_HISTORY = 14
_ESTIMATORS: dict[str, Any] = {}
Progress = Callable[[float, str], None]
Source = bytes | str | os.PathLike[str] | pd.DataFrame
_INSERT_COLUMNS = (
    "batch_id",
    "model_id",
    "version_id",
    "environment",
    "prediction_id",
    "ts",
    "prediction",
    "score",
    "label",
    "features",
)


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceGoal:
    """The metric a window must meet, where it comes from, and in plain words."""

    metric: str
    operator: str
    target: float
    basis: str

    def met(self, value: float) -> bool:
        return value >= self.target if self.operator == ">=" else value <= self.target

    def describe(self, value: float | None) -> str:
        return evaluation.describe_goal(self.metric, self.operator, self.target, value)


@dataclass(frozen=True)
class MonitoringSettings:
    """Per-model thresholds (MLModel.monitoring_config overrides the defaults)."""

    drift: DriftConfig
    quality: QualityThresholds
    goal: PerformanceGoal | None
    drift_feature: str | None = None
    min_labelled: int = 20
    anomaly_threshold: float = 3.5
    window: str = "D"


def settings_for(model: MLModel, ev: Evaluation | None) -> MonitoringSettings:
    config = dict(model.monitoring_config or {})
    try:
        quality = QualityThresholds.from_dict(config.get("quality", {}))
        min_labelled = int(config.get("min_labelled", 20))
        anomaly = float(config.get("anomaly_threshold", 3.5))
        window = str(config.get("window", "D"))
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"The monitoring settings of {model.name} are not valid ({exc}). "
            "Correct them on the model's settings and try again."
        ) from None
    return MonitoringSettings(
        drift=DriftConfig.from_dict(config.get("drift", {})),
        quality=quality,
        goal=_goal(model, ev, config.get("performance")),
        drift_feature=config.get("drift_feature") or None,
        min_labelled=min_labelled,
        anomaly_threshold=anomaly,
        window=window,
    )


CONFIG_KEYS = (
    "drift",
    "quality",
    "performance",
    "drift_feature",
    "min_labelled",
    "anomaly_threshold",
    "window",
)


def configure(
    db: Database, actor: Principal, model_name: str, config: Mapping[str, Any]
) -> MLModel:
    """Set a model's monitoring thresholds (checked before they are saved)."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise InvalidInput(
            f"Unknown monitoring setting(s): {', '.join(unknown)}. "
            f"Known settings: {', '.join(CONFIG_KEYS)}."
        )
    with unit_of_work(db, actor) as session:
        model = session.exec(
            select(MLModel).where(MLModel.name == model_name).with_for_update()
        ).first()
        if model is None:
            raise NotFound(f"No model named {model_name!r}. Check the name on the Models page.")
        require(
            session,
            actor,
            Permission.MANAGE_MONITORING,
            team_id=model.team_id,
            what=f"change the monitoring settings of {model.name}",
            model_id=model.id,
        )
        before = dict(model.monitoring_config or {})
        if config.get("window", before.get("window", "D")) != before.get("window", "D"):
            has_data = session.exec(
                select(WindowAggregateRow.id).where(WindowAggregateRow.model_id == model.id)
            ).first()
            if has_data is not None:
                raise InvalidInput(
                    f"{model.name} already has monitoring windows; the window length can only "
                    "be chosen before the first production data arrives."
                )
        merged = {**before, **dict(config)}
        model.monitoring_config = merged
        settings_for(model, None)
        model.updated_at = utcnow()
        model.row_version += 1
        session.add(model)
        audit.record(
            session,
            actor,
            "monitoring.configured",
            object_type="model",
            object_id=model.id,
            model_id=model.id,
            summary=f"Monitoring settings of {model.name} changed: {', '.join(sorted(config))}",
            details={"before": before, "after": merged},
        )
        return model


def _computable(task: str) -> list[str]:
    return REGRESSION_METRICS if task == Task.REGRESSION else CLASSIFICATION_METRICS


def _goal(model: MLModel, ev: Evaluation | None, custom: Any) -> PerformanceGoal | None:
    if isinstance(custom, Mapping) and custom.get("metric"):
        return PerformanceGoal(
            str(custom["metric"]),
            str(custom.get("operator", ">=")),
            float(custom["target"]),
            "set in the model's monitoring settings",
        )
    if model.goal_metric in _computable(model.task) and model.goal_target is not None:
        return PerformanceGoal(
            model.goal_metric, model.goal_operator, model.goal_target, "the model's business goal"
        )
    metric = {Task.REGRESSION: "mae", Task.BINARY: "f1"}.get(Task(model.task), "accuracy")
    reference = (ev.result.get("metrics", {}) if ev else {}).get(metric)
    if reference is None:
        return None
    lower_is_better = metric == "mae"
    factor = 1 + DEFAULT_TOLERANCE if lower_is_better else 1 - DEFAULT_TOLERANCE
    return PerformanceGoal(
        metric,
        "<=" if lower_is_better else ">=",
        float(reference) * factor,
        f"within {DEFAULT_TOLERANCE:.0%} of the version's evaluation "
        f"({evaluation.METRIC_LABELS.get(metric, metric)} {float(reference):.3g})",
    )


# --- ingest ------------------------------------------------------------------------------


@dataclass
class IngestResult:
    batch_id: int
    model: str
    environment: str
    version: int
    kind: str
    n_rows: int
    windows: list[date]
    alerts: list[str] = field(default_factory=list)
    retraining_task_id: int | None = None
    message: str = ""


@dataclass
class _Target:
    model: MLModel
    version: ModelVersion
    profile: ReferenceProfile
    settings: MonitoringSettings
    environment: str


def ingest(
    db: Database,
    actor: Principal,
    model_name: str,
    data: Source,
    *,
    env: str = "production",
    source: str = "upload",
    filename: str = "",
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> IngestResult:
    """Store one batch of production predictions, all or nothing, and update the windows."""
    name = filename or _default_name(data)
    digest = _sha256(data)
    try:
        with unit_of_work(db, actor) as session:
            target = _target(session, actor, model_name, env, "ingest production data into")
            _refuse_repeat(session, target, PREDICTIONS, digest)
            batch = _new_batch(session, actor, target, PREDICTIONS, source, digest, name)
            windows, n_rows, span = _ingest_rows(
                session, target, batch, data, name, progress, chunk_rows
            )
            _store_windows(session, target, windows)
            return _finish(session, actor, target, batch, sorted(windows), n_rows, span, source)
    except IntegrityError as error:
        if "prediction" not in str(error.orig).lower():
            raise
        raise _existing_ids_error(db, model_name, env, data, name, chunk_rows) from None


def _default_name(data: Source) -> str:
    if isinstance(data, str | os.PathLike):
        return os.path.basename(os.fspath(data))
    return "dataframe" if isinstance(data, pd.DataFrame) else "upload.csv"


def _sha256(data: Source) -> str:
    if isinstance(data, pd.DataFrame):
        return evaluation.data_hash(data)
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
        return digest.hexdigest()
    with open(data, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(data: Source, name: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise InvalidInput("The data has no rows. Send a table with at least one row.")
        frame = data.rename(columns=str)
        for start in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows].copy()
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            yield chunk
        return
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    yield from tables.iter_table_chunks(source, name, chunk_rows)


def _target(session: Session, actor: Principal, model_name: str, env: str, what: str) -> _Target:
    model = get_model(session, model_name)
    require(
        session,
        actor,
        Permission.INGEST,
        team_id=model.team_id,
        what=f"{what} {model.name}",
        model_id=model.id,
    )
    environment = (env or "").strip().lower()
    version = live_version(session, model, environment)
    if version is None:
        raise InvalidInput(
            f"No version of {model.name} is live in '{environment}', so there is nothing to "
            "monitor there. Deploy a version to that environment first, or choose the "
            "environment where it is live."
        )
    return _target_for(session, model, version, environment)


def _target_for(
    session: Session, model: MLModel, version: ModelVersion, environment: str
) -> _Target:
    ev = evaluation_of(session, version.id or 0)
    if ev is None or not ev.reference_profile:
        raise NotFound(
            f"{model.name} v{version.number} has no reference profile to monitor against. "
            "Register the version again with its evaluation data."
        )
    return _Target(
        model,
        version,
        ReferenceProfile.from_dict(ev.reference_profile),
        settings_for(model, ev),
        environment,
    )


def _refuse_repeat(session: Session, target: _Target, kind: str, digest: str) -> None:
    earlier = session.exec(
        select(InferenceBatch).where(
            InferenceBatch.model_id == target.model.id,
            InferenceBatch.environment == target.environment,
            InferenceBatch.kind == kind,
            InferenceBatch.file_sha256 == digest,
        )
    ).first()
    if earlier is not None:
        raise Conflict(
            f"This file was already ingested as batch #{earlier.id} "
            f"({earlier.filename or 'no name'}, {earlier.n_rows:,} rows, "
            f"{_day(earlier.created_at)}). Nothing was stored again; upload only new data.",
            details=[f"sha256 {digest}"],
        )


def _day(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "unknown time"


def _new_batch(
    session: Session,
    actor: Principal,
    target: _Target,
    kind: str,
    source: str,
    digest: str,
    name: str,
) -> InferenceBatch:
    batch = InferenceBatch(
        model_id=target.model.id or 0,
        version_id=target.version.id or 0,
        environment=target.environment,
        kind=kind,
        source=source[:20],
        file_sha256=digest,
        filename=name[:255],
        created_by_id=actor.user_id,
    )
    session.add(batch)
    session.flush()
    return batch


def _ingest_rows(
    session: Session,
    target: _Target,
    batch: InferenceBatch,
    data: Source,
    name: str,
    progress: Progress | None,
    chunk_rows: int,
) -> tuple[dict[date, WindowAggregate], int, tuple[datetime, datetime] | None]:
    features = dict(target.version.feature_types)
    seen = SeenIds()
    windows: dict[date, WindowAggregate] = {}
    estimator: Any = None
    n_rows, low, high = 0, None, None
    total = _size_hint(data)
    row_bytes = 0.0
    for chunk in _chunks(data, name, chunk_rows):
        stamps = _check_chunk(chunk, features, name, target)
        _refuse_repeated_ids(chunk, seen)
        if PRED_COL not in chunk.columns:
            estimator = estimator if estimator is not None else _estimator(target.version)
            _score_chunk(chunk, estimator, features, target.model.task)
        chunk[TS_COL] = stamps
        _insert_predictions(session, batch, target, chunk, features)
        part = aggregate_chunk(chunk, target.profile, window=target.settings.window)
        windows = merge_windows(windows, part)
        n_rows += len(chunk)
        low = min(low, stamps.min()) if low is not None else stamps.min()
        high = max(high, stamps.max()) if high is not None else stamps.max()
        if progress is not None:
            row_bytes = row_bytes or _bytes_per_row(chunk)
            progress(_fraction(n_rows, total, data, row_bytes), f"{n_rows:,} rows read")
    span = _span(low, high)
    return windows, n_rows, span


def _span(low: Any, high: Any) -> tuple[datetime, datetime] | None:
    if low is None or high is None:
        return None
    return pd.Timestamp(low).to_pydatetime(), pd.Timestamp(high).to_pydatetime()


def _size_hint(data: Source) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    if isinstance(data, bytes):
        return len(data)
    return os.path.getsize(data)


def _bytes_per_row(chunk: pd.DataFrame) -> float:
    sample = chunk.head(200)
    return len(sample.to_csv(index=False).encode()) / max(len(sample), 1)


def _fraction(n_rows: int, total: int, data: Source, row_bytes: float) -> float:
    """Share done: rows for a DataFrame, estimated bytes read for a file."""
    if isinstance(data, pd.DataFrame):
        return min(n_rows / max(total, 1), 1.0)
    return min(0.99, n_rows * row_bytes / max(total, 1))


def _check_chunk(
    chunk: pd.DataFrame, features: dict[str, str], name: str, target: _Target
) -> pd.Series:
    problems = [
        f"column '{column}' is missing ({why})"
        for column, why in ((TS_COL, "when each prediction was made"), (ID_COL, "its unique id"))
        if column not in chunk.columns
    ]
    try:
        tables.check_columns(chunk, features, allow_extra=[TS_COL, ID_COL, *OPTIONAL_COLUMNS])
    except InvalidInput as refused:
        problems += refused.details
    stamps = pd.Series(pd.NaT, index=chunk.index, dtype="datetime64[ns, UTC]")
    if TS_COL in chunk.columns:
        stamps = pd.to_datetime(chunk[TS_COL], errors="coerce", utc=True)
        problems += _listed(stamps.isna(), chunk.index, f"column '{TS_COL}' is empty or unreadable")
    if ID_COL in chunk.columns:
        ids = chunk[ID_COL]
        problems += _listed(ids.isna().to_numpy(), chunk.index, f"column '{ID_COL}' is empty")
        too_long = ids.astype(str).str.len().to_numpy() > MAX_TEXT
        problems += _listed(too_long, chunk.index, f"'{ID_COL}' is over {MAX_TEXT} characters")
    if PRED_COL in chunk.columns:
        empty = chunk[PRED_COL].isna().to_numpy()
        problems += _listed(empty, chunk.index, f"column '{PRED_COL}' is empty")
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise InvalidInput(
            f"The file '{name}' does not match {target.model.name} v{target.version.number} "
            f"({count}). Nothing was stored; fix what is listed and upload it again.",
            details=problems,
        )
    return stamps


def _listed(mask: Any, index: pd.Index, what: str) -> list[str]:
    flags = np.asarray(mask, dtype=bool)
    if not flags.any():
        return []
    rows = [str(int(i) + 1) for i in index[flags][:MAX_LISTED]]
    more = f" and {int(flags.sum()) - MAX_LISTED} more" if flags.sum() > MAX_LISTED else ""
    return [f"{what} (row(s) {', '.join(rows)}{more})"]


def _refuse_repeated_ids(chunk: pd.DataFrame, seen: SeenIds) -> None:
    ids = chunk[ID_COL].astype(str)
    hashes = pd.util.hash_pandas_object(ids, index=False).to_numpy()
    repeated = seen.check_and_add(hashes)
    if repeated.any():
        listed = ", ".join(repr(i) for i in pd.unique(ids[repeated])[:MAX_LISTED])
        raise InvalidInput(
            f"The batch repeats {int(repeated.sum())} prediction id(s): {listed}. "
            "Every prediction needs its own id; nothing was stored."
        )


def _estimator(version: ModelVersion) -> Any:
    """The version's estimator, loaded (and hash-checked) once per process."""
    key = version.artifact_sha256
    if key not in _ESTIMATORS:
        if len(_ESTIMATORS) >= 8:
            _ESTIMATORS.pop(next(iter(_ESTIMATORS)))
        _ESTIMATORS[key] = load_estimator(version)
    return _ESTIMATORS[key]


def _score_chunk(chunk: pd.DataFrame, estimator: Any, features: dict[str, str], task: str) -> None:
    x = chunk[list(features)]
    try:
        chunk[PRED_COL] = estimator.predict(x)
        if task != Task.REGRESSION and hasattr(estimator, "predict_proba"):
            chunk[SCORE_COL] = np.asarray(estimator.predict_proba(x))[:, -1]
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise InvalidInput(
            f"The live model could not score the rows: {str(error)[:300]}. Check that the "
            "columns hold the values the model was trained on, or send a prediction column."
        ) from None


def _text(values: pd.Series, task: str) -> np.ndarray:
    if task == Task.REGRESSION:
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.astype(str).to_numpy()
    return np.asarray(as_labels(values), dtype=object)


def _nullable_text(values: pd.Series, task: str) -> list[Any]:
    text = _text(values, task)
    missing = values.isna().to_numpy()
    return [None if gone else value for value, gone in zip(text.tolist(), missing, strict=True)]


def _timestamp_text(stamps: pd.Series) -> list[str]:
    raw = stamps.dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    text = np.datetime_as_string(raw, unit="us").astype("U26")
    text.view("U1").reshape(-1, 26)[:, 10] = " "
    return text.tolist()


def _prediction_rows(
    batch: InferenceBatch, target: _Target, chunk: pd.DataFrame, features: dict[str, str]
) -> Iterable[tuple[Any, ...]]:
    task = target.model.task
    predictions = _text(chunk[PRED_COL], task)
    if (np.char.str_len(predictions.astype(str)) > MAX_TEXT).any():
        raise InvalidInput(f"Some predictions are over {MAX_TEXT} characters; shorten the labels.")
    scores: list[Any] = [None] * len(chunk)
    if SCORE_COL in chunk.columns:
        values = pd.to_numeric(chunk[SCORE_COL], errors="coerce").to_numpy(dtype=float)
        scores = [float(v) if math.isfinite(v) else None for v in values.tolist()]
    labels: list[Any] = [None] * len(chunk)
    if LABEL_COL in chunk.columns:
        labels = _nullable_text(chunk[LABEL_COL], task)
    encoded = chunk[list(features)].to_json(orient="records", lines=True, double_precision=15)
    return zip(
        repeat(batch.id),
        repeat(target.model.id),
        repeat(target.version.id),
        repeat(target.environment),
        chunk[ID_COL].astype(str).tolist(),
        _timestamp_text(chunk[TS_COL]),
        predictions.tolist(),
        scores,
        labels,
        encoded.rstrip("\n").split("\n"),
        strict=False,
    )


def _insert_predictions(
    session: Session,
    batch: InferenceBatch,
    target: _Target,
    chunk: pd.DataFrame,
    features: dict[str, str],
) -> None:
    rows = _prediction_rows(batch, target, chunk, features)
    raw = session.connection().connection
    cursor = raw.cursor()
    try:
        if session.get_bind().dialect.name == "postgresql":
            _copy_rows(cursor, rows)
        else:
            marks = ", ".join("?" for _ in _INSERT_COLUMNS)
            cursor.executemany(
                f"INSERT INTO prediction ({', '.join(_INSERT_COLUMNS)}) VALUES ({marks})",
                rows,  # type: ignore[arg-type]  # any iterable of rows works with sqlite3
            )
    except Exception as error:  # the driver's own error types; re-raised as SQLAlchemy's
        if "unique" in str(error).lower() or "duplicate" in str(error).lower():
            raise IntegrityError("INSERT INTO prediction", None, error) from None
        raise
    finally:
        cursor.close()


def _copy_rows(cursor: Any, rows: Iterable[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY prediction ({', '.join(_INSERT_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _existing_ids_error(
    db: Database, model_name: str, env: str, data: Source, name: str, chunk_rows: int
) -> InvalidInput:
    found: list[str] = []
    with db.read() as session:
        model = get_model(session, model_name)
        for chunk in _chunks(data, name, chunk_rows):
            ids = chunk[ID_COL].astype(str).unique().tolist()
            found += _stored_ids(session, model.id or 0, env, ids)
            if len(found) >= MAX_LISTED:
                break
    listed = ", ".join(repr(i) for i in found[:MAX_LISTED]) or "(not found again)"
    return InvalidInput(
        f"Some prediction ids were already ingested for {model_name} in {env}: {listed}. "
        "Nothing of this batch was stored. Send only new predictions (labels for earlier "
        "predictions go through the labels upload).",
    )


def _stored_ids(session: Session, model_id: int, env: str, ids: list[str]) -> list[str]:
    table = Prediction.__table__  # type: ignore[attr-defined]
    found: list[str] = []
    for start in range(0, len(ids), ID_BATCH):
        part = ids[start : start + ID_BATCH]
        found += (
            session.connection()
            .execute(
                select(table.c.prediction_id).where(
                    table.c.model_id == model_id,
                    table.c.environment == env,
                    table.c.prediction_id.in_(part),
                )
            )
            .scalars()
            .all()
        )
    return found


def _finish(
    session: Session,
    actor: Principal,
    target: _Target,
    batch: InferenceBatch,
    touched: list[date],
    n_rows: int,
    span: tuple[datetime, datetime] | None,
    source: str,
) -> IngestResult:
    batch.n_rows = n_rows
    if span is not None:
        batch.window_start, batch.window_end = span
    session.add(batch)
    kind = batch.kind
    audit.record(
        session,
        actor,
        f"monitoring.{kind}_ingested",
        object_type="inference_batch",
        object_id=batch.id,
        model_id=target.model.id,
        summary=f"{n_rows:,} {kind} ingested for {target.model.name} "
        f"v{target.version.number} in {target.environment} ({batch.filename}, from {source})",
        details={"sha256": batch.file_sha256, "rows": n_rows, "windows": len(touched)},
    )
    opened, task_id = evaluate_windows(session, actor, target, touched)
    first, last = (touched[0], touched[-1]) if touched else (None, None)
    message = (
        f"Batch #{batch.id}: {n_rows:,} {kind} for {target.model.name} v{target.version.number} "
        f"in {target.environment}, {len(touched)} window(s) from {first} to {last} updated."
    )
    if opened:
        message += f" {len(opened)} alert(s) opened."
    return IngestResult(
        batch_id=batch.id or 0,
        model=target.model.name,
        environment=target.environment,
        version=target.version.number,
        kind=kind,
        n_rows=n_rows,
        windows=touched,
        alerts=[a.message for a in opened],
        retraining_task_id=task_id,
        message=message,
    )


def _as_datetime(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _as_date(when: datetime) -> date:
    return when.date()


def _window_json(agg: WindowAggregate) -> dict[str, Any]:
    """`WindowAggregate.to_dict` without the deep copies (the lists are only serialised)."""
    return {
        "window_start": agg.window_start.isoformat(),
        "n_rows": agg.n_rows,
        "columns": {name: dict(vars(column)) for name, column in agg.columns.items()},
        "duplicate_ids": agg.duplicate_ids,
        "unexpected_columns": list(agg.unexpected_columns),
        "cbpe": dict(agg.cbpe),
        "labels": dict(agg.labels),
    }


def _store_windows(
    session: Session, target: _Target, windows: Mapping[date, WindowAggregate]
) -> None:
    if not windows:
        return
    starts = [_as_datetime(day) for day in windows]
    existing = {
        _as_date(row.window_start): row
        for row in session.exec(
            select(WindowAggregateRow)
            .where(
                WindowAggregateRow.model_id == target.model.id,
                WindowAggregateRow.version_id == target.version.id,
                WindowAggregateRow.environment == target.environment,
                col(WindowAggregateRow.window_start).in_(starts),
            )
            .with_for_update()
        )
    }
    now = utcnow()
    for day, agg in windows.items():
        row = existing.get(day)
        if row is None:
            session.add(
                WindowAggregateRow(
                    model_id=target.model.id or 0,
                    version_id=target.version.id or 0,
                    environment=target.environment,
                    window_start=_as_datetime(day),
                    n_rows=agg.n_rows,
                    data=_window_json(agg),
                    updated_at=now,
                )
            )
            continue
        merged = WindowAggregate.from_dict(row.data).merge(agg)
        row.data = _window_json(merged)
        row.n_rows = merged.n_rows
        row.updated_at = now
        row.row_version += 1
        session.add(row)
    session.flush()


# --- labels ------------------------------------------------------------------------------


def ingest_labels(
    db: Database,
    actor: Principal,
    model_name: str,
    data: Source,
    *,
    env: str = "production",
    source: str = "upload",
    filename: str = "",
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> IngestResult:
    """Join labels to stored predictions by prediction id; merge their sums into the windows."""
    name = filename or _default_name(data)
    digest = _sha256(data)
    with unit_of_work(db, actor) as session:
        target = _target(session, actor, model_name, env, "ingest labels for")
        _refuse_repeat(session, target, LABELS, digest)
        batch = _new_batch(session, actor, target, LABELS, source, digest, name)
        by_version: dict[int, dict[date, WindowAggregate]] = {}
        n_rows, low, high = 0, None, None
        for chunk in _chunks(data, name, chunk_rows):
            joined = _join_labels(session, target, chunk, name)
            _write_labels(session, joined)
            for key, part in joined.groupby("version_id"):
                version_id = int(str(key))
                profile = _profile_of(session, target, version_id)
                windows = aggregate_labels(part, profile, window=target.settings.window)
                by_version[version_id] = merge_windows(by_version.get(version_id, {}), windows)
            n_rows += len(chunk)
            low = min(low, joined[TS_COL].min()) if low is not None else joined[TS_COL].min()
            high = max(high, joined[TS_COL].max()) if high is not None else joined[TS_COL].max()
            if progress is not None:
                progress(0.5, f"{n_rows:,} labels joined")
        for version_id, windows in by_version.items():
            _store_windows(session, _version_target(session, target, version_id), windows)
        touched = sorted(by_version.get(target.version.id or 0, {}))
        span = _span(low, high)
        return _finish(session, actor, target, batch, touched, n_rows, span, source)


def _profile_of(session: Session, target: _Target, version_id: int) -> ReferenceProfile:
    if version_id == target.version.id:
        return target.profile
    return _version_target(session, target, version_id).profile


def _version_target(session: Session, target: _Target, version_id: int) -> _Target:
    if version_id == target.version.id:
        return target
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Version id {version_id} no longer exists.")
    return _target_for(session, target.model, version, target.environment)


def _join_labels(session: Session, target: _Target, chunk: pd.DataFrame, name: str) -> pd.DataFrame:
    problems = [f"column '{c}' is missing" for c in (ID_COL, LABEL_COL) if c not in chunk.columns]
    extra = [c for c in chunk.columns if c not in (ID_COL, LABEL_COL, TS_COL)]
    problems += [f"column '{c}' is not used for labels; remove it" for c in extra]
    if not problems:
        problems += _listed(chunk[ID_COL].isna().to_numpy(), chunk.index, "empty prediction id")
        problems += _listed(chunk[LABEL_COL].isna().to_numpy(), chunk.index, "empty label")
    if problems:
        raise InvalidInput(
            f"The labels file '{name}' cannot be used ({len(problems)} problem(s)). "
            "It needs the columns prediction_id and label. Nothing was stored.",
            details=problems,
        )
    ids = chunk[ID_COL].astype(str)
    _refuse_repeated_ids(chunk, SeenIds())
    stored = _stored_predictions(session, target, ids.tolist())
    missing = [i for i in ids if i not in stored.index][:MAX_LISTED]
    if missing:
        raise InvalidInput(
            f"No prediction was ingested for {len(set(ids) - set(stored.index)):,} of these "
            f"prediction ids, for example {', '.join(repr(m) for m in missing)}. Nothing was "
            "stored; ingest the predictions first, or check the ids."
        )
    rows = stored.loc[pd.Index(ids)]
    labelled = rows[rows["label"].notna()]
    if not labelled.empty:
        listed = ", ".join(repr(i) for i in labelled.index[:MAX_LISTED])
        raise Conflict(
            f"{len(labelled):,} prediction(s) already have a label, for example {listed}. "
            "Nothing was stored; send only labels that have not been sent before."
        )
    return pd.DataFrame(
        {
            "id": rows["id"].to_numpy(),
            "version_id": rows["version_id"].to_numpy(),
            TS_COL: pd.to_datetime(rows["ts"].to_numpy(), utc=True),
            PRED_COL: rows["prediction"].to_numpy(),
            SCORE_COL: rows["score"].to_numpy(dtype=float),
            LABEL_COL: _text(chunk[LABEL_COL], target.model.task),
        }
    )


def _stored_predictions(session: Session, target: _Target, ids: list[str]) -> pd.DataFrame:
    table = Prediction.__table__  # type: ignore[attr-defined]
    columns = [
        table.c.prediction_id,
        table.c.id,
        table.c.version_id,
        table.c.ts,
        table.c.prediction,
        table.c.score,
        table.c.label,
    ]
    parts = []
    for start in range(0, len(ids), ID_BATCH):
        result = session.connection().execute(
            select(*columns).where(
                table.c.model_id == target.model.id,
                table.c.environment == target.environment,
                table.c.prediction_id.in_(ids[start : start + ID_BATCH]),
            )
        )
        parts.append(pd.DataFrame(result.all(), columns=[c.name for c in columns]))
    frame = pd.concat(parts, ignore_index=True)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame.set_index("prediction_id")


def _write_labels(session: Session, joined: pd.DataFrame) -> None:
    table = Prediction.__table__  # type: ignore[attr-defined]
    statement = (
        update(table).where(table.c.id == bindparam("row_id")).values(label=bindparam("value"))
    )
    session.connection().execute(
        statement,
        [
            {"row_id": int(i), "value": str(v)}
            for i, v in zip(joined["id"], joined[LABEL_COL], strict=True)
        ],
    )


# --- thresholds, alerts and retraining tasks ----------------------------------------------


@dataclass(frozen=True)
class Crossing:
    window: date
    kind: str
    metric: str
    value: float | None
    threshold: float | None
    message: str


@dataclass
class WindowStatus:
    window: date
    drift_share: float
    drifted: list[str]
    dataset_drifted: bool
    feature_drifted: bool
    goal_value: float | None
    goal_source: str
    goal_met: bool | None
    quality_issues: int
    quality_problems: list[str]
    n_rows: int

    @property
    def status(self) -> str:
        if self.goal_met is False:
            return FAILING
        if self.dataset_drifted or self.feature_drifted or self.quality_issues:
            return AT_RISK
        return HEALTHY


def window_status(
    profile: ReferenceProfile,
    settings: MonitoringSettings,
    day: date,
    agg: WindowAggregate,
) -> WindowStatus:
    results = window_drift(profile, agg, settings.drift)
    share = dataset_drift_share(results)
    drifted = [r.column for r in results if r.drifted and r.column not in (PREDICTION, SCORE)]
    feature = settings.drift_feature
    value, source = _goal_value(profile, settings, agg)
    goal = settings.goal
    quality = quality_table(profile, {day: agg}, settings.quality)
    problems = [
        f"{feature}: {text}"
        for feature, text in zip(quality["feature"], quality["problems"], strict=True)
        if text
    ]
    issues = int(quality["issues"].iloc[0]) if len(quality) else 0
    if agg.duplicate_ids > settings.quality.duplicate_ids:
        problems.append(f"{agg.duplicate_ids} repeated prediction id(s)")
    return WindowStatus(
        window=day,
        drift_share=share,
        drifted=drifted,
        dataset_drifted=bool(results) and share >= settings.drift.dataset_drift_share,
        feature_drifted=bool(feature and feature in drifted),
        goal_value=value,
        goal_source=source,
        goal_met=None if goal is None or value is None else goal.met(value),
        quality_issues=issues,
        quality_problems=problems,
        n_rows=agg.n_rows,
    )


def _goal_value(
    profile: ReferenceProfile, settings: MonitoringSettings, agg: WindowAggregate
) -> tuple[float | None, str]:
    goal, task = settings.goal, profile.task or "classification"
    if goal is None:
        return None, "none"
    if int(agg.labels.get("n", 0)) >= settings.min_labelled:
        value = metrics_from_sums(agg.labels, task).get(goal.metric)
        if value is not None and math.isfinite(value):
            return float(value), "realised"
    if task == "classification" and agg.cbpe.get("n", 0) >= settings.min_labelled:
        value = cbpe_estimate(agg.cbpe).get(goal.metric)
        if value is not None and math.isfinite(value):
            return float(value), "estimated"
    return None, "none"


def _crossings(target: _Target, status: WindowStatus) -> list[Crossing]:
    settings, found = target.settings, []
    day = status.window
    if settings.drift_feature and status.feature_drifted:
        found.append(
            Crossing(
                day,
                DRIFT,
                settings.drift_feature,
                None,
                None,
                f"Data drift on {day}: the watched feature '{settings.drift_feature}' drifted.",
            )
        )
    elif status.dataset_drifted:
        share = settings.drift.dataset_drift_share
        found.append(
            Crossing(
                day,
                DRIFT,
                "dataset_drift_share",
                status.drift_share,
                share,
                f"Data drift on {day}: {status.drift_share:.0%} of the features drifted "
                f"({', '.join(status.drifted[:8])}); the limit is {share:.0%}.",
            )
        )
    goal = settings.goal
    if goal is not None and status.goal_met is False:
        found.append(
            Crossing(
                day,
                PERFORMANCE,
                goal.metric,
                status.goal_value,
                goal.target,
                f"Performance on {day} ({status.goal_source}): {goal.describe(status.goal_value)}"
                f" Goal: {goal.basis}.",
            )
        )
    if status.quality_problems:
        found.append(
            Crossing(
                day,
                QUALITY,
                "issues",
                float(len(status.quality_problems)),
                0.0,
                f"Data quality on {day}: " + "; ".join(status.quality_problems[:5]) + ".",
            )
        )
    return found


def _anomaly_crossings(
    statuses: list[WindowStatus], touched: set[date], settings: MonitoringSettings
) -> list[Crossing]:
    if not statuses:
        return []
    frame = series_frame(statuses, settings)
    found = []
    series_names = {"drift_share": "share of drifted features", "goal_value": "goal metric"}
    for column, words in series_names.items():
        flagged = frame[frame[f"{column}_anomaly"]]
        for day, value in zip(flagged["window"], flagged[column], strict=True):
            if day in touched:
                found.append(
                    Crossing(
                        day,
                        ANOMALY,
                        column,
                        float(value),
                        None,
                        f"Unusual {words} on {day}: {float(value):.3g}, far from the recent "
                        "windows.",
                    )
                )
    return found


def series_frame(statuses: list[WindowStatus], settings: MonitoringSettings) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "window": [s.window for s in statuses],
            "n_rows": [s.n_rows for s in statuses],
            "drift_share": [s.drift_share for s in statuses],
            "goal_value": [np.nan if s.goal_value is None else s.goal_value for s in statuses],
            "goal_source": [s.goal_source for s in statuses],
            "quality_issues": [s.quality_issues for s in statuses],
            "status": [s.status for s in statuses],
        }
    )
    for column in ("n_rows", "drift_share", "goal_value", "quality_issues"):
        frame[f"{column}_anomaly"] = flag_anomalies(
            frame[column].astype(float), threshold=settings.anomaly_threshold
        ).to_numpy()
    return frame


def _all_windows(session: Session, target: _Target) -> dict[date, WindowAggregate]:
    rows = session.exec(
        select(WindowAggregateRow)
        .where(
            WindowAggregateRow.model_id == target.model.id,
            WindowAggregateRow.version_id == target.version.id,
            WindowAggregateRow.environment == target.environment,
        )
        .order_by(col(WindowAggregateRow.window_start))
    ).all()
    return {_as_date(r.window_start): WindowAggregate.from_dict(r.data) for r in rows}


def evaluate_windows(
    session: Session, actor: Principal, target: _Target, touched: list[date]
) -> tuple[list[Alert], int | None]:
    """Open alerts for thresholds crossed in the touched windows; notify; open a retraining task."""
    if not touched:
        return [], None
    windows = _all_windows(session, target)
    days = sorted(windows)
    first = max(days.index(min(touched)) - ANOMALY_HISTORY, 0)
    last = days.index(max(touched))
    statuses = [
        window_status(target.profile, target.settings, day, windows[day])
        for day in days[first : last + 1]
    ]
    wanted = set(touched)
    crossings = [c for s in statuses if s.window in wanted for c in _crossings(target, s)]
    crossings += _anomaly_crossings(statuses, wanted, target.settings)
    opened = _open_alerts(session, target, crossings)
    if not opened:
        return [], None
    _notify_team(session, target, opened)
    task_id = _open_retraining(session, actor, target, opened)
    for alert in opened:
        audit.record(
            session,
            actor,
            "monitoring.alert_opened",
            object_type="alert",
            object_id=alert.id,
            model_id=target.model.id,
            summary=alert.message[:500],
            details={"kind": alert.kind, "metric": alert.metric, "window": alert.window_start},
        )
    return opened, task_id


def _open_alerts(session: Session, target: _Target, crossings: list[Crossing]) -> list[Alert]:
    if not crossings:
        return []
    starts = sorted({_as_datetime(c.window) for c in crossings})
    existing = {
        (_as_date(a.window_start), a.kind, a.metric)
        for a in session.exec(
            select(Alert).where(
                Alert.model_id == target.model.id,
                Alert.environment == target.environment,
                col(Alert.window_start).in_(starts),
            )
        )
    }
    opened = []
    for c in crossings:
        key = (c.window, c.kind, c.metric)
        if key in existing:
            continue
        existing.add(key)
        alert = Alert(
            model_id=target.model.id or 0,
            version_id=target.version.id or 0,
            environment=target.environment,
            window_start=_as_datetime(c.window),
            kind=c.kind,
            metric=c.metric[:120],
            value=_finite(c.value),
            threshold=_finite(c.threshold),
            message=c.message,
        )
        session.add(alert)
        opened.append(alert)
    session.flush()
    return opened


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def team_members(session: Session, team_id: int) -> set[int]:
    """Reviewers and data scientists of the team (team grants and store-wide grants)."""
    grants = session.exec(
        select(RoleGrant.user_id)
        .join(User, col(User.id) == RoleGrant.user_id)
        .where(
            col(RoleGrant.role).in_([Role.REVIEWER.value, Role.DATA_SCIENTIST.value]),
            or_(col(RoleGrant.team_id) == team_id, col(RoleGrant.team_id).is_(None)),
            col(User.is_active).is_(True),
        )
    ).all()
    return set(grants)


def monitoring_link(model_name: str) -> str:
    return f"pages/5_Monitoring.py?model={model_name}"


def _notify_team(session: Session, target: _Target, opened: list[Alert]) -> None:
    people = team_members(session, target.model.team_id)
    by_kind: dict[str, list[Alert]] = {}
    for alert in opened:
        by_kind.setdefault(alert.kind, []).append(alert)
    for kind, alerts in by_kind.items():
        days = sorted(_as_date(a.window_start) for a in alerts)
        span = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
        notify(
            session,
            people,
            "alert",
            f"{target.model.name}: {kind} alert in {target.environment} ({span})",
            body=alerts[-1].message,
            link=monitoring_link(target.model.name),
            model_id=target.model.id,
            version_id=target.version.id,
        )


def _open_retraining(
    session: Session, actor: Principal, target: _Target, opened: list[Alert]
) -> int | None:
    reasons = [a for a in opened if a.kind in RETRAIN_KINDS]
    if not reasons:
        return None
    current = session.exec(
        select(RetrainingTask).where(
            RetrainingTask.model_id == target.model.id, RetrainingTask.status == OPEN
        )
    ).first()
    if current is not None:
        return None
    first = reasons[0]
    task = RetrainingTask(
        model_id=target.model.id or 0,
        version_id=target.version.id or 0,
        alert_id=first.id,
        reason=f"{first.kind.capitalize()} in {target.environment}: {first.message}",
    )
    session.add(task)
    session.flush()
    audit.record(
        session,
        actor,
        "monitoring.retraining_opened",
        object_type="retraining_task",
        object_id=task.id,
        model_id=target.model.id,
        summary=f"Retraining task #{task.id} opened for {target.model.name} "
        f"v{target.version.number}: {first.kind} in {target.environment}",
        details={"alert": first.id},
    )
    return task.id


def set_alert_status(
    db: Database, actor: Principal, alert_id: int, status: str, note: str = ""
) -> Alert:
    """Acknowledge or resolve an alert."""
    if status not in (ACKNOWLEDGED, RESOLVED):
        raise InvalidInput(f"An alert can be set to '{ACKNOWLEDGED}' or '{RESOLVED}'.")
    with unit_of_work(db, actor) as session:
        alert = session.exec(select(Alert).where(Alert.id == alert_id).with_for_update()).first()
        if alert is None:
            raise NotFound(f"There is no alert #{alert_id}; reload the page.")
        model = session.get(MLModel, alert.model_id)
        assert model is not None
        require(
            session,
            actor,
            Permission.MANAGE_MONITORING,
            team_id=model.team_id,
            what=f"handle alerts of {model.name}",
            model_id=model.id,
        )
        if alert.status == RESOLVED:
            raise Conflict(f"Alert #{alert_id} is already resolved.")
        alert.status = status
        if status == RESOLVED:
            alert.resolved_at = utcnow()
            alert.resolved_by_id = actor.user_id
        session.add(alert)
        audit.record(
            session,
            actor,
            f"monitoring.alert_{status}",
            object_type="alert",
            object_id=alert.id,
            model_id=model.id,
            summary=f"Alert #{alert.id} of {model.name} {status}: {alert.message[:200]}",
            details={"note": note[:500]},
        )
        return alert


# --- reads for the page (window aggregates only) ------------------------------------------


@dataclass
class MonitoringData:
    """Everything the monitoring page draws for one model, version and environment."""

    model: str
    task: str
    environment: str
    version: int
    goal_description: str
    profile: ReferenceProfile
    settings: MonitoringSettings
    windows: dict[date, WindowAggregate]

    @property
    def empty(self) -> bool:
        return not self.windows


def monitored_models(db: Database) -> list[str]:
    """Models with data to monitor or a live version somewhere."""
    from core.models import Deployment

    with db.read() as session:
        live = select(Deployment.model_id).where(col(Deployment.live_until).is_(None))
        ids = set(session.exec(live).all())
        ids |= set(session.exec(select(WindowAggregateRow.model_id).distinct()).all())
        models = session.exec(
            select(MLModel).where(col(MLModel.id).in_(ids)).order_by(col(MLModel.name))
        ).all()
        return [m.name for m in models]


def data_fingerprint(db: Database, model_name: str, env: str) -> tuple[Any, ...]:
    """Changes whenever anything the page shows changes (cache key, seen across processes)."""
    with db.read() as session:
        model = get_model(session, model_name)
        windows = session.exec(
            select(func.count(), func.max(WindowAggregateRow.updated_at)).where(
                WindowAggregateRow.model_id == model.id,
                WindowAggregateRow.environment == env,
            )
        ).one()
        alerts = session.exec(
            select(func.count(), func.max(Alert.id), func.max(Alert.resolved_at)).where(
                Alert.model_id == model.id
            )
        ).one()
        statuses = session.exec(
            select(func.count()).where(Alert.model_id == model.id, Alert.status == OPEN)
        ).one()
        tasks = session.exec(
            select(func.count(), func.max(RetrainingTask.updated_at)).where(
                RetrainingTask.model_id == model.id
            )
        ).one()
        live = live_version(session, model, env)
        return (
            tuple(windows),
            tuple(alerts),
            statuses,
            tuple(tasks),
            live.id if live else None,
            model.row_version,
        )


def monitoring_data(
    db: Database, model_name: str, env: str = "production", version: int | None = None
) -> MonitoringData:
    """The stored windows of the live version (or `version`) in `env`, with its reference."""
    with db.read() as session:
        model = get_model(session, model_name)
        chosen = _monitored_version(session, model, env, version)
        target = _target_for(session, model, chosen, env)
        windows = _all_windows(session, target)
    goal = target.settings.goal
    return MonitoringData(
        model=model.name,
        task=model.task,
        environment=env,
        version=chosen.number,
        goal_description=(
            f"{evaluation.METRIC_LABELS.get(goal.metric, goal.metric)} {goal.operator} "
            f"{goal.target:.4g} ({goal.basis})"
            if goal
            else "No performance goal can be checked for this model."
        ),
        profile=target.profile,
        settings=target.settings,
        windows=windows,
    )


def _monitored_version(
    session: Session, model: MLModel, env: str, number: int | None
) -> ModelVersion:
    if number is not None:
        return get_version(session, model, number)
    live = live_version(session, model, env)
    if live is not None:
        return live
    latest = session.exec(
        select(WindowAggregateRow.version_id)
        .where(WindowAggregateRow.model_id == model.id, WindowAggregateRow.environment == env)
        .order_by(col(WindowAggregateRow.window_start).desc())
        .limit(1)
    ).first()
    version = session.get(ModelVersion, latest) if latest else None
    if version is None:
        raise NotFound(
            f"Nothing of {model.name} is live in '{env}' and no production data was ingested "
            "there. Choose another environment, or deploy a version first."
        )
    return version


def drift_results(data: MonitoringData) -> pd.DataFrame:
    """One row per window and column: test, why, value, threshold, verdict (the heat map)."""
    return drift_table(data.profile, data.windows, data.settings.drift)


def quality_results(data: MonitoringData) -> pd.DataFrame:
    return quality_table(data.profile, data.windows, data.settings.quality)


def performance_results(data: MonitoringData) -> pd.DataFrame:
    """Realised metrics where labels were joined, else the CBPE estimate; both when possible."""
    task = "regression" if data.task == Task.REGRESSION else "classification"
    table = performance_table(data.windows, task)
    if task == "classification":
        estimates = [cbpe_estimate(data.windows[w].cbpe) for w in table["window"]]
        for metric in ("accuracy", "precision", "recall", "f1"):
            table[f"estimated_{metric}"] = [e.get(metric, np.nan) for e in estimates]
    return table


def statuses(data: MonitoringData) -> list[WindowStatus]:
    return [
        window_status(data.profile, data.settings, day, agg) for day, agg in data.windows.items()
    ]


def metric_series(data: MonitoringData) -> pd.DataFrame:
    """Per window: rows, drift share, goal metric, quality issues, each with anomaly flags."""
    return series_frame(statuses(data), data.settings)


@dataclass(frozen=True)
class Distribution:
    feature: str
    window: date
    kind: str
    bins: list[Any]
    reference: list[float]
    current: list[float]
    drift: FeatureDrift | None


def distribution(data: MonitoringData, feature: str, window: date) -> Distribution:
    """Reference and window counts of one feature on the reference's bins."""
    refs = dict(data.profile.features)
    if data.profile.prediction is not None:
        refs[PREDICTION] = data.profile.prediction
    if feature not in refs:
        raise NotFound(f"{data.model} has no monitored feature '{feature}'.")
    if window not in data.windows:
        raise NotFound(f"There is no data for the window of {window}.")
    ref = refs[feature]
    column = data.windows[window].columns.get(feature)
    current = list(column.counts) if column and column.counts else [0] * len(ref.counts)
    drift = next(
        (
            r
            for r in window_drift(data.profile, data.windows[window], data.settings.drift)
            if r.column == feature
        ),
        None,
    )
    if ref.kind == NUMERIC:
        edges = list(ref.edges)
        span = (edges[-1] - edges[0]) or 1.0
        low = min(edges[0] - 0.05 * span, column.min if column and column.min is not None else 0)
        high = max(edges[-1] + 0.05 * span, column.max if column and column.max is not None else 0)
        bins: list[Any] = [min(low, edges[0] - 1e-9), *edges, max(high, edges[-1] + 1e-9)]
    else:
        bins = list(ref.categories)
    return Distribution(
        feature,
        window,
        ref.kind,
        bins,
        [float(c) for c in ref.counts],
        [float(c) for c in current],
        drift,
    )


@dataclass(frozen=True)
class AlertView:
    id: int
    window: date
    kind: str
    metric: str
    value: float | None
    threshold: float | None
    message: str
    status: str
    version: int
    created_at: datetime


def alerts(
    db: Database, model_name: str, env: str | None = None, *, open_only: bool = True
) -> list[AlertView]:
    with db.read() as session:
        model = get_model(session, model_name)
        stmt = (
            select(Alert, ModelVersion.number)
            .join(ModelVersion, col(ModelVersion.id) == Alert.version_id)
            .where(Alert.model_id == model.id)
        )
        if env is not None:
            stmt = stmt.where(Alert.environment == env)
        if open_only:
            stmt = stmt.where(col(Alert.status).in_([OPEN, ACKNOWLEDGED]))
        rows = session.exec(stmt.order_by(col(Alert.window_start).desc(), col(Alert.id))).all()
        return [
            AlertView(
                a.id or 0,
                _as_date(a.window_start),
                a.kind,
                a.metric,
                a.value,
                a.threshold,
                a.message,
                a.status,
                number,
                a.created_at,
            )
            for a, number in rows
        ]


@dataclass(frozen=True)
class TaskView:
    id: int
    version: int
    reason: str
    status: str
    result_version: int | None
    created_at: datetime


def retraining_tasks(db: Database, model_name: str) -> list[TaskView]:
    with db.read() as session:
        model = get_model(session, model_name)
        numbers = {
            v.id: v.number
            for v in session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id))
        }
        tasks = session.exec(
            select(RetrainingTask)
            .where(RetrainingTask.model_id == model.id)
            .order_by(col(RetrainingTask.id).desc())
        ).all()
        return [
            TaskView(
                t.id or 0,
                numbers.get(t.version_id, 0),
                t.reason,
                t.status,
                numbers.get(t.result_version_id) if t.result_version_id else None,
                t.created_at,
            )
            for t in tasks
        ]


@dataclass(frozen=True)
class HealthCard:
    model: str
    environment: str
    version: int | None
    status: str
    headline: str
    goal: str
    goal_met: bool | None
    since: date | None
    reasons: list[str]
    last_window: date | None


def health_card(data: MonitoringData) -> HealthCard:
    """Healthy / at risk / failing in plain words, for people who do not read charts."""
    if data.empty:
        return HealthCard(
            data.model,
            data.environment,
            data.version,
            NO_DATA,
            f"{data.model} v{data.version} has no production data in {data.environment} yet.",
            "Performance cannot be judged until data arrives.",
            None,
            None,
            [],
            None,
        )
    states = statuses(data)
    latest = states[-1]
    since = latest.window
    for state in reversed(states):
        if state.status != latest.status:
            break
        since = state.window
    goal_words, goal_met = _goal_words(data, states)
    reasons = _reasons(latest, data.settings)
    headline = {
        HEALTHY: "is healthy: its inputs look like the reference data and it meets its goal.",
        AT_RISK: "is at risk: its inputs or data quality have changed; watch it closely.",
        FAILING: "is failing: it does not meet its goal.",
    }[latest.status]
    return HealthCard(
        data.model,
        data.environment,
        data.version,
        latest.status,
        f"{data.model} v{data.version} in {data.environment} {headline} "
        f"This has been so since {since} (latest data: {latest.window}).",
        goal_words,
        goal_met,
        since,
        reasons,
        latest.window,
    )


def _goal_words(data: MonitoringData, states: list[WindowStatus]) -> tuple[str, bool | None]:
    goal = data.settings.goal
    if goal is None:
        return "No goal that production data can check is set for this model.", None
    judged = [s for s in states if s.goal_value is not None]
    if not judged:
        return "No labels or scores have arrived yet, so the goal cannot be checked.", None
    last = judged[-1]
    basis = "measured on labelled data" if last.goal_source == "realised" else "estimated"
    return (
        f"Goal {'met' if last.goal_met else 'not met'} on {last.window} ({basis}): "
        f"{goal.describe(last.goal_value)}",
        last.goal_met,
    )


def _reasons(state: WindowStatus, settings: MonitoringSettings) -> list[str]:
    reasons = []
    if state.goal_met is False and settings.goal is not None:
        reasons.append(settings.goal.describe(state.goal_value))
    if state.dataset_drifted or state.feature_drifted:
        reasons.append(
            f"{state.drift_share:.0%} of the inputs changed compared with the reference data "
            f"({', '.join(state.drifted[:6])})."
        )
    if state.quality_problems:
        reasons.append("Data quality: " + "; ".join(state.quality_problems[:3]) + ".")
    return reasons


# --- report for machines -------------------------------------------------------------------


def report(
    db: Database, model_name: str, env: str = "production", window: date | None = None
) -> dict[str, Any]:
    """Drift per feature (test, value, threshold, verdict, reason), quality and performance."""
    data = monitoring_data(db, model_name, env)
    if data.empty:
        raise NotFound(
            f"No production data was ingested for {model_name} in {env}; nothing to report."
        )
    day = window or max(data.windows)
    if day not in data.windows:
        known = sorted(data.windows)
        raise NotFound(
            f"There is no window starting {day} for {model_name} in {env}. "
            f"Windows run from {known[0]} to {known[-1]}."
        )
    agg = data.windows[day]
    state = window_status(data.profile, data.settings, day, agg)
    drift = [
        {**r.to_dict(), "feature": r.column, "verdict": "drift" if r.drifted else "no drift"}
        for r in window_drift(data.profile, agg, data.settings.drift)
    ]
    quality = quality_table(data.profile, {day: agg}, data.settings.quality)
    perf = performance_results(_one_window(data, day))
    card = health_card(data)
    return _json_ready(
        {
            "model": model_name,
            "environment": env,
            "version": data.version,
            "window": day.isoformat(),
            "rows": agg.n_rows,
            "status": state.status,
            "health": card.headline,
            "dataset_drift": {
                "share": state.drift_share,
                "threshold": data.settings.drift.dataset_drift_share,
                "drifted": state.dataset_drifted,
            },
            "features": drift,
            "quality": {
                "issues": state.quality_issues,
                "problems": state.quality_problems,
                "columns": quality.drop(columns=["window"]).to_dict(orient="records"),
            },
            "performance": {
                **(perf.drop(columns=["window"]).to_dict(orient="records")[0]),
                "goal": data.goal_description,
                "goal_value": state.goal_value,
                "goal_met": state.goal_met,
            },
            "message": f"{model_name} v{data.version} in {env}, window {day}: {state.status}; "
            f"{sum(r['drifted'] for r in drift)} of {len(drift)} columns drifted, "
            f"{state.quality_issues} quality issue(s).",
        }
    )


def _one_window(data: MonitoringData, day: date) -> MonitoringData:
    return MonitoringData(
        data.model,
        data.task,
        data.environment,
        data.version,
        data.goal_description,
        data.profile,
        data.settings,
        {day: data.windows[day]},
    )


def _json_ready(value: Any) -> Any:
    return _finite_only(json.loads(json.dumps(value, default=_plain)))


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --- retraining ----------------------------------------------------------------------------


def retrain(
    db: Database,
    actor: Principal,
    model_name: str,
    task_id: int | None = None,
    *,
    env: str = "production",
    store: ArtifactStore | None = None,
) -> ModelVersion:
    """Fit a clone of the live estimator on reference plus labelled production data and
    register it as a new candidate version (parent: the live version)."""
    import skops.io as sio
    from sklearn.base import clone

    from core.services.versions import VersionUpload, load_evaluation_frame, register_version

    with read_as(db, actor) as session:
        model = get_model(session, model_name)
        require(
            session,
            actor,
            Permission.RETRAIN,
            team_id=model.team_id,
            what=f"retrain {model.name}",
            model_id=model.id,
        )
        live = live_version(session, model, env)
        if live is None:
            raise InvalidInput(
                f"No version of {model.name} is live in '{env}'; retraining starts from the "
                "live version. Deploy one first."
            )
        task = _task_to_run(session, model, task_id)
        ev = evaluation_of(session, live.id or 0)
        if ev is None:
            raise NotFound(f"{model.name} v{live.number} has no evaluation data to start from.")
        production = _labelled_rows(session, model, env, live)
    features = list(live.feature_types)
    reference = load_evaluation_frame(ev, store)
    train_part, holdout = _split_production(production, ev.target, reference)
    training = pd.concat([reference[[*features, ev.target]], train_part], ignore_index=True)
    estimator = clone(load_estimator(live, store))
    estimator.fit(training[features], training[ev.target])
    buffer = io.BytesIO()
    holdout.to_csv(buffer, index=False)
    why = f"retraining task #{task.id}" if task else "a manual retraining"
    version = register_version(
        db,
        actor,
        VersionUpload(
            model=model.name,
            model_file=sio.dumps(estimator),
            model_filename=f"{model.name}-retrained.skops",
            eval_file=buffer.getvalue(),
            eval_filename=f"{model.name}-production-holdout.csv",
            notes=f"Retrained from v{live.number} for {why}: a clone of its estimator fitted on "
            f"its evaluation data ({len(reference):,} rows) plus {len(train_part):,} labelled "
            f"production rows from {env}; evaluated on {len(holdout):,} held-out production rows.",
            training_data=training,
            parent=live.number,
        ),
        store=store,
    )
    if task is not None:
        _close_task(db, actor, model, task.id or 0, version)
    return version


def _task_to_run(session: Session, model: MLModel, task_id: int | None) -> RetrainingTask | None:
    if task_id is None:
        return session.exec(
            select(RetrainingTask).where(
                RetrainingTask.model_id == model.id, RetrainingTask.status == OPEN
            )
        ).first()
    task = session.get(RetrainingTask, task_id)
    if task is None or task.model_id != model.id:
        raise NotFound(f"{model.name} has no retraining task #{task_id}.")
    if task.status != OPEN:
        raise Conflict(f"Retraining task #{task_id} is already {task.status}.")
    return task


def _labelled_rows(session: Session, model: MLModel, env: str, live: ModelVersion) -> pd.DataFrame:
    table = Prediction.__table__  # type: ignore[attr-defined]
    result = session.connection().execute(
        select(table.c.features, table.c.label).where(
            table.c.model_id == model.id,
            table.c.environment == env,
            table.c.label.is_not(None),
        )
    )
    rows = result.all()
    if len(rows) < MIN_RETRAIN_ROWS:
        raise InvalidInput(
            f"Only {len(rows)} labelled production rows of {model.name} exist in {env}; "
            f"retraining needs at least {MIN_RETRAIN_ROWS}. Ingest labels first."
        )
    features = pd.DataFrame.from_records([json.loads(r[0]) for r in rows])
    features["__label__"] = [r[1] for r in rows]
    return features


def _split_production(
    production: pd.DataFrame, target: str, reference: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = production.rename(columns={"__label__": target})
    reference_target = reference[target]
    if pd.api.types.is_numeric_dtype(reference_target):
        frame[target] = pd.to_numeric(frame[target], errors="coerce")
        if pd.api.types.is_integer_dtype(reference_target):
            frame[target] = frame[target].round().astype("Int64").astype(reference_target.dtype)
    for column in reference.columns:
        if column in frame.columns and column != target:
            try:
                frame[column] = frame[column].astype(reference[column].dtype)
            except (TypeError, ValueError):
                continue
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = max(int(len(shuffled) * 0.7), 1)
    return shuffled.iloc[:cut], shuffled.iloc[cut:]


def _close_task(
    db: Database, actor: Principal, model: MLModel, task_id: int, version: ModelVersion
) -> None:
    with unit_of_work(db, actor) as session:
        task = session.exec(
            select(RetrainingTask).where(RetrainingTask.id == task_id).with_for_update()
        ).one()
        task.status = DONE
        task.result_version_id = version.id
        task.updated_at = utcnow()
        session.add(task)
        audit.record(
            session,
            actor,
            "monitoring.retraining_done",
            object_type="retraining_task",
            object_id=task.id,
            model_id=model.id,
            summary=f"Retraining task #{task.id} of {model.name} done: v{version.number} "
            "registered as a candidate for review",
            details={"version": version.number},
        )
