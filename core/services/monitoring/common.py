"""Monitoring settings, goals, constants and the model/environment a call is about."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from core import audit, evaluation
from core.auth import Permission, Principal, require
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
)
from core.monitoring.profile import ReferenceProfile
from core.monitoring.quality import QualityThresholds
from core.monitoring.stats import DriftConfig
from core.monitoring.windows import (
    WINDOWS,
)
from core.services import unit_of_work
from core.services.compare import live_version
from core.services.registry import get_model
from core.services.versions import evaluation_of

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


@dataclass
class _Target:
    model: MLModel
    version: ModelVersion
    profile: ReferenceProfile
    settings: MonitoringSettings
    environment: str


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


def _as_datetime(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _as_date(when: datetime) -> date:
    return when.date()
