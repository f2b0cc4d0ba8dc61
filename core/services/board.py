"""The portfolio health board on Home: one row per model, in words a stakeholder reads.

Each row says whether the model meets its goal in production (the health card's verdict,
computed the same way from the stored window aggregates of the recent windows), the goal and
its latest value, the goal metric over recent windows, what is being done about the model,
and what waits for the person looking. A fixed number of queries serves the whole board; no
model is loaded and no window older than `RECENT_WINDOWS` is read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.auth import Permission, Principal, visible_teams
from core.db import Database
from core.models import (
    Alert,
    Decision,
    Deployment,
    Evaluation,
    InferenceBatch,
    MLModel,
    ModelVersion,
    RoleGrant,
    Team,
    VersionState,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.profile import ReferenceProfile
from core.monitoring.windows import WindowAggregate
from core.services import read_as
from core.services.monitoring.common import (
    ACTIVE,
    NO_DATA,
    PREDICTIONS,
    REALISED,
    _as_date,
    quiet,
    settings_for,
)
from core.services.monitoring.status import WindowStatus, goal_status, window_status
from core.services.monitoring.views import MonitoringData, health_card
from core.services.portfolio import my_versions_needing_action
from core.services.registry import scoped
from core.services.reviews import policy_statuses, review_queue

PRODUCTION = "production"
RECENT_WINDOWS = 12
NOT_LIVE = "not live"
KIND_WORDS = {
    "drift": "drift",
    "performance": "goal missed",
    "quality": "data quality",
    "anomaly": "unusual values",
}


@dataclass(frozen=True)
class BoardRow:
    model: str
    team: str
    risk_tier: str
    status: str  # the health card's status (healthy, at risk, failing, no data) or NOT_LIVE
    verdict: str  # one short sentence in plain words
    goal: str  # the goal as stated, or why there is none
    latest: str  # the goal metric's latest value, its day and basis, or why there is none
    goal_met: bool | None
    trend: list[float]  # the goal metric over the recent complete windows, oldest first
    live: dict[str, int]
    activity: list[str]  # what is being done: reviews, promotions, open incidents
    mine: list[str]  # what waits for the person looking
    flags: list[str] = field(default_factory=list)  # more signals (e.g. revalidation overdue)

    @property
    def link(self) -> str:
        return f"pages/5_Monitoring.py?model={self.model}"


def health_board(db: Database, actor: Principal, *, limit: int | None = None) -> list[BoardRow]:
    """A row per active model the actor may see, sorted worst first, then by name."""
    with read_as(db, actor) as session:
        scope = visible_teams(session, actor)
        models = _models(session, scope, limit)
        ids = [m.id or 0 for m, _team in models]
        live = _live(session, ids)
        prod = {mid: envs[PRODUCTION] for mid, envs in live.items() if PRODUCTION in envs}
        evals = _evaluations(session, [vid for _n, vid in prod.values()])
        windows = _recent_windows(session, {mid: vid for mid, (_n, vid) in prod.items()})
        until = _data_until(session, list(prod))
        versions = _versions_in_flight(session, ids)
        in_review = [
            (m, v, v.review_round)
            for m, _team in models
            for v in versions.get(m.id or 0, [])
            if v.state == VersionState.IN_REVIEW
        ]
        approvals = {
            v.id: status.explain()[0].partition(":")[0]
            for (_m, v, _r), status in zip(
                in_review, policy_statuses(session, in_review), strict=True
            )
        }
        incidents = _open_incidents(session, ids)
    mine = _waiting_for(db, actor)
    rows = []
    for model, team in models:
        mid = model.id or 0
        number, version_id = prod.get(mid, (None, None))
        health = _health(
            model, number, evals.get(version_id or 0), windows.get(mid, {}), until.get(mid)
        )
        rows.append(
            BoardRow(
                model=model.name,
                team=team or "?",
                risk_tier=model.risk_tier,
                **health,
                live={env: n for env, (n, _vid) in live.get(mid, {}).items()},
                activity=_activity(
                    versions.get(mid, []), live.get(mid, {}), approvals, incidents.get(mid, [])
                ),
                mine=mine.get(model.name, []),
            )
        )
    return sorted(rows, key=lambda r: (ORDER.get(r.status, len(ORDER)), r.model))


def fingerprint(db: Database) -> tuple[Any, ...]:
    """Changes whenever anything a board shows may have changed (one query; a cache key)."""
    parts = [
        select(func.max(WindowAggregateRow.updated_at)).scalar_subquery(),
        select(func.count(col(WindowAggregateRow.id))).scalar_subquery(),
        select(func.max(Alert.updated_at)).scalar_subquery(),
        select(func.count(col(Alert.id))).scalar_subquery(),
        select(func.max(ModelVersion.updated_at)).scalar_subquery(),
        select(func.max(MLModel.updated_at)).scalar_subquery(),
        select(func.max(Deployment.id)).scalar_subquery(),
        select(func.count(col(Deployment.live_until))).scalar_subquery(),
        select(func.max(Decision.id)).scalar_subquery(),
        select(func.max(InferenceBatch.id)).scalar_subquery(),
        select(func.count(col(InferenceBatch.voided_at))).scalar_subquery(),
        select(func.max(RoleGrant.id)).scalar_subquery(),
        select(func.count(col(RoleGrant.id))).scalar_subquery(),
    ]
    with db.read() as session:
        row = session.exec(select(*parts)).one()
    return (*row, utcnow().date())


ORDER = {"failing": 0, "at risk": 1, "healthy": 2, NO_DATA: 3, NOT_LIVE: 4}


def _models(
    session: Session, scope: frozenset[int] | None, limit: int | None
) -> list[tuple[MLModel, str | None]]:
    stmt = (
        select(MLModel, Team.name)
        .join(Team, col(Team.id) == MLModel.team_id, isouter=True)
        .where(col(MLModel.archived_at).is_(None))
        .order_by(col(MLModel.name))
    )
    stmt = scoped(stmt, scope)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(m, t) for m, t in session.exec(stmt).all()]


def _live(session: Session, ids: list[int]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per model: environment -> (version number, version id) of what is live there."""
    rows = session.exec(
        select(Deployment.model_id, Deployment.environment, ModelVersion.number, ModelVersion.id)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(col(Deployment.live_until).is_(None), col(Deployment.model_id).in_(ids))
    ).all()
    found: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    for model_id, env, number, version_id in rows:
        found[model_id][env] = (number, version_id or 0)
    return found


def _evaluations(session: Session, version_ids: list[int]) -> dict[int, Evaluation]:
    """The newest evaluation of each version (the reference monitoring compares with)."""
    newest = (
        select(func.max(Evaluation.id))
        .where(col(Evaluation.version_id).in_(version_ids))
        .group_by(col(Evaluation.version_id))
    )
    rows = session.exec(select(Evaluation).where(col(Evaluation.id).in_(newest))).all()
    return {ev.version_id: ev for ev in rows}


def _recent_windows(
    session: Session, live: dict[int, int]
) -> dict[int, dict[date, WindowAggregate]]:
    """The `RECENT_WINDOWS` newest production windows of each model's live version."""
    if not live:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=col(WindowAggregateRow.model_id),
            order_by=col(WindowAggregateRow.window_start).desc(),
        )
        .label("rank")
    )
    ranked = (
        select(WindowAggregateRow.id, rank)
        .where(
            col(WindowAggregateRow.model_id).in_(list(live)),
            col(WindowAggregateRow.version_id).in_(list(live.values())),
            WindowAggregateRow.environment == PRODUCTION,
        )
        .subquery()
    )
    rows = session.exec(
        select(WindowAggregateRow)
        .join(ranked, ranked.c.id == WindowAggregateRow.id)
        .where(ranked.c.rank <= RECENT_WINDOWS)
        .order_by(col(WindowAggregateRow.window_start))
    ).all()
    found: dict[int, dict[date, WindowAggregate]] = defaultdict(dict)
    for row in rows:
        if live.get(row.model_id) == row.version_id:
            found[row.model_id][_as_date(row.window_start)] = WindowAggregate.from_dict(row.data)
    return found


def _data_until(session: Session, ids: list[int]) -> dict[int, date]:
    rows = session.exec(
        select(InferenceBatch.model_id, func.max(InferenceBatch.window_end))
        .where(
            col(InferenceBatch.model_id).in_(ids),
            InferenceBatch.environment == PRODUCTION,
            InferenceBatch.kind == PREDICTIONS,
            col(InferenceBatch.voided_at).is_(None),
        )
        .group_by(col(InferenceBatch.model_id))
    ).all()
    return {mid: _as_date(when) for mid, when in rows if when is not None}


def _versions_in_flight(session: Session, ids: list[int]) -> dict[int, list[ModelVersion]]:
    """Versions on their way (registered, in review, changes requested, approved), newest
    first."""
    flight = [
        VersionState.REGISTERED,
        VersionState.IN_REVIEW,
        VersionState.CHANGES_REQUESTED,
        VersionState.APPROVED,
    ]
    rows = session.exec(
        select(ModelVersion)
        .where(col(ModelVersion.model_id).in_(ids), col(ModelVersion.state).in_(flight))
        .order_by(col(ModelVersion.number).desc())
    ).all()
    found: dict[int, list[ModelVersion]] = defaultdict(list)
    for version in rows:
        found[version.model_id].append(version)
    return found


def _open_incidents(session: Session, ids: list[int]) -> dict[int, list[tuple[str, datetime]]]:
    rows = session.exec(
        select(Alert.model_id, Alert.kind, func.min(Alert.window_start))
        .where(
            col(Alert.model_id).in_(ids),
            col(Alert.status).in_(ACTIVE),
            Alert.environment == PRODUCTION,
        )
        .group_by(col(Alert.model_id), col(Alert.kind))
    ).all()
    found: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for mid, kind, since in rows:
        found[mid].append((kind, since))
    return found


def _waiting_for(db: Database, actor: Principal) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    if actor.can_anywhere(Permission.DECIDE):
        for item in review_queue(db, actor):
            found[item.model].append(f"your review of v{item.number}")
    for task in my_versions_needing_action(db, actor):
        name, _, number = task.title.rpartition(" v")
        what = "answer the changes requested" if task.kind == "changes_requested" else "submit"
        found[name].append(f"{what} (v{number})")
    return found


def _health(
    model: MLModel,
    number: int | None,
    ev: Evaluation | None,
    windows: dict[date, WindowAggregate],
    until: date | None,
) -> dict[str, Any]:
    """The health card's verdict over the recent windows, the goal and its recent values."""
    if number is None:
        return _plain(NOT_LIVE, "Not live in production yet.", model)
    if ev is None or not ev.reference_profile:
        return _plain(NO_DATA, "No reference data to judge production against.", model)
    settings = settings_for(model, ev)
    data = MonitoringData(
        model=model.name,
        task=model.task,
        environment=PRODUCTION,
        version=number,
        goal_description="",
        profile=ReferenceProfile.from_dict(ev.reference_profile),
        settings=settings,
        windows=windows,
        data_until=until,
    )
    with quiet():
        states = _states(data)
        card = health_card(data, states)
    goal = settings.goal
    judged = [s for s in states if s.goal_value is not None]
    complete = [s for s in judged if not s.partial]  # a partial week is not the model's value
    last = complete[-1] if complete else (judged[-1] if judged else None)
    latest = "no value yet"
    if goal is not None and goal.unavailable:
        latest = "cannot be computed from production data"
    elif last is not None and last.goal_value is not None:
        basis = "measured" if last.goal_source == REALISED else "estimated"
        partial = ", partial window" if last.partial else ""
        latest = f"{last.goal_value:.3g} ({basis}, {_day(last.window)}{partial})"
    return {
        "status": card.status,
        "verdict": VERDICTS[card.status](card.goal_met),
        "goal": goal.statement() if goal is not None else "no goal set",
        "latest": latest,
        "goal_met": card.goal_met,
        "trend": [
            float(s.goal_value) for s in judged if not s.partial and s.goal_value is not None
        ],
    }


def _states(data: MonitoringData) -> list[WindowStatus]:
    """The latest window in full (the verdict), the ones before only for the goal."""
    days, partial = sorted(data.windows), data.partial
    if not days:
        return []
    *before, latest = days
    return [
        *(
            goal_status(data.profile, data.settings, d, data.windows[d], partial=d in partial)
            for d in before
        ),
        window_status(
            data.profile, data.settings, latest, data.windows[latest], partial=latest in partial
        ),
    ]


def _plain(status: str, verdict: str, model: MLModel) -> dict[str, Any]:
    stated = settings_for(model, None).goal
    return {
        "status": status,
        "verdict": verdict,
        "goal": stated.statement() if stated is not None else "no goal set",
        "latest": "—",
        "goal_met": None,
        "trend": [],
    }


VERDICTS = {
    "healthy": lambda met: (
        "Meets its goal; inputs as expected."
        if met
        else "Working as intended; goal not checked yet."
    ),
    "at risk": lambda met: (
        ("Meets its goal" if met else "Goal not checked yet") + "; watch: its inputs changed."
    ),
    "failing": lambda met: "Needs action: misses its goal.",
    NO_DATA: lambda met: "No production data yet.",
}


def _activity(
    versions: list[ModelVersion],
    live: dict[str, tuple[int, int]],
    approvals: dict[int | None, str],
    incidents: list[tuple[str, datetime]],
) -> list[str]:
    """What is being done, newest version first: "v4 in review: 1 of 2 approvals"."""
    live_numbers = {n for n, _vid in live.values()}
    newest_live = max(live_numbers, default=0)
    lines = []
    for v in versions:
        if v.state == VersionState.IN_REVIEW:
            lines.append(f"v{v.number} in review: {approvals.get(v.id, '')}".rstrip(": "))
        elif v.state == VersionState.APPROVED and v.number > newest_live:
            lines.append(f"v{v.number} approved, waiting for promotion")
        elif v.state == VersionState.CHANGES_REQUESTED:
            lines.append(f"v{v.number}: changes requested, waiting for its author")
        elif v.state == VersionState.REGISTERED:
            lines.append(f"v{v.number} registered, not yet submitted for review")
    for kind, since in sorted(incidents, key=lambda k: k[1]):
        lines.append(f"incident open: {KIND_WORDS.get(kind, kind)} since {_day(since)}")
    return lines


def _day(when: date | datetime) -> str:
    return f"{when.day} {when:%b %Y}"
