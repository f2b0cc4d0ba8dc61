"""Promotion and rollback: one live version per model and environment, history kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import Permission, Principal, require_person
from core.config import get_settings, known_environment
from core.db import Database
from core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from core.models import (
    Decision,
    DecisionKind,
    Deployment,
    MLModel,
    ModelVersion,
    User,
    VersionState,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.monitoring.incidents import team_members
from core.services.portfolio import notify
from core.services.registry import get_model, get_version, lock_model
from core.services.reviews import policy_for, policy_status
from core.workflow import Action, allowed, next_state

PRODUCTION = "production"
STAGING = "staging"


def _environment(name: str) -> str:
    return known_environment(name)


def _live(session: Session, model_id: int, env: str) -> Deployment | None:
    return session.exec(
        select(Deployment).where(
            Deployment.model_id == model_id,
            Deployment.environment == env,
            col(Deployment.live_until).is_(None),
        )
    ).first()


def state_blocker(session: Session, model: MLModel, version: ModelVersion) -> str | None:
    """Why a version can never be deployed: archived, or rejected (naming who rejected it and
    why); None for any other state."""
    if version.state == VersionState.ARCHIVED:
        return f"{model.name} v{version.number} is archived, so it can no longer be deployed."
    if version.state != VersionState.REJECTED:
        return None  # on its way: the gate lists what it still needs
    rejection = session.exec(
        select(Decision, User.name)
        .join(User, col(User.id) == Decision.reviewer_id)
        .where(Decision.version_id == version.id, Decision.kind == DecisionKind.REJECT)
        .order_by(col(Decision.id).desc())
    ).first()
    by = f" by {rejection[1]}" if rejection else ""
    why = f" ({rejection[0].reason})" if rejection and rejection[0].reason else ""
    return (
        f"{model.name} v{version.number} was rejected{by}{why}, so it can never be deployed; "
        "register a new version with the changes."
    )


def production_blockers(session: Session, model: MLModel, version: ModelVersion) -> list[str]:
    """Everything still missing before this version may go to production, in plain words."""
    refused = state_blocker(session, model, version)
    if refused is not None:
        return [refused]
    from core.services.revalidation import approval_round

    missing = []
    status = policy_status(session, model, version, review_round=approval_round(session, version))
    if not status.satisfied:
        missing += [f"approval policy: {line}" for line in status.explain()]
    judged = policy_for(session, model.risk_tier)
    if judged.fields.staging_first and not _was_live(session, version, STAGING):
        missing.append(
            f"the {judged.label} requires v{version.number} to be live in staging before production"
        )
    from core.services.compliance import production_gate

    return missing + production_gate(session, model, version)


def _was_live(session: Session, version: ModelVersion, env: str) -> bool:
    stmt = select(Deployment.id).where(
        Deployment.version_id == version.id, Deployment.environment == env
    )
    return session.exec(stmt.limit(1)).first() is not None


def gate_record(
    session: Session, model: MLModel, version: ModelVersion, env: str, blockers: list[str]
) -> dict[str, Any]:
    """What a deployment stores: the gate's verdict and the policy version it was judged by."""
    judged = policy_for(session, model.risk_tier)
    return {
        "passed": not blockers,
        "basis": "promotion",
        "environment": env,
        "version_state": version.state,
        "artifact_sha256": version.artifact_sha256,
        "policy_version": judged.version,
        "policy_version_id": judged.version_id,
        "judged_at": utcnow().isoformat(),
        "blockers": blockers,
    }


def promote(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    environment: str,
    reason: str = "",
) -> Deployment:
    env = _environment(environment)
    why = validation.plain_text(reason, "reason", max_length=500)
    try:
        with unit_of_work(db, actor) as session:
            return _promote(session, actor, model_name, number, env, why)
    except IntegrityError:
        raise Conflict(
            "Someone else changed what is live in this environment at the same moment. "
            "Reload the page to see what is live now, then try again."
        ) from None


def _promote(
    session: Session, actor: Principal, model_name: str, number: int, env: str, why: str
) -> Deployment:
    model = get_model(
        session,
        actor,
        model_name,
        permission=Permission.DEPLOY,
        what="deploy {model}",
    )
    if env == PRODUCTION:
        require_person(
            session, actor, Permission.DEPLOY, f"in production ({model.name})", model_id=model.id
        )
    lock_model(session, model.id or 0)
    version = get_version(session, model, number)
    refused = state_blocker(session, model, version)
    if refused is not None:
        raise InvalidTransition(refused)
    next_state(version.state, Action.DEPLOY)
    blockers = production_blockers(session, model, version) if env == PRODUCTION else []
    if blockers:
        raise InvalidInput(
            f"{model.name} v{version.number} cannot go to production yet.", details=blockers
        )
    current = _live(session, model.id or 0, env)
    if current is not None and current.version_id == version.id:
        raise Conflict(f"{model.name} v{version.number} is already live in {env}.")
    gate = gate_record(session, model, version, env, blockers)
    return _go_live(session, actor, model, version, env, "promote", why, current, gate)


def _go_live(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    env: str,
    action: str,
    why: str,
    current: Deployment | None,
    gate: dict[str, Any],
) -> Deployment:
    now = utcnow()
    if current is not None:
        current.live_until = now
        session.add(current)
        session.flush()
    deployment = Deployment(
        model_id=model.id or 0,
        version_id=version.id or 0,
        environment=env,
        action=action,
        reason=why,
        actor_id=actor.user_id,
        live_from=now,
        gate=gate,
    )
    session.add(deployment)
    session.flush()
    previous = ""
    if current is not None:
        current.replaced_by_id = deployment.id
        session.add(current)
        replaced = session.get(ModelVersion, current.version_id)
        previous = f", replacing v{replaced.number}" if replaced else ""
    verb = "promoted to" if action == "promote" else "rolled back in"
    # the inbox rows before the audit event: its chain lock must be the transaction's last
    people = (team_members(session, model.team_id) | {model.owner_id}) - {actor.user_id}
    notify(
        session,
        people,
        "deployment.promoted" if action == "promote" else "deployment.rolled_back",
        f"{model.name} v{version.number} {verb} {env}{previous}",
        body=why,
        link=f"pages/4_Deployments.py?model={model.name}",
        model_id=model.id,
        version_id=version.id,
    )
    session.flush()
    audit.record(
        session,
        actor,
        f"deployment.{action}",
        object_type="deployment",
        object_id=deployment.id,
        model_id=model.id,
        summary=f"{model.name} v{version.number} {verb} {env}{previous}"
        + (f": {why}" if why else ""),
        details={
            "environment": env,
            "version": version.number,
            "replaced_deployment": current.id if current else None,
            "gate": gate,
        },
    )
    return deployment


def rollback(
    db: Database, actor: Principal, model_name: str, environment: str, reason: str
) -> Deployment:
    env = _environment(environment)
    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    try:
        with unit_of_work(db, actor) as session:
            model = get_model(
                session,
                actor,
                model_name,
                permission=Permission.DEPLOY,
                what="roll back {model}",
            )
            if env == PRODUCTION:
                require_person(
                    session,
                    actor,
                    Permission.DEPLOY,
                    f"roll back {model.name} in production",
                    model_id=model.id,
                )
            lock_model(session, model.id or 0)
            current = _live(session, model.id or 0, env)
            if current is None:
                raise InvalidInput(
                    f"Nothing of {model.name} is live in {env}; nothing to roll back."
                )
            previous = _previous_version(session, current)
            if previous is None:
                raise InvalidInput(
                    f"{model.name} has no earlier version that was live in {env}; promote "
                    "another approved version instead."
                )
            gate = _restorable(session, model, previous, env)
            return _go_live(session, actor, model, previous, env, "rollback", why, current, gate)
    except IntegrityError:
        raise Conflict(
            "Someone else changed what is live at the same moment. Reload and try again."
        ) from None


def _restorable(
    session: Session, model: MLModel, version: ModelVersion, env: str
) -> dict[str, Any]:
    """A rollback restores only an approved version that passed the gate when it was last live
    here, judged as the gate stood then: a sign-off that has expired since does not block an
    incident response, but an archived or rejected version never goes live again."""
    if not allowed(version.state, Action.DEPLOY):
        raise InvalidTransition(
            f"Cannot roll back {model.name} in {env} to v{version.number}: it is "
            f"{version.state.replace('_', ' ')}, and archived or rejected versions never go "
            "live again. Promote an approved version instead."
        )
    from core.services import findings

    failed = findings.failed_revalidation(session, version) if env == PRODUCTION else []
    if failed:
        raise InvalidInput(
            f"Cannot roll back {model.name} in production to v{version.number}: it failed "
            f"revalidation after it was last live, and finding #{failed[0]} is still open. "
            "Close the finding with evidence first, or promote another approved version.",
            details=[findings.finding_link(model.name, version.number, i) for i in failed],
        )
    last = session.exec(
        select(Deployment)
        .where(Deployment.version_id == version.id, Deployment.environment == env)
        .order_by(col(Deployment.live_from).desc(), col(Deployment.id).desc())
    ).first()
    earlier = dict(last.gate) if last is not None else {}
    if not earlier:  # live before gates were recorded: judge it by the gate in force now
        blockers = production_blockers(session, model, version) if env == PRODUCTION else []
        earlier = gate_record(session, model, version, env, blockers)
    if not earlier.get("passed") or earlier.get("artifact_sha256", version.artifact_sha256) != (
        version.artifact_sha256
    ):
        raise InvalidInput(
            f"Cannot roll back {model.name} in {env} to v{version.number}: it did not pass the "
            "gate when it was last live there. Promote a version that passes it now instead.",
            details=[str(b) for b in earlier.get("blockers", [])][:20],
        )
    return earlier | {
        "basis": "rollback",
        "restored_from_deployment": last.id if last is not None else None,
        "restored_at": utcnow().isoformat(),
    }


def rollback_target(
    db: Database, actor: Principal, model_name: str, environment: str
) -> int | None:
    """The version number a rollback in `environment` would restore now, or None when nothing
    is live there or nothing earlier was."""
    env = _environment(environment)
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        current = _live(session, model.id or 0, env)
        previous = _previous_version(session, current) if current is not None else None
        return previous.number if previous is not None else None


def _previous_version(session: Session, current: Deployment) -> ModelVersion | None:
    """The version live before the current one: promotions stack up, rollbacks pop, so a
    second rollback goes further back instead of returning to a rolled-back version."""
    rows = session.exec(
        select(Deployment)
        .where(
            Deployment.model_id == current.model_id,
            Deployment.environment == current.environment,
            col(Deployment.live_from) <= current.live_from,
        )
        .order_by(col(Deployment.live_from), col(Deployment.id))
    ).all()
    stack: list[int] = []
    for deployment in rows:
        if deployment.action == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != deployment.version_id:
            stack.append(deployment.version_id)
    earlier = [v for v in stack[:-1] if v != current.version_id]
    return session.get(ModelVersion, earlier[-1]) if earlier else None


@dataclass(frozen=True)
class HistoryRow:
    environment: str
    version: int
    action: str
    actor: str
    reason: str
    live_from: datetime
    live_until: datetime | None


def history(
    db: Database, actor: Principal, model_name: str, environment: str | None = None
) -> list[HistoryRow]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        stmt = select(Deployment).where(Deployment.model_id == model.id)
        if environment:
            stmt = stmt.where(Deployment.environment == _environment(environment))
        rows = session.exec(
            stmt.order_by(col(Deployment.live_from).desc(), col(Deployment.id).desc())
        ).all()
        numbers = {
            v.id: v.number
            for v in session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id))
        }
        names = {u.id: u.name for u in session.exec(select(User))}
        return [
            HistoryRow(
                d.environment,
                numbers.get(d.version_id, 0),
                d.action,
                names.get(d.actor_id, "?"),
                d.reason,
                d.live_from,
                d.live_until,
            )
            for d in rows
        ]


def live_at(
    db: Database, actor: Principal, model_name: str, environment: str, when: datetime
) -> int | None:
    """The version number that was live in `environment` at `when`, or None."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        row = session.exec(
            select(Deployment)
            .where(
                Deployment.model_id == model.id,
                Deployment.environment == _environment(environment),
                col(Deployment.live_from) <= when,
                (col(Deployment.live_until).is_(None)) | (col(Deployment.live_until) > when),
            )
            .order_by(col(Deployment.live_from).desc())
        ).first()
        if row is None:
            return None
        version = session.get(ModelVersion, row.version_id)
        if version is None:
            raise NotFound("A deployment points at a version that does not exist.")
        return version.number


def status(db: Database, actor: Principal, model_name: str) -> dict[str, int | None]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        result: dict[str, int | None] = {}
        for env in get_settings().environments:
            live = _live(session, model.id or 0, env)
            version = session.get(ModelVersion, live.version_id) if live else None
            result[env] = version.number if version else None
        return result


def readiness(db: Database, actor: Principal, model_name: str, number: int) -> list[str]:
    """What still blocks production for this version (empty when it may go)."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        blockers = production_blockers(session, model, version)
        if not blockers and version.state != "approved":
            blockers.append(f"the version is {version.state.replace('_', ' ')}, not approved")
        return blockers
