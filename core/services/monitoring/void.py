"""Void a batch of predictions or labels: its rows leave the store (labels are cleared), the
windows it touched are recomputed from the rows that remain, and incidents it caused close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from sqlmodel import Session, col, select

from core import audit
from core.auth import Permission, Principal, refresh, require
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    Alert,
    InferenceBatch,
    MLModel,
    ModelVersion,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.windows import WindowAggregate, aggregate_chunk, window_starts
from core.services import unit_of_work
from core.services.monitoring import rows as stored_rows
from core.services.monitoring.common import (
    ACTIVE,
    ANOMALY,
    _as_date,
    _as_datetime,
    _Target,
    _target_for,
    quiet,
)
from core.services.monitoring.incidents import (
    _verdicts,
    close_incident,
    evaluate_windows,
)
from core.services.monitoring.ingest import _window_json
from core.services.monitoring.status import window_status
from core.services.registry import get_model

MIN_REASON = 5


@dataclass(frozen=True)
class VoidResult:
    batch_id: int
    kind: str
    rows: int
    windows: list[date]
    closed: list[int]
    message: str


def void_batch(
    db: Database, actor: Principal, model_name: str | None, batch_id: int, reason: str
) -> VoidResult:
    """Void one batch with a reason; the same file can then be sent again. Without a model
    name the batch's own model is used (a batch of a model the actor cannot see is absent)."""
    why = " ".join((reason or "").split())
    if len(why) < MIN_REASON:
        raise InvalidInput(
            f"Say why batch #{batch_id} is voided (at least {MIN_REASON} characters), for "
            "example 'labels were 0/1 instead of Yes/No'."
        )
    result, keys = _void(db, actor, model_name, batch_id, why)
    stored_rows.delete_files(stored_rows.store(), keys)  # after the commit: no row points at them
    return result


def _void(
    db: Database, actor: Principal, model_name: str | None, batch_id: int, why: str
) -> tuple[VoidResult, list[str]]:
    with unit_of_work(db, actor) as session:
        model = get_model(session, actor, model_name or _model_of(session, actor, batch_id))
        _require_void(session, actor, model)
        batch = _batch(session, model, batch_id)
        version = session.get(ModelVersion, batch.version_id)
        if version is None:
            raise NotFound(f"The version of batch #{batch_id} no longer exists.")
        touched_days, keys = stored_rows.remove_batch(session, batch)
        n_rows = int(touched_days["rows"].sum())
        touched = _recompute(session, model, touched_days, batch.environment)
        batch.voided_at = utcnow()
        batch.voided_by_id = actor.user_id
        batch.void_reason = why[:500]
        session.add(batch)
        audit.record(
            session,
            actor,
            "monitoring.batch_voided",
            object_type="inference_batch",
            object_id=batch.id,
            model_id=model.id,
            summary=f"Batch #{batch.id} of {model.name} ({batch.kind}, {n_rows:,} rows, "
            f"{batch.filename or 'no name'}) voided: {why[:300]}",
            details={"reason": why[:500], "rows": n_rows, "windows": len(touched)},
        )
        closed = _reconsider(session, actor, model, batch, touched, why)
        days = sorted({day for _, day in touched})
        result = VoidResult(
            batch_id=batch.id or 0,
            kind=batch.kind,
            rows=n_rows,
            windows=days,
            closed=closed,
            message=f"Batch #{batch.id} voided: {n_rows:,} {batch.kind} removed from "
            f"{len(days)} window(s), recomputed from the rows that remain"
            + (f"; {len(closed)} incident(s) closed" if closed else "")
            + ". The same file can now be sent again.",
        )
        return result, keys


def _model_of(session: Session, actor: Principal, batch_id: int) -> int:
    model_id = session.exec(
        select(InferenceBatch.model_id).where(InferenceBatch.id == batch_id)
    ).first()
    absent = NotFound(
        f"No batch #{batch_id} is visible to you; the number is in the answer that stored it "
        "and on the Monitoring page."
    )
    if model_id is None:
        raise absent
    try:
        get_model(session, actor, model_id)
    except NotFound:
        raise absent from None
    return model_id


def _require_void(session: Session, actor: Principal, model: MLModel) -> None:
    current = refresh(session, actor)
    if current.can(Permission.INGEST, model.team_id):
        return
    require(
        session,
        actor,
        Permission.MANAGE_MONITORING,
        team_id=model.team_id,
        what=f"void a batch of {model.name}",
        model_id=model.id,
    )


def _batch(session: Session, model: MLModel, batch_id: int) -> InferenceBatch:
    batch = session.exec(
        select(InferenceBatch)
        .where(InferenceBatch.id == batch_id, InferenceBatch.model_id == model.id)
        .with_for_update()
    ).first()
    if batch is None:
        raise NotFound(
            f"{model.name} has no batch #{batch_id}; the Monitoring page lists its batches."
        )
    if batch.voided_at is not None:
        raise Conflict(
            f"Batch #{batch_id} was already voided on {batch.voided_at:%Y-%m-%d %H:%M} UTC "
            f"({batch.void_reason}); nothing was changed."
        )
    return batch


def _recompute(
    session: Session, model: MLModel, rows: pd.DataFrame, environment: str
) -> list[tuple[int, date]]:
    """Recompute every touched window of every version from the rows left in the store."""
    touched: list[tuple[int, date]] = []
    for key, part in rows.groupby("version_id"):
        version = session.get(ModelVersion, int(str(key)))
        if version is None:
            continue
        target = _target_for(session, model, version, environment)
        stamps = pd.to_datetime(part["day"], utc=True)
        days = sorted(
            {pd.Timestamp(d).date() for d in window_starts(stamps, target.settings.window)}
        )
        for day in days:
            _recompute_window(session, target, day)
            touched.append((version.id or 0, day))
    return touched


def _window_end(day: date, window: str) -> datetime:
    offset = {"D": pd.DateOffset(days=1), "W": pd.DateOffset(weeks=1), "M": pd.DateOffset(months=1)}
    return (pd.Timestamp(_as_datetime(day)) + offset[window]).to_pydatetime()


def _recompute_window(session: Session, target: _Target, day: date) -> None:
    row = session.exec(
        select(WindowAggregateRow)
        .where(
            WindowAggregateRow.model_id == target.model.id,
            WindowAggregateRow.version_id == target.version.id,
            WindowAggregateRow.environment == target.environment,
            WindowAggregateRow.window_start == _as_datetime(day),
        )
        .with_for_update()
    ).first()
    if row is None:
        return
    span = (_as_datetime(day), _window_end(day, target.settings.window))
    frame, outside = stored_rows.window_rows(  # read under the window's row lock
        session,
        stored_rows.store(),
        target.model.id or 0,
        target.version.id or 0,
        target.environment,
        span,
    )
    if frame.empty and not outside:
        session.delete(row)
        return
    aggregate = WindowAggregate(window_start=day)
    if not frame.empty:
        with quiet():
            fresh = aggregate_chunk(frame, target.profile, window=target.settings.window)
        aggregate = fresh.get(day, aggregate)
    for data in outside:
        aggregate = aggregate.merge(WindowAggregate.from_dict(data))
    row.data = _window_json(aggregate)
    row.n_rows = aggregate.n_rows
    row.external_rows = sum(int(data["n_rows"]) for data in outside)
    row.updated_at = utcnow()
    row.row_version += 1
    session.add(row)


def _reconsider(
    session: Session,
    actor: Principal,
    model: MLModel,
    batch: InferenceBatch,
    touched: list[tuple[int, date]],
    why: str,
) -> list[int]:
    """Close the active incidents no remaining window is in breach of; update the rest."""
    version = session.get(ModelVersion, batch.version_id)
    if version is None or not touched:
        return []
    target = _target_for(session, model, version, batch.environment)
    windows = {
        _as_date(r.window_start): WindowAggregate.from_dict(r.data)
        for r in session.exec(
            select(WindowAggregateRow).where(
                WindowAggregateRow.model_id == model.id,
                WindowAggregateRow.version_id == version.id,
                WindowAggregateRow.environment == batch.environment,
            )
        )
    }
    incidents = session.exec(
        select(Alert).where(
            Alert.model_id == model.id,
            Alert.environment == batch.environment,
            col(Alert.status).in_(ACTIVE),
        )
    ).all()
    affected = {day for _, day in touched}
    closed = []
    for incident in incidents:
        first = _as_date(incident.window_start)
        last = _as_date(incident.last_window or incident.window_start)
        overlaps = any(first <= day <= last for day in affected)
        if incident.kind == ANOMALY or not overlaps:
            continue
        if not _still_in_breach(target, incident, windows):
            close_incident(
                session,
                actor,
                model,
                incident,
                f"Batch #{batch.id} was voided ({why[:200]}); without it no window is in breach.",
            )
            closed.append(incident.id or 0)
    days = sorted({day for version_id, day in touched if version_id == version.id} & set(windows))
    evaluate_windows(session, actor, target, days)
    return closed


def _still_in_breach(
    target: _Target, incident: Alert, windows: dict[date, WindowAggregate]
) -> bool:
    first = _as_date(incident.window_start)
    last = _as_date(incident.last_window or incident.window_start)
    key = (incident.kind, incident.basis)
    for day in sorted(d for d in windows if first <= d <= last):
        status = window_status(target.profile, target.settings, day, windows[day])
        if _verdicts(target, status, None).get(key) is not None:
            return True
    return False
