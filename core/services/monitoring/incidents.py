"""Incidents: one open incident per model, environment and kind, updated by new windows,
closed when its condition has cleared for a set number of windows, superseded or resolved;
team notifications and retraining tasks when an incident opens."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_
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
    utcnow,
)
from core.services import unit_of_work
from core.services.monitoring.common import (
    ACKNOWLEDGED,
    ACTIVE,
    ANOMALY,
    ANOMALY_HISTORY,
    CLOSED,
    DRIFT,
    ESTIMATED,
    OPEN,
    PERFORMANCE,
    QUALITY,
    REALISED,
    RESOLVED,
    RETRAIN_KINDS,
    MonitoringSettings,
    _as_date,
    _as_datetime,
    _Target,
    known_environment,
)
from core.services.monitoring.status import (
    WindowStatus,
    _all_windows,
    data_until,
    partial_days,
    series_frame,
    window_status,
)
from core.services.portfolio import notify
from core.services.registry import get_model, scoped

# --- window status ------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    window: date
    kind: str
    metric: str
    value: float | None
    threshold: float | None
    message: str
    basis: str = ""


Key = tuple[str, str]


def _verdicts(
    target: _Target, status: WindowStatus, anomaly: Crossing | None
) -> dict[Key, Crossing | None]:
    """Per incident key: a Crossing when the window is in breach, None when it is clear.

    A key is absent when the window cannot judge it (too few rows, no labels, no goal)."""
    settings, day = target.settings, status.window
    if status.n_rows < settings.min_window_rows:
        return {}
    found: dict[Key, Crossing | None] = {}
    if status.n_features:
        found[(DRIFT, "")] = _drift_crossing(settings, status)
    goal = settings.goal
    if goal is not None and status.goal_met is not None:
        basis = status.goal_source
        found[(PERFORMANCE, basis)] = (
            None
            if status.goal_met
            else Crossing(
                day,
                PERFORMANCE,
                goal.metric,
                status.goal_value,
                goal.target,
                f"Performance on {day} ({basis}): {goal.describe(status.goal_value)}"
                f" Goal: {goal.basis}.",
                basis,
            )
        )
    found[(QUALITY, "")] = (
        Crossing(
            day,
            QUALITY,
            "issues",
            float(len(status.quality_problems)),
            0.0,
            f"Data quality on {day}: " + "; ".join(status.quality_problems[:5]) + ".",
        )
        if status.quality_problems
        else None
    )
    found[(ANOMALY, "")] = anomaly
    return found


def _drift_crossing(settings: MonitoringSettings, status: WindowStatus) -> Crossing | None:
    day = status.window
    if settings.drift_feature and status.feature_drifted:
        return Crossing(
            day,
            DRIFT,
            settings.drift_feature,
            None,
            None,
            f"Data drift on {day}: the watched feature '{settings.drift_feature}' drifted.",
        )
    if settings.drift_feature is None and status.dataset_drifted:
        share = settings.drift.dataset_drift_share
        return Crossing(
            day,
            DRIFT,
            "dataset_drift_share",
            status.drift_share,
            share,
            f"Data drift on {day}: {len(status.drifted)} of {status.n_features} features "
            f"drifted ({status.drift_share:.0%}: {', '.join(status.drifted[:8])}); the limit "
            f"is {share:.0%}.",
        )
    return None


def _anomaly_crossings(
    statuses: list[WindowStatus], settings: MonitoringSettings
) -> dict[date, Crossing]:
    if not statuses:
        return {}
    frame = series_frame(statuses, settings)
    found: dict[date, Crossing] = {}
    series_names = {"drift_share": "share of drifted features", "goal_value": "goal metric"}
    for column, words in series_names.items():
        flagged = frame[frame[f"{column}_anomaly"]]
        for day, value in zip(flagged["window"], flagged[column], strict=True):
            found.setdefault(
                day,
                Crossing(
                    day,
                    ANOMALY,
                    column,
                    float(value),
                    None,
                    f"Unusual {words} on {day}: {float(value):.3g}, far from the recent windows.",
                ),
            )
    return found


# --- incidents -----------------------------------------------------------------------------


@dataclass
class IncidentChanges:
    """What one evaluation did to the incidents of a model in an environment."""

    opened: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    closed: list[Alert] = field(default_factory=list)
    task_id: int | None = None

    def summary(self) -> str:
        parts = [
            f"{len(items)} incident(s) {verb}"
            for items, verb in (
                (self.opened, "opened"),
                (self.updated, "updated"),
                (self.closed, "closed"),
            )
            if items
        ]
        return f" {', '.join(parts)}." if parts else ""


def evaluate_windows(
    session: Session, actor: Principal, target: _Target, touched: list[date]
) -> IncidentChanges:
    """Open, update, supersede and close incidents from the windows, oldest window first."""
    changes = IncidentChanges()
    if not touched:
        return changes
    # one evaluation at a time per model: two ingests cannot both open the same incident
    session.exec(select(MLModel.id).where(MLModel.id == target.model.id).with_for_update()).one()
    windows = _all_windows(session, target)
    days = sorted(windows)
    active = _active_incidents(session, target)
    since = min([min(touched), *(_last_window(a) for a in active.values())])
    first = max(bisect.bisect_left(days, since) - ANOMALY_HISTORY, 0)
    partial = partial_days(
        days[first:], target.settings, data_until(session, target.model.id or 0, target.environment)
    )
    statuses = [
        window_status(target.profile, target.settings, day, windows[day], partial=day in partial)
        for day in days[first:]
    ]
    anomalies = _anomaly_crossings(statuses, target.settings)
    wanted = set(touched)
    sweep = _Sweep(session, actor, target, active, changes, {}, _settled(session, target))
    for status in statuses:
        if status.window >= since:
            verdicts = _verdicts(target, status, anomalies.get(status.window))
            sweep.day(status.window, verdicts, status.window in wanted)
    _announce(session, actor, target, changes)
    return changes


def _last_window(alert: Alert) -> date:
    return _as_date(alert.last_window or alert.window_start)


@dataclass
class _Sweep:
    session: Session
    actor: Principal
    target: _Target
    active: dict[Key, Alert]
    changes: IncidentChanges
    clear_run: dict[Key, list[date]]
    settled: dict[Key, date]

    def day(self, day: date, verdicts: dict[Key, Crossing | None], may_open: bool) -> None:
        for key, crossing in verdicts.items():
            if crossing is not None:
                self._breach(key, crossing, may_open)
        for key, crossing in verdicts.items():
            if crossing is None:
                self._clear(key, day)
        self._supersede(day, verdicts)

    def _breach(self, key: Key, crossing: Crossing, may_open: bool) -> None:
        self.clear_run.pop(key, None)
        incident = self.active.get(key)
        if incident is None:
            if may_open and crossing.window > self.settled.get(key, date.min):
                self.active[key] = _open(self.session, self.target, crossing)
                self.changes.opened.append(self.active[key])
            return
        if _update(incident, crossing, self.target) and incident not in self.changes.opened:
            if incident not in self.changes.updated:
                self.changes.updated.append(incident)
        self.session.add(incident)

    def _clear(self, key: Key, day: date) -> None:
        incident = self.active.get(key)
        if incident is None or day <= _last_window(incident):
            return
        run = self.clear_run.setdefault(key, [])
        run.append(day)
        needed = self.target.settings.close_after
        if len(run) >= needed:
            span = f"{run[0]}" if len(run) == 1 else f"{run[0]} to {run[-1]}"
            self._close(
                key,
                f"The condition cleared for {needed} window(s) in a row ({span}).",
                None,
            )

    def _supersede(self, day: date, verdicts: dict[Key, Crossing | None]) -> None:
        estimated = self.active.get((PERFORMANCE, ESTIMATED))
        realised_key = (PERFORMANCE, REALISED)
        if estimated is None or realised_key not in verdicts:
            return
        if day < _as_date(estimated.window_start):
            return
        realised = self.active.get(realised_key)
        if verdicts[realised_key] is not None and realised is not None:
            self._close(
                (PERFORMANCE, ESTIMATED),
                f"Superseded by incident #{realised.id}: labels for {day} measure the goal "
                "instead of estimating it.",
                realised.id,
            )
        elif verdicts[realised_key] is None and day >= _last_window(estimated):
            goal = self.target.settings.goal
            words = f" ({goal.statement()})" if goal else ""
            self._close(
                (PERFORMANCE, ESTIMATED),
                f"Labels for {day} show the goal met{words}; the estimate was wrong.",
                None,
            )

    def _close(self, key: Key, reason: str, superseded_by: int | None) -> None:
        incident = self.active.pop(key)
        self.clear_run.pop(key, None)
        self.settled[key] = max(self.settled.get(key, date.min), _last_window(incident))
        close_incident(self.session, self.actor, self.target.model, incident, reason, superseded_by)
        if incident in self.changes.updated:
            self.changes.updated.remove(incident)
        self.changes.closed.append(incident)


def _active_incidents(session: Session, target: _Target) -> dict[Key, Alert]:
    rows = session.exec(
        select(Alert)
        .where(
            Alert.model_id == target.model.id,
            Alert.environment == target.environment,
            col(Alert.status).in_(ACTIVE),
        )
        .order_by(col(Alert.id))
        .with_for_update()
    ).all()
    return {(a.kind, a.basis): a for a in rows}


def _settled(session: Session, target: _Target) -> dict[Key, date]:
    """Per key, the last window of its closed incidents: replaying those windows (late labels,
    a second batch for the same week) must not open the same episode again."""
    rows = session.exec(
        select(Alert.kind, Alert.basis, func.max(Alert.last_window))
        .where(
            Alert.model_id == target.model.id,
            Alert.environment == target.environment,
            col(Alert.status).not_in(ACTIVE),
        )
        .group_by(col(Alert.kind), col(Alert.basis))
    ).all()
    return {(kind, basis): _as_date(last) for kind, basis, last in rows if last is not None}


def _open(session: Session, target: _Target, crossing: Crossing) -> Alert:
    value = _finite(crossing.value)
    alert = Alert(
        model_id=target.model.id or 0,
        version_id=target.version.id or 0,
        environment=target.environment,
        window_start=_as_datetime(crossing.window),
        last_window=_as_datetime(crossing.window),
        kind=crossing.kind,
        basis=crossing.basis,
        metric=crossing.metric[:120],
        value=value,
        worst_value=value,
        threshold=_finite(crossing.threshold),
        message=crossing.message,
        windows_in_breach=1,
    )
    session.add(alert)
    session.flush()
    return alert


def _update(incident: Alert, crossing: Crossing, target: _Target) -> bool:
    """Fold a window in breach into an open incident; True when it changed the incident."""
    value = _finite(crossing.value)
    changed = False
    if value is not None and _worse(incident, value, target):
        incident.worst_value = value
        changed = True
    if crossing.window > _last_window(incident):
        incident.last_window = _as_datetime(crossing.window)
        incident.windows_in_breach += 1
        incident.value = value
        incident.metric = crossing.metric[:120]
        incident.message = crossing.message
        incident.version_id = target.version.id or incident.version_id
        changed = True
    if changed:
        incident.updated_at = utcnow()
    return changed


def _worse(incident: Alert, value: float, target: _Target) -> bool:
    if incident.worst_value is None:
        return True
    goal = target.settings.goal
    lower_is_worse = (
        incident.kind == PERFORMANCE
        and goal is not None
        and goal.operator
        in (
            ">=",
            ">",
        )
    )
    return value < incident.worst_value if lower_is_worse else value > incident.worst_value


def close_incident(
    session: Session,
    actor: Principal,
    model: MLModel,
    incident: Alert,
    reason: str,
    superseded_by: int | None = None,
    status: str = CLOSED,
) -> None:
    """Close an incident with its reason, in the caller's transaction, audited."""
    incident.status = status
    incident.closed_reason = reason[:1000]
    incident.superseded_by_id = superseded_by
    incident.resolved_at = utcnow()
    incident.updated_at = incident.resolved_at
    if status == RESOLVED:
        incident.resolved_by_id = actor.user_id
    session.add(incident)
    notify(
        session,
        team_members(session, model.team_id) - {actor.user_id},
        "incident.closed",
        f"{model.name}: {_kind_words(incident)} incident #{incident.id} closed in "
        f"{incident.environment}",
        body=reason[:300],
        link=monitoring_link(model.name),
        model_id=model.id,
        version_id=incident.version_id,
    )
    session.flush()  # the audit chain's lock comes last
    audit.record(
        session,
        actor,
        "incident.closed",
        object_type="alert",
        object_id=incident.id,
        model_id=model.id,
        summary=f"Incident #{incident.id} of {model.name} ({_kind_words(incident)}) closed: "
        f"{reason[:300]}",
        details={
            "reason": reason[:1000],
            "superseded_by": superseded_by,
            "status": status,
            "windows_in_breach": incident.windows_in_breach,
        },
    )


def _kind_words(incident: Alert) -> str:
    return f"{incident.basis} {incident.kind}" if incident.basis else incident.kind


def _announce(
    session: Session, actor: Principal, target: _Target, changes: IncidentChanges
) -> None:
    if not changes.opened:
        return
    for alert in changes.opened:
        audit.record(
            session,
            actor,
            "incident.opened",
            object_type="alert",
            object_id=alert.id,
            model_id=target.model.id,
            summary=alert.message[:500],
            details={
                "kind": alert.kind,
                "basis": alert.basis,
                "metric": alert.metric,
                "window": alert.window_start,
            },
        )
    _notify_team(session, target, changes.opened)
    changes.task_id = _open_retraining(session, actor, target, changes.opened)


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
            f"{target.model.name}: {kind} incident opened in {target.environment} ({span})",
            body=alerts[-1].message,
            link=monitoring_link(target.model.name),
            model_id=target.model.id,
            version_id=target.version.id,
        )


def _open_retraining(
    session: Session, actor: Principal, target: _Target, opened: list[Alert]
) -> int | None:
    # an estimate alone does not start retraining: labels may contradict it
    reasons = [a for a in opened if a.kind in RETRAIN_KINDS and a.basis != ESTIMATED]
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
    """Acknowledge an incident (it stays open and keeps counting) or resolve it by hand."""
    if status not in (ACKNOWLEDGED, RESOLVED):
        raise InvalidInput(f"An incident can be set to '{ACKNOWLEDGED}' or '{RESOLVED}'.")
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
            raise NotFound(f"No incident #{alert_id} is visible to you; reload the page.")
        model = get_model(
            session,
            actor,
            alert.model_id,
            permission=Permission.MANAGE_MONITORING,
            what="handle incidents of {model}",
        )
        if alert.status not in ACTIVE:
            raise Conflict(f"Incident #{alert_id} is already {alert.status}; reload the page.")
        if status == RESOLVED:
            reason = f"Resolved by {actor.name}" + (f": {note[:500]}" if note else ".")
            close_incident(session, actor, model, alert, reason, status=RESOLVED)
            return alert
        _acknowledge(session, actor, model, alert, note)
        return alert


def _acknowledge(
    session: Session, actor: Principal, model: MLModel, alert: Alert, note: str
) -> None:
    alert.status = ACKNOWLEDGED
    alert.updated_at = utcnow()
    session.add(alert)
    audit.record(
        session,
        actor,
        "incident.acknowledged",
        object_type="alert",
        object_id=alert.id,
        model_id=model.id,
        summary=f"Incident #{alert.id} of {model.name} acknowledged: {alert.message[:200]}",
        details={"note": note[:500]},
    )


def acknowledge_incidents(
    db: Database, actor: Principal, model_name: str, env: str, note: str = ""
) -> int:
    """Acknowledge every open (not yet acknowledged) incident of a model in an environment."""
    environment = known_environment(env)
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.MANAGE_MONITORING,
            what="handle incidents of {model}",
        )
        rows = session.exec(
            select(Alert)
            .where(
                Alert.model_id == model.id,
                Alert.environment == environment,
                Alert.status == OPEN,
            )
            .with_for_update()
        ).all()
        for alert in rows:
            _acknowledge(session, actor, model, alert, note)
        return len(rows)
