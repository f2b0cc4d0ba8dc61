"""Per-window status, threshold crossings, alerts, team notifications and retraining tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import or_
from sqlmodel import Session, col, select

from core import audit
from core.auth import Permission, Principal, require, visible_teams
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    Alert,
    MLModel,
    RetrainingTask,
    Role,
    RoleGrant,
    User,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.anomalies import flag_anomalies
from core.monitoring.performance import (
    cbpe_estimate,
    metrics_from_sums,
)
from core.monitoring.profile import PREDICTION, SCORE, ReferenceProfile
from core.monitoring.quality import quality_table
from core.monitoring.windows import (
    WindowAggregate,
    dataset_drift_share,
    window_drift,
)
from core.services import unit_of_work
from core.services.monitoring.common import (
    ACKNOWLEDGED,
    ANOMALY,
    ANOMALY_HISTORY,
    AT_RISK,
    DRIFT,
    FAILING,
    HEALTHY,
    OPEN,
    PERFORMANCE,
    QUALITY,
    RESOLVED,
    RETRAIN_KINDS,
    MonitoringSettings,
    _as_date,
    _as_datetime,
    _Target,
)
from core.services.portfolio import notify
from core.services.registry import get_model, scoped

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
        require(session, actor, Permission.MANAGE_MONITORING, what="handle alerts", anywhere=True)
        visible = scoped(
            select(Alert.id)
            .join(MLModel, col(MLModel.id) == col(Alert.model_id))
            .where(Alert.id == alert_id),
            visible_teams(session, actor),
        )
        alert = session.exec(
            select(Alert).where(col(Alert.id).in_(visible)).with_for_update()
        ).first()
        if alert is None:
            raise NotFound(f"No alert #{alert_id} is visible to you; reload the page.")
        model = get_model(
            session,
            actor,
            alert.model_id,
            permission=Permission.MANAGE_MONITORING,
            what="handle alerts of {model}",
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
