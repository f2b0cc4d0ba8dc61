"""Reads for the monitoring page, from stored window aggregates only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from core.auth import Principal, visible_teams
from core.db import Database
from core.errors import NotFound
from core.models import (
    Alert,
    InferenceBatch,
    MLModel,
    ModelVersion,
    RetrainingTask,
    Task,
    WindowAggregateRow,
)
from core.monitoring.performance import (
    cbpe_estimate,
    performance_table,
)
from core.monitoring.profile import NUMERIC, PREDICTION, ReferenceProfile
from core.monitoring.quality import quality_table
from core.monitoring.stats import FeatureDrift
from core.monitoring.windows import (
    WindowAggregate,
    drift_table,
    window_drift,
)
from core.services import read_as
from core.services.compare import live_version
from core.services.monitoring.common import (
    ACTIVE,
    AT_RISK,
    FAILING,
    HEALTHY,
    NO_DATA,
    OPEN,
    MonitoringSettings,
    _as_date,
    _target_for,
    known_environment,
)
from core.services.monitoring.status import (
    WindowStatus,
    _all_windows,
    _external_rows,
    data_until,
    partial_days,
    series_frame,
    window_status,
)
from core.services.registry import get_model, get_version, scoped

ESTIMATED_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "ks",
    "gini",
)

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
    decision_threshold: float | None = None  # the version's, for the class metrics it scores
    data_until: date | None = None  # the day of the latest prediction ingested
    external_rows: dict[date, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.windows

    @property
    def partial(self) -> set[date]:
        """Windows still filling: shown, marked partial, never flagged as anomalies."""
        return partial_days(sorted(self.windows), self.settings, self.data_until)

    @property
    def outside_note(self) -> str:
        """Whether some windows were aggregated outside Quorum, in a sentence ("" if none)."""
        if not self.external_rows:
            return ""
        days = sorted(self.external_rows)
        rows = sum(self.external_rows.values())
        span = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
        return (
            f"{len(days)} of {len(self.windows)} window(s) ({span}, {rows:,} rows) were "
            "aggregated outside Quorum; Quorum did not see these rows, only their counts. "
            "Voiding their batch removes them."
        )


def monitored_models(db: Database, actor: Principal) -> list[str]:
    """Models the actor may see with data to monitor or a live version somewhere."""
    from core.models import Deployment

    with read_as(db, actor) as session:
        live = select(Deployment.model_id).where(col(Deployment.live_until).is_(None))
        watched = select(WindowAggregateRow.model_id)
        stmt = select(MLModel.name).where(
            col(MLModel.id).in_(live) | col(MLModel.id).in_(watched)
        )  # names only, filtered in SQL: every live model's id never travels to Python
        return list(
            session.exec(
                scoped(stmt, visible_teams(session, actor)).order_by(col(MLModel.name))
            ).all()
        )


def data_fingerprint(db: Database, actor: Principal, model_name: str, env: str) -> tuple[Any, ...]:
    """Changes whenever anything the page shows changes (cache key, seen across processes)."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        windows = session.exec(
            select(func.count(), func.max(WindowAggregateRow.updated_at)).where(
                WindowAggregateRow.model_id == model.id,
                WindowAggregateRow.environment == env,
            )
        ).one()
        alerts = session.exec(
            select(func.count(), func.max(Alert.id), func.max(Alert.updated_at)).where(
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
    db: Database,
    actor: Principal,
    model_name: str,
    env: str = "production",
    version: int | None = None,
) -> MonitoringData:
    """The stored windows of the live version (or `version`) in `env`, with its reference."""
    env = known_environment(env)
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        chosen = _monitored_version(session, model, env, version)
        target = _target_for(session, model, chosen, env)
        windows = _all_windows(session, target)
        until = data_until(session, model.id or 0, env)
        outside = _external_rows(session, target)
    return MonitoringData(
        model=model.name,
        task=model.task,
        environment=env,
        version=chosen.number,
        goal_description=_goal_description(target.settings),
        profile=target.profile,
        settings=target.settings,
        windows=windows,
        decision_threshold=chosen.decision_threshold,
        data_until=until,
        external_rows=outside,
    )


def _goal_description(settings: MonitoringSettings) -> str:
    goal = settings.goal
    if goal is None:
        return "No performance goal is set for this model."
    text = f"{goal.label} {goal.operator} {goal.target:.4g} ({goal.basis})"
    if goal.unavailable:
        text += f"; it cannot be checked on production data: {goal.unavailable}"
    return text


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
        for metric in ESTIMATED_METRICS:
            table[f"estimated_{metric}"] = [e.get(metric, np.nan) for e in estimates]
    return table


def statuses(data: MonitoringData) -> list[WindowStatus]:
    partial = data.partial
    return [
        window_status(data.profile, data.settings, day, agg, partial=day in partial)
        for day, agg in data.windows.items()
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
    """One incident as the page shows it."""

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
    basis: str = ""
    last_window: date | None = None
    windows_in_breach: int = 1
    worst_value: float | None = None
    closed_reason: str | None = None
    superseded_by: int | None = None

    @property
    def title(self) -> str:
        kind = f"{self.basis} {self.kind}" if self.basis else self.kind
        span = (
            f"{self.window}"
            if self.last_window in (None, self.window)
            else f"{self.window} to {self.last_window}"
        )
        return (
            f"#{self.id} · {kind} · {self.windows_in_breach} window(s) in breach ({span}) · "
            f"v{self.version} · {self.status}"
        )


def alerts(
    db: Database,
    actor: Principal,
    model_name: str,
    env: str | None = None,
    *,
    open_only: bool = True,
) -> list[AlertView]:
    """Incidents of a model (open and acknowledged ones unless `open_only` is False)."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        stmt = (
            select(Alert, ModelVersion.number)
            .join(ModelVersion, col(ModelVersion.id) == Alert.version_id)
            .where(Alert.model_id == model.id)
        )
        if env is not None:
            stmt = stmt.where(Alert.environment == env)
        if open_only:
            stmt = stmt.where(col(Alert.status).in_(ACTIVE))
        rows = session.exec(stmt.order_by(col(Alert.updated_at).desc(), col(Alert.id))).all()
        return [_alert_view(a, number) for a, number in rows]


def _alert_view(a: Alert, number: int) -> AlertView:
    return AlertView(
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
        a.basis,
        _as_date(a.last_window) if a.last_window else None,
        a.windows_in_breach,
        a.worst_value,
        a.closed_reason,
        a.superseded_by_id,
    )


def open_incident_counts(db: Database, model_ids: list[int]) -> dict[int, int]:
    """Open (or acknowledged) incidents per model, for the Home cards."""
    if not model_ids:
        return {}
    with db.read() as session:
        rows = session.exec(
            select(Alert.model_id, func.count())
            .where(col(Alert.model_id).in_(model_ids), col(Alert.status).in_(ACTIVE))
            .group_by(col(Alert.model_id))
        ).all()
        return {int(model_id): int(count) for model_id, count in rows}


@dataclass(frozen=True)
class BatchView:
    id: int
    kind: str
    filename: str
    n_rows: int
    version: int
    created_at: datetime
    voided_at: datetime | None
    void_reason: str | None


def batches(
    db: Database, actor: Principal, model_name: str, env: str, limit: int = 50
) -> list[BatchView]:
    """The latest batches of a model in an environment, voided ones included."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        rows = session.exec(
            select(InferenceBatch, ModelVersion.number)
            .join(ModelVersion, col(ModelVersion.id) == InferenceBatch.version_id)
            .where(InferenceBatch.model_id == model.id, InferenceBatch.environment == env)
            .order_by(col(InferenceBatch.id).desc())
            .limit(limit)
        ).all()
        return [
            BatchView(
                b.id or 0,
                b.kind,
                b.filename,
                b.n_rows,
                number,
                b.created_at,
                b.voided_at,
                b.void_reason,
            )
            for b, number in rows
        ]


@dataclass(frozen=True)
class TaskView:
    id: int
    version: int
    reason: str
    status: str
    result_version: int | None
    created_at: datetime


def retraining_tasks(db: Database, actor: Principal, model_name: str) -> list[TaskView]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
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
    drift: list[str] = field(default_factory=list)


def _drift_lines(state: WindowStatus) -> list[str]:
    """Feature drift, prediction drift and score drift, each on its own line."""

    lines = [
        f"Features: {len(state.drifted)} of {state.n_features} drifted"
        + (f" ({', '.join(state.drifted[:6])})." if state.drifted else ".")
    ]
    for what, drifted in (
        ("Predictions", state.prediction_drifted),
        ("Scores", state.score_drifted),
    ):
        if drifted is not None:  # a regressor has no scores
            lines.append(f"{what}: distribution {'changed' if drifted else 'unchanged'}.")
    return lines


def health_card(data: MonitoringData, states: list[WindowStatus] | None = None) -> HealthCard:
    """Healthy / at risk / failing in plain words, for people who do not read charts
    (`states`: the windows' statuses when the caller has them already)."""
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
    states = states if states is not None else statuses(data)
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
        f"This has been so since {since} (latest data: {latest.window}"
        + (", a partial window still filling)." if latest.partial else ")."),
        goal_words,
        goal_met,
        since,
        reasons,
        latest.window,
        _drift_lines(latest),
    )


def _goal_words(data: MonitoringData, states: list[WindowStatus]) -> tuple[str, bool | None]:
    goal = data.settings.goal
    if goal is None:
        return "No performance goal is set for this model, so none is checked.", None
    if goal.unavailable:
        return (
            f"The goal ({goal.statement()}) cannot be checked on production data: "
            f"{goal.unavailable}. No other metric is checked in its place.",
            None,
        )
    judged = [s for s in states if s.goal_value is not None]
    if not judged:
        return (
            f"The goal ({goal.statement()}) cannot be checked yet: no window has enough labels "
            f"(at least {data.settings.min_labelled}) or scores to estimate it.",
            None,
        )
    last = judged[-1]
    basis = "measured on labelled data" if last.goal_source == "realised" else "estimated"
    if last.partial:
        basis += "; a partial window, still filling"
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
            f"{len(state.drifted)} of {state.n_features} features changed compared with the "
            f"reference data ({', '.join(state.drifted[:6])})."
        )
    if state.prediction_drifted:
        reasons.append("The distribution of the model's predictions changed.")
    if state.score_drifted:
        reasons.append("The distribution of the model's scores changed.")
    if state.quality_problems:
        reasons.append("Data quality: " + "; ".join(state.quality_problems[:3]) + ".")
    return reasons
