"""Periodic revalidation of live versions: each version live in production is due again a policy
interval after its last approval or passed revalidation. A revalidation is a review round of
the live version with its own decisions and sign-offs; a passed one resets the date, a failed
one keeps the version live but flags it, opens a high finding for its owner and closes the gate
to any new promotion of it until that finding is closed."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, load_only
from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import SYSTEM, Permission, Principal, refresh, require_person, visible_teams
from core.db import Database
from core.errors import Conflict, InvalidInput
from core.models import (
    Decision,
    DecisionKind,
    Deployment,
    MLModel,
    ModelVersion,
    Revalidation,
    RevalidationNotice,
    Signoff,
    User,
    VersionState,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.findings import REVALIDATION, new_finding
from core.services.portfolio import notify
from core.services.registry import get_model, get_version, scoped

PRODUCTION = "production"
OPEN, PASSED, FAILED = "open", "passed", "failed"
NOTICE_DAYS = 30  # the owner and compliance officers hear this many days ahead, then on the day
FINDING_DAYS = 30  # a failed revalidation's finding is due this many days later


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has fewer days."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def reviews_link(model_name: str, number: int) -> str:
    return f"pages/3_Reviews.py?model={model_name}&version={number}"


# --- rounds -----------------------------------------------------------------------------------


def open_round(session: Session, version: ModelVersion) -> Revalidation | None:
    """The revalidation of the version's current round, if one is open."""
    return session.exec(
        select(Revalidation).where(
            Revalidation.version_id == version.id,
            Revalidation.review_round == version.review_round,
            Revalidation.status == OPEN,
        )
    ).first()


def approval_round(session: Session, version: ModelVersion) -> int:
    """The round whose approvals the gate counts: the version's current round, unless that is a
    revalidation not (yet) passed, in which case the approval that stood before it."""
    current = session.exec(
        select(Revalidation).where(
            Revalidation.version_id == version.id,
            Revalidation.review_round == version.review_round,
        )
    ).first()
    if current is None or current.status == PASSED:
        return version.review_round
    return current.prior_round


def validated_at(session: Session, version: ModelVersion) -> datetime:
    """When the version was last approved or passed a revalidation."""
    vid = version.id or 0
    rounds = _rounds_of(session, [vid]).get(vid, [])
    return _validated(version, rounds, _approvals_of(session, [vid]).get(vid, []))


def _validated(
    version: ModelVersion, rounds: list[Revalidation], approvals: list[tuple[int, datetime]]
) -> datetime:
    """`validated_at` from the version's rounds and its approvals (round, when)."""
    passed = [r.decided_at for r in rounds if r.status == PASSED and r.decided_at]
    if passed:
        return max(passed)
    revalidations = {r.review_round for r in rounds}
    approved = [when for number, when in approvals if number not in revalidations]
    return max(approved) if approved else version.updated_at


IN_LIST = 1000  # ids per IN list: a store with many live versions reads them in a few queries


def _rounds_of(session: Session, version_ids: list[int]) -> dict[int, list[Revalidation]]:
    """Each version's revalidation rounds, oldest first."""
    found: dict[int, list[Revalidation]] = {}
    for start in range(0, len(version_ids), IN_LIST):
        stmt = select(Revalidation).where(
            col(Revalidation.version_id).in_(version_ids[start : start + IN_LIST])
        )
        for row in session.exec(
            stmt.order_by(col(Revalidation.version_id), col(Revalidation.review_round))
        ):
            found.setdefault(row.version_id, []).append(row)
    return found


def _approvals_of(
    session: Session, version_ids: list[int]
) -> dict[int, list[tuple[int, datetime]]]:
    """Each version's approvals: (review round, when)."""
    found: dict[int, list[tuple[int, datetime]]] = {}
    for start in range(0, len(version_ids), IN_LIST):
        stmt = select(Decision.version_id, Decision.review_round, Decision.created_at).where(
            col(Decision.version_id).in_(version_ids[start : start + IN_LIST]),
            Decision.kind == DecisionKind.APPROVE,
        )
        for version_id, number, when in session.exec(stmt):
            found.setdefault(version_id, []).append((number, when))
    return found


# --- where each live version stands -----------------------------------------------------------


@dataclass(frozen=True)
class RevalidationStatus:
    model: str
    model_id: int
    version: int
    version_id: int
    risk_tier: str
    months: int | None
    validated_on: date
    due_on: date | None
    days_left: int | None
    open_round: int | None
    failed: bool  # the latest revalidation failed: live, flagged, no new promotion
    finding_id: int | None
    link: str

    @property
    def overdue(self) -> bool:
        return self.days_left is not None and self.days_left < 0

    @property
    def label(self) -> str:
        if self.failed:
            return f"revalidation failed — finding #{self.finding_id}"
        if self.due_on is None:
            return "no revalidation required"
        if self.overdue:
            return f"revalidation overdue since {self.due_on.isoformat()}"
        return f"revalidation due {self.due_on.isoformat()}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "risk_tier": self.risk_tier,
            "interval_months": self.months,
            "validated_on": self.validated_on.isoformat(),
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "days_left": self.days_left,
            "overdue": self.overdue,
            "open_round": self.open_round,
            "failed": self.failed,
            "finding_id": self.finding_id,
            "label": self.label,
        }


def _status(
    session: Session, model: MLModel, version: ModelVersion, today: date
) -> RevalidationStatus:
    return _statuses(session, [(model, version)], today)[0]


def _statuses(
    session: Session, live: list[tuple[MLModel, ModelVersion]], today: date
) -> list[RevalidationStatus]:
    """The status of each (model, version), in a fixed number of queries however many."""
    from core.services.reviews import policy_for

    ids = [version.id or 0 for _model, version in live]
    rounds, approvals = _rounds_of(session, ids), _approvals_of(session, ids)
    months: dict[str, int | None] = {}
    found = []
    for model, version in live:
        if model.risk_tier not in months:
            months[model.risk_tier] = policy_for(
                session, model.risk_tier
            ).fields.revalidation_months
        vid = version.id or 0
        found.append(
            _status_of(
                model,
                version,
                today,
                months[model.risk_tier],
                rounds.get(vid, []),
                approvals.get(vid, []),
            )
        )
    return found


def _status_of(
    model: MLModel,
    version: ModelVersion,
    today: date,
    months: int | None,
    rounds: list[Revalidation],
    approvals: list[tuple[int, datetime]],
) -> RevalidationStatus:
    validated = _validated(version, rounds, approvals).date()
    due = add_months(validated, months) if months else None
    decided = [r for r in rounds if r.status != OPEN]
    last = decided[-1] if decided else None
    failed = last is not None and last.status == FAILED
    current = next(
        (r for r in rounds if r.review_round == version.review_round and r.status == OPEN), None
    )
    return RevalidationStatus(
        model=model.name,
        model_id=model.id or 0,
        version=version.number,
        version_id=version.id or 0,
        risk_tier=model.risk_tier,
        months=months,
        validated_on=validated,
        due_on=due,
        days_left=(due - today).days if due else None,
        open_round=current.review_round if current else None,
        failed=failed,
        finding_id=last.finding_id if failed and last else None,
        link=reviews_link(model.name, version.number),
    )


def _attr(column: Any) -> QueryableAttribute[Any]:
    """A model's column attribute as SQLAlchemy's loader options type it (SQLModel types the
    attributes as their values)."""
    return cast("QueryableAttribute[Any]", column)


def _live(
    session: Session,
    scope: frozenset[int] | None,
    *,
    model_id: int | None = None,
    open_only: bool = False,
) -> list[tuple[MLModel, ModelVersion]]:
    """Models live in production with their live version; only `model_id`'s when given (one
    model's page reads its own row, not every live model's); with `open_only`, only versions
    whose current round is an open revalidation. Only the columns a status, the queue and the
    notice read are loaded (not the cards, schemas and parameters)."""
    stmt = (
        select(MLModel, ModelVersion)
        .options(
            load_only(
                _attr(MLModel.id),
                _attr(MLModel.name),
                _attr(MLModel.team_id),
                _attr(MLModel.owner_id),
                _attr(MLModel.risk_tier),
                _attr(MLModel.archived_at),
            ),
            load_only(
                _attr(ModelVersion.id),
                _attr(ModelVersion.model_id),
                _attr(ModelVersion.number),
                _attr(ModelVersion.state),
                _attr(ModelVersion.review_round),
                _attr(ModelVersion.registered_by_id),
                _attr(ModelVersion.updated_at),
            ),
        )
        .join(Deployment, col(Deployment.model_id) == col(MLModel.id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.version_id))
        .where(
            Deployment.environment == PRODUCTION,
            col(Deployment.live_until).is_(None),
            col(MLModel.archived_at).is_(None),
        )
    )
    if model_id is not None:
        stmt = stmt.where(col(Deployment.model_id) == model_id)
    if open_only:
        stmt = stmt.join(
            Revalidation,
            (col(Revalidation.version_id) == col(ModelVersion.id))
            & (col(Revalidation.review_round) == col(ModelVersion.review_round))
            & (col(Revalidation.status) == OPEN),
        )
    return list(session.exec(scoped(stmt, scope).order_by(col(MLModel.name))).all())


def revalidation_overview(
    db: Database, actor: Principal, *, today: date | None = None
) -> list[RevalidationStatus]:
    """Each version live in production that the actor may see, with its revalidation date;
    overdue and failed first (for Home and Monitoring)."""
    day = today or utcnow().date()
    with read_as(db, actor) as session:
        rows = _statuses(session, _live(session, visible_teams(session, actor)), day)
    return sorted(rows, key=lambda r: (not r.failed, not r.overdue, r.days_left or 10**6, r.model))


def model_revalidation(
    db: Database, actor: Principal, model_name: str, *, today: date | None = None
) -> RevalidationStatus | None:
    """The revalidation status of the model's production version, None when none is live."""
    day = today or utcnow().date()
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        live = _live(session, None, model_id=model.id)
        return _status(session, *live[0], day) if live else None


# --- starting and deciding a round ------------------------------------------------------------


def _is_live(session: Session, version: ModelVersion) -> bool:
    stmt = select(Deployment.id).where(
        Deployment.version_id == version.id,
        Deployment.environment == PRODUCTION,
        col(Deployment.live_until).is_(None),
    )
    return session.exec(stmt).first() is not None


def start_revalidation(
    db: Database, actor: Principal, model_name: str, number: int, reason: str = ""
) -> Revalidation:
    """A validator or compliance officer opens a revalidation round of the live version."""
    why = validation.plain_text(reason, "reason", max_length=500)
    try:
        with unit_of_work(db, actor) as session:
            return _start(session, actor, model_name, number, why)
    except IntegrityError:
        raise Conflict(
            "Someone else started a revalidation of this version at the same moment; reload "
            "to see it."
        ) from None


def _start(
    session: Session, actor: Principal, model_name: str, number: int, why: str
) -> Revalidation:
    from core.services.reviews import _locked_version, _people_who_can

    what = "start a revalidation of {model}"
    model = get_model(session, actor, model_name, permission=Permission.DECIDE, what=what)
    require_person(
        session, actor, Permission.DECIDE, what.format(model=model.name), model_id=model.id
    )
    version = _locked_version(session, model, number)
    if version.state != VersionState.APPROVED or not _is_live(session, version):
        raise InvalidInput(
            f"{model.name} v{version.number} is not live in production, so there is nothing to "
            "revalidate; revalidate the version that is live."
        )
    if open_round(session, version) is not None:
        raise Conflict(
            f"A revalidation of {model.name} v{version.number} (round {version.review_round}) "
            "is already open; decide it first."
        )
    prior = approval_round(session, version)
    version.review_round += 1
    version.row_version += 1
    version.updated_at = utcnow()
    session.add(version)
    row = Revalidation(
        model_id=model.id or 0,
        version_id=version.id or 0,
        review_round=version.review_round,
        prior_round=prior,
        reason=why,
        started_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    deciders = _people_who_can(session, Permission.DECIDE, model.team_id)
    notify(
        session,
        deciders - {actor.user_id, version.registered_by_id},
        "revalidation.due",
        f"Revalidate {model.name} v{version.number} (round {version.review_round})",
        body=why or "A revalidation round of the live version is open: approve or reject it.",
        link=reviews_link(model.name, version.number),
        model_id=model.id,
        version_id=version.id,
    )
    audit.record(
        session,
        actor,
        "revalidation.started",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{actor.name} started revalidation round {version.review_round} of "
        f"{model.name} v{version.number}" + (f": {why}" if why else ""),
        details={"round": version.review_round, "prior_round": prior, "reason": why},
    )
    return row


def decide_round(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    kind: DecisionKind,
    why: str,
) -> Decision:
    """A decision in an open revalidation round (called by reviews.decide, which has checked the
    person, separation of duties and one decision per round)."""
    from core.services.reviews import new_decision, policy_status

    if kind == DecisionKind.REQUEST_CHANGES:
        raise InvalidInput(
            "A revalidation is approved or rejected; raise a finding for what must change "
            "instead of requesting changes."
        )
    row = open_round(session, version)
    assert row is not None
    decision = new_decision(session, refresh(session, actor), model, version, kind, why)
    version.row_version += 1
    session.add(version)
    status = policy_status(session, model, version)
    words = "approved" if kind == DecisionKind.APPROVE else "rejected"
    audit.record(
        session,
        actor,
        f"decision.{kind.value}",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{actor.name} {words} revalidation round {row.review_round} of {model.name} "
        f"v{version.number}" + (f": {why}" if why else ""),
        details={"round": row.review_round, "revalidation": row.id},
    )
    if kind == DecisionKind.REJECT:
        _fail(session, actor, model, version, row, why)
    elif status.satisfied:
        _pass(session, actor, model, version, row)
    return decision


def _pass(
    session: Session, actor: Principal, model: MLModel, version: ModelVersion, row: Revalidation
) -> None:
    row.status, row.decided_at = PASSED, utcnow()
    session.add(row)
    session.flush()
    status = _status(session, model, version, utcnow().date())
    audit.record(
        session,
        actor,
        "revalidation.passed",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{model.name} v{version.number} passed revalidation round {row.review_round}"
        + (f"; next due {status.due_on.isoformat()}" if status.due_on else ""),
        details={"round": row.review_round, "next_due": status.as_dict()["due_on"]},
    )


def _fail(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    row: Revalidation,
    why: str,
) -> None:
    from core.services.reviews import _people_who_can

    owner = session.get(User, model.owner_id)
    assert owner is not None
    finding = new_finding(
        session,
        actor,
        model,
        version,
        severity="high",
        text=f"Revalidation round {row.review_round} failed: {why}",
        owner=owner,
        due_on=utcnow().date() + timedelta(days=FINDING_DAYS),
        source=REVALIDATION,
    )
    row.status, row.decided_at, row.finding_id = FAILED, utcnow(), finding.id
    session.add(row)
    officers = _people_who_can(session, Permission.COMPLIANCE_WORK, model.team_id)
    notify(
        session,
        ({model.owner_id} | officers) - {actor.user_id},
        "revalidation.failed",
        f"{model.name} v{version.number} failed revalidation: it stays live, no new promotion "
        f"until finding #{finding.id} is closed",
        body=why[:300],
        link=reviews_link(model.name, version.number),
        model_id=model.id,
        version_id=version.id,
    )
    audit.record(
        session,
        actor,
        "revalidation.failed",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{model.name} v{version.number} failed revalidation round {row.review_round}; "
        f"it stays live, flagged, and high finding #{finding.id} blocks any new promotion",
        details={"round": row.review_round, "finding_id": finding.id, "reason": why},
    )


# --- rounds as pages and packs see them -------------------------------------------------------


@dataclass(frozen=True)
class RoundView:
    round: int
    status: str
    started_by: str
    started_at: datetime
    decided_at: datetime | None
    reason: str
    finding_id: int | None
    decisions: tuple[tuple[str, str, str], ...]  # reviewer, kind, reason
    signoffs: tuple[tuple[str, str, str], ...]  # printed name, meaning, signed at

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "status": self.status,
            "started_by": self.started_by,
            "started_at": self.started_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "reason": self.reason,
            "finding_id": self.finding_id,
            "decisions": [{"reviewer": r, "kind": k, "reason": w} for r, k, w in self.decisions],
            "signoffs": [{"signer": n, "meaning": m, "signed_at": t} for n, m, t in self.signoffs],
        }


def _round_views(session: Session, version: ModelVersion) -> list[RoundView]:
    rounds = _rounds_of(session, [version.id or 0]).get(version.id or 0, [])
    if not rounds:
        return []
    numbers = [r.review_round for r in rounds]
    decisions = session.exec(
        select(Decision).where(
            Decision.version_id == version.id, col(Decision.review_round).in_(numbers)
        )
    ).all()
    signs = session.exec(
        select(Signoff).where(
            Signoff.version_id == version.id,
            col(Signoff.review_round).in_(numbers),
            Signoff.kind == "signature",
        )
    ).all()
    people = {d.reviewer_id for d in decisions} | {r.started_by_id for r in rounds}
    names = dict(session.exec(select(User.id, User.name).where(col(User.id).in_(people))).all())
    return [
        RoundView(
            round=r.review_round,
            status=r.status,
            started_by=names.get(r.started_by_id, "?"),
            started_at=r.started_at,
            decided_at=r.decided_at,
            reason=r.reason,
            finding_id=r.finding_id,
            decisions=tuple(
                (names.get(d.reviewer_id, "?"), d.kind, d.reason)
                for d in decisions
                if d.review_round == r.review_round
            ),
            signoffs=tuple(
                (s.printed_name, s.meaning, s.signed_at.isoformat())
                for s in signs
                if s.review_round == r.review_round
            ),
        )
        for r in rounds
    ]


def revalidation_rounds(
    db: Database, actor: Principal, model_name: str, number: int
) -> list[RoundView]:
    """Every revalidation round of a version with its own decisions and sign-offs."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        return _round_views(session, get_version(session, model, number))


def revalidation_for_pack(
    session: Session, actor: Principal, version_id: int
) -> dict[str, Any] | None:
    """The version's revalidation date, flag and rounds as plain data for the approval pack;
    None when the actor may not see it."""
    stmt = (
        select(MLModel, ModelVersion)
        .join(ModelVersion, col(ModelVersion.model_id) == col(MLModel.id))
        .where(ModelVersion.id == version_id)
    )
    found = session.exec(scoped(stmt, visible_teams(session, actor))).first()
    if found is None:
        return None
    model, version = found
    status = _status(session, model, version, utcnow().date())
    return status.as_dict() | {
        "live_in_production": _is_live(session, version),
        "rounds": [r.as_dict() for r in _round_views(session, version)],
    }


def open_revalidations(db: Database, actor: Principal) -> list[RevalidationStatus]:
    """Open revalidation rounds the actor may decide and has not decided (the Reviews queue)."""
    with read_as(db, actor) as session:
        me = refresh(session, actor)
        if me.service:
            return []
        day = utcnow().date()
        rows = []
        for model, version in _live(session, visible_teams(session, me), open_only=True):
            if not me.can(Permission.DECIDE, model.team_id):
                continue
            mine = session.exec(
                select(Decision.id).where(
                    Decision.version_id == version.id,
                    Decision.review_round == version.review_round,
                    Decision.reviewer_id == me.user_id,
                )
            ).first()
            if mine is None and version.registered_by_id != me.user_id:
                rows.append(_status(session, model, version, day))
        return rows


# --- the periodic notice ----------------------------------------------------------------------


def notify_due(db: Database, *, now: datetime | None = None) -> int:
    """Tell each live version's owner and the team's compliance officers that revalidation is
    near (NOTICE_DAYS ahead) and when it is due: each notice once per due date."""
    from core.services.reviews import _people_who_can

    today = (now or utcnow()).date()
    sent = 0
    with db.write() as session:
        live = _live(session, None)
        for (model, version), status in zip(live, _statuses(session, live, today), strict=True):
            if status.due_on is None or status.days_left is None:
                continue
            stage = "due" if status.days_left <= 0 else "ahead"
            if status.days_left > NOTICE_DAYS:
                continue
            known = session.exec(
                select(RevalidationNotice.id).where(
                    RevalidationNotice.version_id == version.id,
                    RevalidationNotice.due_on == status.due_on,
                    RevalidationNotice.stage == stage,
                )
            ).first()
            if known is not None:
                continue
            session.add(
                RevalidationNotice(version_id=version.id or 0, due_on=status.due_on, stage=stage)
            )
            officers = _people_who_can(session, Permission.COMPLIANCE_WORK, model.team_id)
            when = status.due_on.isoformat()
            notify(
                session,
                {model.owner_id} | officers,
                "revalidation.due",
                f"{model.name} v{version.number}: revalidation "
                + (f"overdue since {when}" if status.days_left < 0 else f"due {when}"),
                body=f"Approved or last revalidated on {status.validated_on.isoformat()}; the "
                f"{model.risk_tier}-risk policy asks for revalidation every {status.months} "
                "months. A validator or compliance officer starts the round on the Reviews page.",
                link=status.link,
                model_id=model.id,
                version_id=version.id,
            )
            audit.record(
                session,
                SYSTEM,
                "revalidation.notified",
                object_type="version",
                object_id=version.id,
                model_id=model.id,
                summary=f"Told the owner and compliance officers that {model.name} "
                f"v{version.number} is {'due' if stage == 'due' else 'soon due'} for "
                f"revalidation on {when}",
                details={"stage": stage, "due_on": when},
            )
            sent += 1
    return sent
