"""Four eyes on power: a self-grant, an approval-policy change and a lower risk tier wait as a
pending change until another admin confirms it (or refuses it); each step is audited.

The operator at the shell (and the system's own jobs) act alone: they already hold the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import OPERATOR, SYSTEM, Permission, Principal, refresh, require
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import MLModel, PendingChange, Role, User, utcnow
from core.services import read_as, unit_of_work

PENDING, CONFIRMED, REFUSED, WITHDRAWN = "pending", "confirmed", "refused", "withdrawn"
SELF_GRANT, POLICY_UPDATE, RISK_LOWERED = "grant.self", "policy.update", "model.risk_lowered"
METADATA = "model.metadata"
KIND_LABELS = {
    SELF_GRANT: "Role granted to oneself",
    POLICY_UPDATE: "Approval policy change",
    RISK_LOWERED: "Lower risk tier",
    METADATA: "Model setting that can drop a requirement",
}
# Changes a compliance officer of the model's team confirms (a lower tier: or an admin).
COMPLIANCE_CONFIRMS = frozenset({METADATA, RISK_LOWERED})

Apply = Callable[[Session, Principal, Principal, dict[str, Any]], str]
_APPLY: dict[str, Apply] = {}


def applies(kind: str) -> Callable[[Apply], Apply]:
    """Register how a confirmed change of `kind` takes effect (in the confirming transaction)."""

    def register(fn: Apply) -> Apply:
        _APPLY[kind] = fn
        return fn

    return register


def acts_alone(actor: Principal) -> bool:
    """The operator and the system change things directly; people need a second admin."""
    return actor.user_id in (OPERATOR.user_id, SYSTEM.user_id)


def propose(
    session: Session, actor: Principal, kind: str, payload: dict[str, Any], summary: str
) -> PendingChange:
    """Record a change of power that waits for another admin; nothing else changes yet."""
    change = PendingChange(
        kind=kind, payload=payload, summary=summary[:500], proposed_by_id=actor.user_id
    )
    session.add(change)
    session.flush()
    audit.record(
        session,
        actor,
        "change.proposed",
        object_type="pending_change",
        object_id=change.id,
        model_id=payload.get("model_id"),
        summary=f"Proposed, waiting for a second admin: {change.summary}",
        details={"kind": kind, "payload": payload},
    )
    return change


def _pending(session: Session, change_id: int) -> PendingChange:
    change = session.exec(
        select(PendingChange).where(PendingChange.id == change_id).with_for_update()
    ).first()
    if change is None:
        raise NotFound(f"No pending change #{change_id}; reload the Admin page.")
    if change.status != PENDING:
        raise Conflict(f"Change #{change_id} was already {change.status}; reload the Admin page.")
    return change


def confirm(db: Database, actor: Principal, change_id: int) -> PendingChange:
    """Another admin confirms: the change takes effect now, in this transaction."""
    with unit_of_work(db, actor) as session:
        change = _pending(session, change_id)
        _require_decider(session, actor, change, "confirm")
        if change.proposed_by_id == actor.user_id:
            who = (
                "a compliance officer other than you"
                if change.kind == METADATA
                else ("another admin")
            )
            raise InvalidInput(
                f"You proposed change #{change_id}, so {who} must confirm it (four eyes)."
            )
        from core.services import registry, reviews, users, versions  # noqa: F401  (appliers)

        proposer = _proposer(session, change)
        outcome = _APPLY[change.kind](session, proposer, actor, dict(change.payload))
        _decide(session, actor, change, CONFIRMED, "", f"confirmed: {outcome}")
        return change


def refuse(db: Database, actor: Principal, change_id: int, reason: str) -> PendingChange:
    """Another admin refuses the change, or its proposer withdraws it; nothing takes effect."""
    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    with unit_of_work(db, actor) as session:
        change = _pending(session, change_id)
        if change.proposed_by_id != actor.user_id:
            _require_decider(session, actor, change, "refuse")
        status = WITHDRAWN if change.proposed_by_id == actor.user_id else REFUSED
        _decide(session, actor, change, status, why, f"{status}: {why}")
        return change


def _require_decider(session: Session, actor: Principal, change: PendingChange, verb: str) -> None:
    """Who may confirm or refuse: an admin; for a model setting that can drop a requirement, a
    person who is compliance officer of the model's team (a lower tier: either)."""
    if change.kind not in COMPLIANCE_CONFIRMS:
        require(session, actor, Permission.MANAGE_USERS, what=f"{verb} changes of power")
        return
    current = refresh(session, actor)
    model = session.get(MLModel, change.payload.get("model_id"))
    team_id = model.team_id if model else None
    if Role.COMPLIANCE in current.roles(team_id) and not current.service:
        return
    if change.kind == RISK_LOWERED and current.can(Permission.MANAGE_USERS, team_id):
        return
    raise PermissionDenied(
        f"Only a compliance officer of {model.name if model else 'the model'}'s team may "
        f"{verb} change #{change.id} ({KIND_LABELS[change.kind].lower()}); ask one to look at "
        "it on the Models page."
    )


def _decide(
    session: Session, actor: Principal, change: PendingChange, status: str, why: str, text: str
) -> None:
    change.status, change.decided_by_id, change.decided_at = status, actor.user_id, utcnow()
    change.decision_reason = why
    session.add(change)
    audit.record(
        session,
        actor,
        f"change.{status}",
        object_type="pending_change",
        object_id=change.id,
        model_id=change.payload.get("model_id"),
        summary=f"Change #{change.id} ({change.summary}) {text}"[:2000],
        details={"kind": change.kind, "proposed_by": change.proposed_by_id, "reason": why},
    )


def _proposer(session: Session, change: PendingChange) -> Principal:
    user = session.get(User, change.proposed_by_id)
    if user is None:
        raise NotFound("The person who proposed this change no longer exists.")
    return Principal(user.id or 0, user.email, user.name)


@dataclass(frozen=True)
class ChangeView:
    id: int
    kind: str
    summary: str
    status: str
    proposed_by: str
    proposed_at: datetime
    decided_by: str
    reason: str


def changes(db: Database, actor: Principal, *, pending_only: bool = False) -> list[ChangeView]:
    """Changes of power, newest first (admins only)."""
    with read_as(db, actor) as session:
        require(session, actor, Permission.MANAGE_USERS, what="see changes of power")
        stmt = select(PendingChange)
        if pending_only:
            stmt = stmt.where(PendingChange.status == PENDING)
        rows = session.exec(stmt.order_by(col(PendingChange.id).desc()).limit(200)).all()
        return _views(session, list(rows))


def _views(session: Session, rows: list[PendingChange]) -> list[ChangeView]:
    ids = {r.proposed_by_id for r in rows} | {r.decided_by_id for r in rows if r.decided_by_id}
    names = {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(ids)))}
    return [
        ChangeView(
            r.id or 0,
            KIND_LABELS.get(r.kind, r.kind),
            r.summary,
            r.status,
            names.get(r.proposed_by_id, "?"),
            r.proposed_at,
            names.get(r.decided_by_id, "") if r.decided_by_id else "",
            r.decision_reason,
        )
        for r in rows
    ]


def pending_for_model(session: Session, model_id: int) -> list[ChangeView]:
    """Changes of a model's settings waiting for confirmation (the caller checked that the
    reader sees the model)."""
    rows = session.exec(
        select(PendingChange)
        .where(PendingChange.status == PENDING)
        .where(col(PendingChange.kind).in_(sorted(COMPLIANCE_CONFIRMS)))
        .order_by(col(PendingChange.id))
    ).all()
    return _views(session, [r for r in rows if r.payload.get("model_id") == model_id])
