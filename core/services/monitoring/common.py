"""Monitoring settings, goals, constants and the model/environment a call is about."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from core import audit, config, evaluation
from core.auth import Permission, Principal
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.models import (
    Evaluation,
    MLModel,
    ModelVersion,
    Task,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    SCORE_METRICS,
    as_labels,
)
from core.monitoring.profile import ReferenceProfile
from core.monitoring.quality import QualityThresholds
from core.monitoring.stats import DriftConfig
from core.monitoring.windows import (
    WINDOWS,
)
from core.services import unit_of_work
from core.services.compare import live_version
from core.services.registry import get_model, lock_model
from core.services.versions import evaluation_of

ID_COL = "prediction_id"
TS_COL = "timestamp"
PRED_COL = "prediction"
SCORE_COL = "score"
LABEL_COL = "label"
OPTIONAL_COLUMNS = (PRED_COL, SCORE_COL, LABEL_COL)
CHUNK_ROWS = 50_000  # an ingest holds about three chunks at once: parsed, aggregated, written
ID_BATCH = 5_000
MAX_LISTED = 5
MAX_TEXT = 120
PREDICTIONS, LABELS = "predictions", "labels"
OPEN, ACKNOWLEDGED, RESOLVED, DONE = "open", "acknowledged", "resolved", "done"
CLOSED = "closed"
ACTIVE = (OPEN, ACKNOWLEDGED)
REALISED, ESTIMATED = "realised", "estimated"
HEALTHY, AT_RISK, FAILING, NO_DATA = "healthy", "at risk", "failing", "no data"
DRIFT, PERFORMANCE, QUALITY, ANOMALY = "drift", "performance", "quality", "anomaly"
RETRAIN_KINDS = (DRIFT, PERFORMANCE)
DEFAULT_TOLERANCE = 0.1
MIN_RETRAIN_ROWS = 20
ANOMALY_HISTORY = 14
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


METRIC_LABELS = {
    **evaluation.METRIC_LABELS,
    "pr_auc": "PR AUC",
    "brier": "Brier score",
    "ks": "KS statistic",
    "gini": "Gini",
    "mape": "MAPE",
}


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceGoal:
    """The metric a window must meet, where it comes from, and in plain words.

    `unavailable` says why production data cannot compute it (then it is never replaced by
    another metric; the health card says so instead)."""

    metric: str
    operator: str
    target: float
    basis: str
    unavailable: str = ""

    def met(self, value: float) -> bool:
        return evaluation.OPERATORS.get(self.operator, evaluation.OPERATORS[">="])[1](
            value, self.target
        )

    @property
    def label(self) -> str:
        return METRIC_LABELS.get(self.metric, self.metric)

    def statement(self) -> str:
        words = evaluation.OPERATORS.get(self.operator, ("at least", None))[0]
        return f"{self.label} {words} {self.target:.4g}"

    def describe(self, value: float | None) -> str:
        text = evaluation.describe_goal(self.metric, self.operator, self.target, value)
        return self.label + text[len(self.metric) :] if text.startswith(self.metric) else text


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
    min_window_rows: int = 100
    close_after: int = 2
    days_before_registration: float = 366.0
    days_ahead: float = 1.0


_COUNTS = {
    "min_labelled": 20,
    "min_window_rows": 100,
    "close_after": 2,
}
_DAYS = {"days_before_registration": 366.0, "days_ahead": 1.0}


def settings_for(model: MLModel, ev: Evaluation | None) -> MonitoringSettings:
    config = dict(model.monitoring_config or {})
    try:
        quality = QualityThresholds.from_dict(config.get("quality", {}))
        counts: dict[str, Any] = {k: int(config.get(k, v)) for k, v in _COUNTS.items()}
        days: dict[str, Any] = {k: float(config.get(k, v)) for k, v in _DAYS.items()}
        anomaly = float(config.get("anomaly_threshold", 3.5))
        window = str(config.get("window", "D"))
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        negative = [k for k, v in {**counts, **days}.items() if v < 0]
        if negative or counts["close_after"] < 1:
            raise ValueError(f"{', '.join(negative) or 'close_after'} must be at least 1")
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
        anomaly_threshold=anomaly,
        window=window,
        **counts,
        **days,
    )


CONFIG_KEYS = (
    "drift",
    "quality",
    "performance",
    "drift_feature",
    "min_labelled",
    "anomaly_threshold",
    "window",
    "min_window_rows",
    "close_after",
    "days_before_registration",
    "days_ahead",
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
        found = get_model(
            session,
            actor,
            model_name,
            permission=Permission.MANAGE_MONITORING,
            what="change the monitoring settings of {model}",
        )
        model = lock_model(session, found.id or 0)
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


def _unavailable(metric: str, task: str, ev: Evaluation | None) -> str:
    """Why production data cannot compute `metric` for this model ('' when it can)."""
    label = METRIC_LABELS.get(metric, metric)
    computable = REGRESSION_METRICS if task == Task.REGRESSION else CLASSIFICATION_METRICS
    if metric not in computable:
        kind = "a regression" if task == Task.REGRESSION else "a classification"
        return (
            f"{label} is not computed from production data for {kind} model "
            f"(computed: {', '.join(computable)})"
        )
    if metric in SCORE_METRICS and task == Task.MULTICLASS:
        return f"{label} needs one score per row, which only a two-class model gives"
    profile = (ev.reference_profile or {}) if ev is not None else {}
    if metric in SCORE_METRICS and ev is not None and not profile.get("score"):
        return f"{label} needs probabilities, and this model gives none (no predict_proba)"
    return ""


def _goal(model: MLModel, ev: Evaluation | None, custom: Any) -> PerformanceGoal | None:
    if isinstance(custom, Mapping) and custom.get("metric"):
        metric = str(custom["metric"])
        return PerformanceGoal(
            metric,
            str(custom.get("operator", ">=")),
            float(custom["target"]),
            "set in the model's monitoring settings",
            _unavailable(metric, model.task, ev),
        )
    if model.goal_metric and model.goal_target is not None:
        return PerformanceGoal(
            model.goal_metric,
            model.goal_operator,
            model.goal_target,
            "the model's business goal",
            _unavailable(model.goal_metric, model.task, ev),
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


@dataclass
class _Target:
    model: MLModel
    version: ModelVersion
    profile: ReferenceProfile
    settings: MonitoringSettings
    environment: str
    classes: list[str] = field(default_factory=list)


def known_environment(env: str) -> str:
    """The environment named, normalised; refused when no such environment is configured."""
    return config.known_environment(env)


@contextmanager
def quiet() -> Iterator[None]:
    """Library warnings (pandas, scikit-learn, numpy) stay out of user-facing output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _target(session: Session, actor: Principal, model_name: str, env: str, what: str) -> _Target:
    model = get_model(
        session,
        actor,
        model_name,
        permission=Permission.INGEST,
        what=what + " {model}",
    )
    environment = known_environment(env)
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
        _classes(model, ev),
    )


def _classes(model: MLModel, ev: Evaluation) -> list[str]:
    """The model's classes as text (from its evaluation), empty for a regressor."""
    if model.task == Task.REGRESSION:
        return []
    labels = (ev.result.get("confusion_matrix") or {}).get("labels") or []
    return [str(label) for label in as_labels(labels)] if labels else []


def _as_datetime(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _as_date(when: datetime) -> date:
    return when.date()
