"""Per-window status: drift over features, prediction and score drift, the goal's value
(realised from labels, else estimated from scores), data quality, and the series with anomaly
flags. Everything comes from one window's stored aggregate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sqlmodel import Session, col, func, select

from core.models import InferenceBatch, WindowAggregateRow, utcnow
from core.monitoring.anomalies import flag_complete_anomalies
from core.monitoring.performance import cbpe_estimate, metrics_from_sums
from core.monitoring.profile import PREDICTION, SCORE, ReferenceProfile
from core.monitoring.quality import quality_table
from core.monitoring.windows import (
    WindowAggregate,
    dataset_drift_share,
    partial_windows,
    window_drift,
)
from core.services.monitoring.common import (
    AT_RISK,
    ESTIMATED,
    FAILING,
    HEALTHY,
    PREDICTIONS,
    REALISED,
    MonitoringSettings,
    _as_date,
    _Target,
    quiet,
)


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
    prediction_drifted: bool | None = None
    score_drifted: bool | None = None
    n_features: int = 0
    partial: bool = False  # the window is still filling: shown, never an anomaly

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
    *,
    partial: bool = False,
) -> WindowStatus:
    with quiet():
        results = window_drift(profile, agg, settings.drift)
        quality = quality_table(profile, {day: agg}, settings.quality)
    share = dataset_drift_share(results)
    features = [r for r in results if r.column not in (PREDICTION, SCORE)]
    drifted = [r.column for r in features if r.drifted]
    outputs = {r.column: r.drifted for r in results if r.column in (PREDICTION, SCORE)}
    feature = settings.drift_feature
    value, source = _goal_value(profile, settings, agg)
    goal = settings.goal
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
        dataset_drifted=bool(features) and share >= settings.drift.dataset_drift_share,
        feature_drifted=bool(feature and feature in drifted),
        goal_value=value,
        goal_source=source,
        goal_met=None if goal is None or value is None else goal.met(value),
        quality_issues=issues,
        quality_problems=problems,
        n_rows=agg.n_rows,
        prediction_drifted=outputs.get(PREDICTION),
        score_drifted=outputs.get(SCORE),
        n_features=len(features),
        partial=partial,
    )


def goal_status(
    profile: ReferenceProfile,
    settings: MonitoringSettings,
    day: date,
    agg: WindowAggregate,
    *,
    partial: bool = False,
) -> WindowStatus:
    """Only the goal's value and verdict of a window (no drift, no quality): enough for the
    goal metric over time, at a fraction of `window_status`'s cost."""
    value, source = _goal_value(profile, settings, agg)
    goal = settings.goal
    return WindowStatus(
        window=day,
        drift_share=0.0,
        drifted=[],
        dataset_drifted=False,
        feature_drifted=False,
        goal_value=value,
        goal_source=source,
        goal_met=None if goal is None or value is None else goal.met(value),
        quality_issues=0,
        quality_problems=[],
        n_rows=agg.n_rows,
        partial=partial,
    )


def _goal_value(
    profile: ReferenceProfile, settings: MonitoringSettings, agg: WindowAggregate
) -> tuple[float | None, str]:
    goal, task = settings.goal, profile.task or "classification"
    if goal is None or goal.unavailable:
        return None, "none"
    with quiet():
        if int(agg.labels.get("n", 0)) >= settings.min_labelled:
            value = metrics_from_sums(agg.labels, task).get(goal.metric)
            if value is not None and math.isfinite(value):
                return float(value), REALISED
        if task == "classification" and agg.cbpe.get("n", 0) >= settings.min_labelled:
            value = cbpe_estimate(agg.cbpe).get(goal.metric)
            if value is not None and math.isfinite(value):
                return float(value), ESTIMATED
    return None, "none"


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
            "partial": [s.partial for s in statuses],
        }
    )
    with quiet():
        for column in ("n_rows", "drift_share", "goal_value", "quality_issues"):
            frame[f"{column}_anomaly"] = flag_complete_anomalies(
                frame[column].astype(float),
                frame["partial"].to_numpy(dtype=bool),
                threshold=settings.anomaly_threshold,
            ).to_numpy()
    return frame


def data_until(session: Session, model_id: int, environment: str) -> date | None:
    """The day of the latest prediction timestamp ingested (voided batches left out)."""
    latest = session.exec(
        select(func.max(InferenceBatch.window_end)).where(
            InferenceBatch.model_id == model_id,
            InferenceBatch.environment == environment,
            InferenceBatch.kind == PREDICTIONS,
            col(InferenceBatch.voided_at).is_(None),
        )
    ).one()
    return _as_date(latest) if latest is not None else None


def partial_days(days: list[date], settings: MonitoringSettings, until: date | None) -> set[date]:
    """The windows still filling (see `partial_windows`)."""
    flags = partial_windows(days, settings.window, until, utcnow().date())
    return {day for day, partial in zip(days, flags, strict=True) if partial}


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


def _external_rows(session: Session, target: _Target) -> dict[date, int]:
    """Rows per window that were aggregated outside Quorum (Quorum never saw them)."""
    rows = session.exec(
        select(WindowAggregateRow.window_start, WindowAggregateRow.external_rows).where(
            WindowAggregateRow.model_id == target.model.id,
            WindowAggregateRow.version_id == target.version.id,
            WindowAggregateRow.environment == target.environment,
            WindowAggregateRow.external_rows > 0,
        )
    ).all()
    return {_as_date(start): int(n) for start, n in rows}
