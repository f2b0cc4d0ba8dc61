"""Validation findings: raised by a reviewer or validator on a version, answered by their owner
with a remediation note and evidence, closed or re-opened by a reviewer; open findings of the
policy's blocking severity keep the version out of production."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core import audit, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import SYSTEM, Permission, Principal, refresh, require, require_person, visible_teams
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    Finding,
    FindingEvent,
    MLModel,
    ModelVersion,
    RoleGrant,
    User,
    utcnow,
)
from core.policy import SEVERITIES
from core.services import read_as, unit_of_work
from core.services.compliance.checklists import check_document
from core.services.portfolio import notify
from core.services.registry import get_model, get_version, scoped

OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
STATUSES = (OPEN, ANSWERED, CLOSED)
UNRESOLVED = (OPEN, ANSWERED)  # an answered finding stays open until a reviewer closes it
REVALIDATION = "revalidation"
MAX_DUE_DAYS = 3660


def severity_rank(severity: str) -> int:
    """low 1, medium 2, high 3; anything else (the policy's 'none') 99: never reached."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 99


def finding_link(model_name: str, number: int, finding_id: int) -> str:
    """The Models page on the version's Findings tab, with the finding open."""
    return (
        f"pages/1_Models.py?model={model_name}&version={number}&tab=findings&finding={finding_id}"
    )


@dataclass(frozen=True)
class EventView:
    id: int
    action: str
    actor: str
    note: str
    status_after: str
    filename: str
    evidence_sha256: str | None
    created_at: datetime


@dataclass(frozen=True)
class FindingView:
    id: int
    model: str
    version: int
    severity: str
    text: str
    anchor: str
    owner_id: int
    owner: str
    raised_by_id: int
    raised_by: str
    due_on: date
    status: str
    source: str
    created_at: datetime
    closed_at: datetime | None
    row_version: int
    overdue: bool
    link: str
    events: tuple[EventView, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the API and the approval pack."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "severity": self.severity,
            "text": self.text,
            "anchor": self.anchor,
            "owner": self.owner,
            "raised_by": self.raised_by,
            "due_on": self.due_on.isoformat(),
            "status": self.status,
            "source": self.source,
            "overdue": self.overdue,
            "created_at": self.created_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "row_version": self.row_version,
            "link": self.link,
            "history": [
                {
                    "action": e.action,
                    "actor": e.actor,
                    "note": e.note,
                    "status_after": e.status_after,
                    "evidence_file": e.filename,
                    "evidence_sha256": e.evidence_sha256,
                    "at": e.created_at.isoformat(),
                }
                for e in self.events
            ],
        }


# --- checks -----------------------------------------------------------------------------------


def _severity(value: str) -> str:
    severity = (value or "").strip().lower()
    if severity not in SEVERITIES:
        raise InvalidInput(
            f"Severity {value!r} is not one of {', '.join(SEVERITIES)}; choose one of them."
        )
    return severity


def _due(value: date | str, today: date) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"Due date {value!r} is not a date; write it as YYYY-MM-DD."
            ) from None
    if isinstance(value, datetime):
        value = value.date()
    if value < today:
        raise InvalidInput(
            f"Due date {value.isoformat()} is in the past; choose today or a later day."
        )
    if value > today + timedelta(days=MAX_DUE_DAYS):
        raise InvalidInput(f"Due date {value.isoformat()} is more than ten years away.")
    return value


def team_people(session: Session, team_id: int) -> set[int]:
    """Active people (not service accounts) holding a role in the team or globally."""
    grants = session.exec(
        select(RoleGrant.user_id).where(
            (col(RoleGrant.team_id).is_(None)) | (RoleGrant.team_id == team_id)
        )
    ).all()
    if not grants:
        return set()
    users = session.exec(
        select(User.id).where(
            col(User.id).in_(sorted(set(grants))), col(User.is_active), ~col(User.is_service)
        )
    ).all()
    return {u for u in users if u is not None}


def _owner(session: Session, model: MLModel, owner: int | str) -> User:
    if isinstance(owner, str) and not owner.strip().isdigit():
        user = session.exec(select(User).where(User.email == owner.strip().lower())).first()
    else:
        user = session.get(User, int(owner))
    if user is None or user.id not in team_people(session, model.team_id):
        raise InvalidInput(
            f"The owner {owner!r} is not a person of {model.name}'s team; choose someone who "
            "works on the model."
        )
    return user


def _deciders_check(session: Session, actor: Principal, model: MLModel, what: str) -> None:
    require(session, actor, Permission.DECIDE, team_id=model.team_id, what=what, model_id=model.id)
    require_person(session, actor, Permission.DECIDE, what, model_id=model.id)


def _event(
    session: Session,
    finding: Finding,
    actor: Principal,
    action: str,
    note: str = "",
    *,
    blob: Any = None,
    filename: str = "",
) -> FindingEvent:
    row = FindingEvent(
        finding_id=finding.id or 0,
        actor_id=actor.user_id or None,
        action=action,
        note=note,
        status_after=finding.status,
        evidence_key=blob.key if blob else None,
        evidence_sha256=blob.sha256 if blob else None,
        filename=filename if blob else "",
    )
    session.add(row)
    return row


def new_finding(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    *,
    severity: str,
    text: str,
    owner: User,
    due_on: date,
    anchor: str = "",
    source: str = "review",
) -> Finding:
    """Insert a finding, its first event, the owner's inbox item and the audit event."""
    finding = Finding(
        model_id=model.id or 0,
        version_id=version.id or 0,
        severity=severity,
        text=text,
        anchor=anchor,
        owner_id=owner.id or 0,
        raised_by_id=actor.user_id,
        due_on=due_on,
        source=source,
    )
    session.add(finding)
    session.flush()
    _event(session, finding, actor, "raised", text)
    link = finding_link(model.name, version.number, finding.id or 0)
    notify(
        session,
        {owner.id or 0} - {actor.user_id},
        "finding.raised",
        f"{severity.capitalize()} finding on {model.name} v{version.number}: due "
        f"{due_on.isoformat()}",
        body=text[:300],
        link=link,
        model_id=model.id,
        version_id=version.id,
    )
    audit.record(
        session,
        actor,
        "finding.raised",
        object_type="finding",
        object_id=finding.id,
        model_id=model.id,
        summary=f"{actor.name} raised a {severity} finding #{finding.id} on {model.name} "
        f"v{version.number} for {owner.name}, due {due_on.isoformat()}"
        + (f" (about {anchor})" if anchor else ""),
        details={
            "version": version.number,
            "severity": severity,
            "owner_id": owner.id,
            "due_on": due_on.isoformat(),
            "anchor": anchor,
            "source": source,
            "text": text,
        },
    )
    return finding


# --- changes ----------------------------------------------------------------------------------


def raise_finding(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    *,
    severity: str,
    text: str,
    owner: int | str,
    due_on: date | str,
    anchor: str = "",
) -> Finding:
    """A reviewer or validator raises a finding on a version for a person of its team."""
    level = _severity(severity)
    body = validation.plain_text(text, "finding text", max_length=5000, required=True)
    pin = validation.plain_text(anchor, "pinned metric or chart", max_length=120)
    due = _due(due_on, utcnow().date())
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.DECIDE,
            what="raise findings on {model}",
        )
        _deciders_check(session, actor, model, f"raise findings on {model.name}")
        version = get_version(session, model, number)
        return new_finding(
            session,
            actor,
            model,
            version,
            severity=level,
            text=body,
            owner=_owner(session, model, owner),
            due_on=due,
            anchor=pin,
        )


def _visible(session: Session, actor: Principal, finding_id: int) -> Finding:
    """The finding if the actor may see its model; another team's answers as absent."""
    stmt = (
        select(Finding)
        .join(MLModel, col(MLModel.id) == col(Finding.model_id))
        .where(Finding.id == finding_id)
    )
    found = session.exec(scoped(stmt, visible_teams(session, actor))).first()
    if found is None:
        raise NotFound(f"No finding #{finding_id} is visible to you. Check the number.")
    return found


def _locked(session: Session, actor: Principal, finding_id: int) -> tuple[Finding, MLModel]:
    """The finding, locked, if the actor may see its model; else NotFound."""
    _visible(session, actor, finding_id)
    finding = session.exec(
        select(Finding)
        .where(Finding.id == finding_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    model = session.get(MLModel, finding.model_id)
    assert model is not None
    return finding, model


def _expect(finding: Finding, row_version: int | None) -> None:
    if row_version is not None and finding.row_version != row_version:
        raise Conflict(
            f"Finding #{finding.id} changed while you were looking at it. Reload to see its "
            "current state, then try again."
        )


def _touch(finding: Finding, status: str) -> None:
    finding.status = status
    finding.updated_at = utcnow()
    finding.row_version += 1


def answer_finding(
    db: Database,
    actor: Principal,
    finding_id: int,
    note: str,
    *,
    document: bytes | None = None,
    filename: str = "",
    row_version: int | None = None,
    store: ArtifactStore | None = None,
) -> Finding:
    """The owner answers with a remediation note and, optionally, an evidence document."""
    text = validation.plain_text(note, "remediation note", max_length=5000, required=True)
    name = validation.plain_text(filename, "file name", max_length=255)
    if document is not None:
        check_document(document, name)
    artifacts = store or default_store()
    with read_as(db, actor) as session:  # refuse before anything is stored
        finding, _ = _locked(session, actor, finding_id)
        _owner_only(actor, finding)
    blob = artifacts.put(document, kind="documents") if document else None
    try:
        with unit_of_work(db, actor) as session:
            finding, model = _locked(session, actor, finding_id)
            _owner_only(actor, finding)
            _expect(finding, row_version)
            if finding.status == CLOSED:
                raise InvalidInput(
                    f"Finding #{finding.id} is closed; ask a reviewer to re-open it before "
                    "answering again."
                )
            _touch(finding, ANSWERED)
            session.add(finding)
            event = _event(session, finding, actor, "answered", text, blob=blob, filename=name)
            session.flush()
            notify(
                session,
                {finding.raised_by_id} - {actor.user_id},
                "finding.answered",
                f"{actor.name} answered finding #{finding.id} on {model.name}",
                body=text[:300],
                link=finding_link(model.name, _number(session, finding), finding.id or 0),
                model_id=model.id,
                version_id=finding.version_id,
            )
            audit.record(
                session,
                actor,
                "finding.answered",
                object_type="finding",
                object_id=finding.id,
                model_id=model.id,
                summary=f"{actor.name} answered finding #{finding.id} on {model.name}"
                + (f" with evidence {name}" if blob else ""),
                details={
                    "note": text,
                    "event_id": event.id,
                    "evidence_sha256": blob.sha256 if blob else None,
                },
            )
            return finding
    except BaseException:
        if blob is not None:
            artifacts.delete(blob.key)
        raise


def _number(session: Session, finding: Finding) -> int:
    version = session.get(ModelVersion, finding.version_id)
    return version.number if version else 0


def _owner_only(actor: Principal, finding: Finding) -> None:
    if finding.owner_id != actor.user_id:
        raise InvalidInput(
            f"Only the owner of finding #{finding.id} answers it; ask them, or ask a reviewer to "
            "change its owner by raising a new finding."
        )


def close_finding(
    db: Database,
    actor: Principal,
    finding_id: int,
    note: str = "",
    *,
    row_version: int | None = None,
) -> Finding:
    """The raiser or another reviewer/validator of the team closes a finding."""
    return _set_status(db, actor, finding_id, CLOSED, note, row_version)


def reopen_finding(
    db: Database, actor: Principal, finding_id: int, note: str, *, row_version: int | None = None
) -> Finding:
    """The raiser or another reviewer/validator re-opens a closed or answered finding."""
    return _set_status(db, actor, finding_id, OPEN, note, row_version)


def _set_status(
    db: Database,
    actor: Principal,
    finding_id: int,
    status: str,
    note: str,
    row_version: int | None,
) -> Finding:
    verb = "close" if status == CLOSED else "re-open"
    text = validation.plain_text(note, "reason", max_length=5000, required=status == OPEN)
    with unit_of_work(db, actor) as session:
        # refused the same whether or not the finding exists, then again in its model's team
        require(session, actor, Permission.DECIDE, what=f"{verb} findings", anywhere=True)
        finding, model = _locked(session, actor, finding_id)
        _deciders_check(session, actor, model, f"{verb} findings on {model.name}")
        _expect(finding, row_version)
        if finding.owner_id == actor.user_id and finding.raised_by_id != actor.user_id:
            raise InvalidInput(
                f"You own finding #{finding.id}, so you cannot {verb} it yourself (separation "
                "of duties); ask the reviewer who raised it or another validator."
            )
        if status == CLOSED and finding.status == CLOSED:
            raise Conflict(f"Finding #{finding.id} is already closed.")
        if status == OPEN and finding.status == OPEN:
            raise Conflict(f"Finding #{finding.id} is already open.")
        before = finding.status
        _touch(finding, status)
        finding.closed_at = utcnow() if status == CLOSED else None
        session.add(finding)
        _event(session, finding, actor, "closed" if status == CLOSED else "reopened", text)
        version = session.get(ModelVersion, finding.version_id)
        if status == OPEN:
            notify(
                session,
                {finding.owner_id} - {actor.user_id},
                "finding.raised",
                f"{actor.name} re-opened finding #{finding.id} on {model.name}",
                body=text[:300],
                link=finding_link(model.name, version.number if version else 0, finding.id or 0),
                model_id=model.id,
                version_id=finding.version_id,
            )
        audit.record(
            session,
            actor,
            "finding.closed" if status == CLOSED else "finding.reopened",
            object_type="finding",
            object_id=finding.id,
            model_id=model.id,
            summary=f"{actor.name} {'closed' if status == CLOSED else 're-opened'} "
            f"{finding.severity} finding #{finding.id} on {model.name} "
            f"v{version.number if version else '?'}" + (f": {text}" if text else ""),
            details={"before": before, "after": status, "note": text},
        )
        return finding


# --- reads ------------------------------------------------------------------------------------


def _views(
    session: Session, rows: list[Finding], *, with_events: bool, today: date | None = None
) -> list[FindingView]:
    if not rows:
        return []
    day = today or utcnow().date()
    models = {
        m.id: m.name
        for m in session.exec(
            select(MLModel).where(col(MLModel.id).in_({f.model_id for f in rows}))
        )
    }
    numbers = {
        v.id: v.number
        for v in session.exec(
            select(ModelVersion).where(col(ModelVersion.id).in_({f.version_id for f in rows}))
        )
    }
    events: dict[int, list[FindingEvent]] = {}
    if with_events:
        for e in session.exec(
            select(FindingEvent)
            .where(col(FindingEvent.finding_id).in_([f.id for f in rows]))
            .order_by(col(FindingEvent.id))
        ):
            events.setdefault(e.finding_id, []).append(e)
    people = {f.owner_id for f in rows} | {f.raised_by_id for f in rows}
    people |= {e.actor_id for es in events.values() for e in es if e.actor_id}
    names = dict(session.exec(select(User.id, User.name).where(col(User.id).in_(people))).all())
    return [
        FindingView(
            id=f.id or 0,
            model=models.get(f.model_id, "?"),
            version=numbers.get(f.version_id, 0),
            severity=f.severity,
            text=f.text,
            anchor=f.anchor,
            owner_id=f.owner_id,
            owner=names.get(f.owner_id, "?"),
            raised_by_id=f.raised_by_id,
            raised_by=names.get(f.raised_by_id, "?"),
            due_on=f.due_on,
            status=f.status,
            source=f.source,
            created_at=f.created_at,
            closed_at=f.closed_at,
            row_version=f.row_version,
            overdue=f.status in UNRESOLVED and f.due_on < day,
            link=finding_link(models.get(f.model_id, "?"), numbers.get(f.version_id, 0), f.id or 0),
            events=tuple(
                EventView(
                    e.id or 0,
                    e.action,
                    names.get(e.actor_id, "Quorum") if e.actor_id else "Quorum",
                    e.note,
                    e.status_after,
                    e.filename,
                    e.evidence_sha256,
                    e.created_at,
                )
                for e in events.get(f.id or 0, [])
            ),
        )
        for f in rows
    ]


def findings(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int | None = None,
    *,
    status: str | None = None,
) -> list[FindingView]:
    """Findings of a model (or one version), newest first, each with its history."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"Status {status!r} is not one of {', '.join(STATUSES)}.")
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        stmt = select(Finding).where(Finding.model_id == model.id)
        if number is not None:
            stmt = stmt.where(Finding.version_id == get_version(session, model, number).id)
        if status is not None:
            stmt = stmt.where(Finding.status == status)
        rows = list(session.exec(stmt.order_by(col(Finding.id).desc())))
        return _views(session, rows, with_events=True)


def finding(db: Database, actor: Principal, finding_id: int) -> FindingView:
    """One finding with its history; another team's answers as absent."""
    with read_as(db, actor) as session:
        return _views(session, [_visible(session, actor, finding_id)], with_events=True)[0]


def my_findings(db: Database, actor: Principal) -> list[FindingView]:
    """Unresolved findings I own, soonest due first (for Home)."""
    with read_as(db, actor) as session:
        stmt = (
            select(Finding)
            .join(MLModel, col(MLModel.id) == col(Finding.model_id))
            .where(Finding.owner_id == actor.user_id, col(Finding.status).in_(UNRESOLVED))
        )
        rows = list(
            session.exec(scoped(stmt, visible_teams(session, actor)).order_by(col(Finding.due_on)))
        )
        return _views(session, rows, with_events=False)


def findings_for_pack(session: Session, actor: Principal, version_id: int) -> list[dict[str, Any]]:
    """Every finding of the version with its full history, as plain data for the approval pack;
    [] when the actor may not see the version's model."""
    current = refresh(session, actor)
    stmt = (
        select(Finding)
        .join(MLModel, col(MLModel.id) == col(Finding.model_id))
        .where(Finding.version_id == version_id)
    )
    rows = list(
        session.exec(scoped(stmt, visible_teams(session, current)).order_by(col(Finding.id)))
    )
    return [v.as_dict() for v in _views(session, rows, with_events=True)]


def possible_owners(db: Database, actor: Principal, model_name: str) -> list[tuple[int, str]]:
    """The people who may own a finding on the model: persons of its team, by name."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        ids = team_people(session, model.team_id)
        if not ids:
            return []
        rows = session.exec(select(User.id, User.name).where(col(User.id).in_(sorted(ids))))
        return sorted(((i or 0, n) for i, n in rows.all()), key=lambda r: r[1])


# --- the gate ---------------------------------------------------------------------------------


def blocking_findings(session: Session, model: MLModel, version: ModelVersion) -> list[str]:
    """One line per unresolved finding that keeps the version out of production: those at or
    above the policy's blocking severity, and always those a failed revalidation opened."""
    from core.services.reviews import policy_for

    threshold = severity_rank(policy_for(session, model.risk_tier).fields.blocking_finding_severity)
    rows = session.exec(
        select(Finding)
        .where(Finding.version_id == version.id, col(Finding.status).in_(UNRESOLVED))
        .order_by(col(Finding.id))
    ).all()
    return [
        f"open {f.severity} finding #{f.id}"
        + (" from a failed revalidation" if f.source == REVALIDATION else "")
        + f": {f.text[:120]} (close it first: {finding_link(model.name, version.number, f.id or 0)})"
        for f in rows
        if severity_rank(f.severity) >= threshold or f.source == REVALIDATION
    ]


def failed_revalidation(session: Session, version: ModelVersion) -> list[int]:
    """Ids of the unresolved findings a failed revalidation of this version opened: while any
    is open the version goes live again neither by promotion nor by rollback."""
    rows = session.exec(
        select(Finding.id).where(
            Finding.version_id == version.id,
            Finding.source == REVALIDATION,
            col(Finding.status).in_(UNRESOLVED),
        )
    ).all()
    return [int(i or 0) for i in rows]


# --- the periodic reminder --------------------------------------------------------------------


def remind_overdue(db: Database, *, now: datetime | None = None) -> int:
    """Inbox items to owners of overdue findings: at most one per finding per day."""
    today = (now or utcnow()).date()
    sent = 0
    with db.write() as session:
        rows = session.exec(
            select(Finding)
            .where(col(Finding.status).in_(UNRESOLVED), col(Finding.due_on) < today)
            .where(
                col(Finding.last_reminded_on).is_(None) | (col(Finding.last_reminded_on) < today)
            )
            .with_for_update()
        ).all()
        for f in rows:
            model = session.get(MLModel, f.model_id)
            version = session.get(ModelVersion, f.version_id)
            assert model is not None and version is not None
            f.last_reminded_on = today
            session.add(f)
            late = (today - f.due_on).days
            notify(
                session,
                {f.owner_id},
                "finding.due",
                f"Finding #{f.id} on {model.name} v{version.number} is {late} days overdue",
                body=f"{f.severity.capitalize()}: {f.text[:300]}. Answer it with a remediation "
                "note and evidence.",
                link=finding_link(model.name, version.number, f.id or 0),
                model_id=model.id,
                version_id=version.id,
            )
            audit.record(
                session,
                SYSTEM,
                "finding.reminded",
                object_type="finding",
                object_id=f.id,
                model_id=model.id,
                summary=f"Reminded the owner that finding #{f.id} on {model.name} "
                f"v{version.number} was due on {f.due_on.isoformat()}",
            )
            sent += 1
    return sent
