"""Registered models and their versions: create, read, edit the card, archive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from core import audit, validation
from core.auth import (
    SYSTEM,
    Permission,
    Principal,
    readable_team_ids,
    refresh,
    require,
    visible_teams,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from core.models import (
    AuditEvent,
    Deployment,
    MLModel,
    ModelVersion,
    PendingChange,
    RiskTier,
    Task,
    Team,
    User,
    VersionState,
    utcnow,
)
from core.services import changes, read_as, unit_of_work

GOAL_OPERATORS = (">=", "<=", ">", "<")
CARD_SECTIONS = ("purpose", "intended_use", "limitations", "data", "ethics", "caveats")
MAX_TAGS = 20


@dataclass(frozen=True)
class ModelSpec:
    """What a person fills in to register a new model."""

    name: str
    team: str
    task: str
    purpose: str = ""
    risk_tier: str = RiskTier.MEDIUM
    target: str = ""
    sensitive_column: str | None = None
    goal_metric: str = ""
    goal_operator: str = ">="
    goal_target: float | None = None
    goal_description: str = ""
    tags: Mapping[str, str] | None = None


def clean_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in (tags or {}).items():
        k = validation.plain_text(str(key), "tag name", max_length=40, required=True)
        result[k] = validation.plain_text(str(value), f"value of tag {k!r}", max_length=120)
    if len(result) > MAX_TAGS:
        raise InvalidInput(f"A model takes at most {MAX_TAGS} tags; remove some.")
    return result


def parse_tag_pairs(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidInput(f"The tag {pair!r} must look like key=value.")
        key, value = pair.split("=", 1)
        tags[key.strip()] = value.strip()
    return clean_tags(tags)


def _check_spec(spec: ModelSpec) -> dict[str, Any]:
    if spec.task not in Task._value2member_map_:
        raise InvalidInput(f"{spec.task!r} is not a task. Use one of: {', '.join(Task)}.")
    if spec.risk_tier not in RiskTier._value2member_map_:
        raise InvalidInput(f"{spec.risk_tier!r} is not a risk tier. Use low, medium or high.")
    if spec.goal_operator not in GOAL_OPERATORS:
        raise InvalidInput(f"The goal comparison must be one of {', '.join(GOAL_OPERATORS)}.")
    return {
        "name": validation.slug_name(spec.name, "model name"),
        "task": spec.task,
        "risk_tier": spec.risk_tier,
        "purpose": validation.plain_text(spec.purpose, "purpose", max_length=2000),
        "target": validation.plain_text(spec.target, "target column", max_length=120),
        "sensitive_column": validation.plain_text(
            spec.sensitive_column, "sensitive column", max_length=120
        )
        or None,
        "goal_metric": validation.plain_text(spec.goal_metric, "goal metric", max_length=40),
        "goal_operator": spec.goal_operator,
        "goal_target": spec.goal_target,
        "goal_description": validation.plain_text(
            spec.goal_description, "goal description", max_length=300
        ),
        "tags": clean_tags(spec.tags),
    }


def create_model(db: Database, actor: Principal, spec: ModelSpec) -> MLModel:
    fields = _check_spec(spec)
    with unit_of_work(db, actor) as session:
        current = require(
            session, actor, Permission.REGISTER_MODEL, what=f"in team {spec.team}", anywhere=True
        )
        team = session.exec(
            scoped(select(Team).where(Team.name == spec.team), readable_team_ids(current), Team.id)
        ).first()
        if team is None:
            raise NotFound(
                f"No team named {spec.team!r} is visible to you. Pick one of your teams."
            )
        require(
            session, actor, Permission.REGISTER_MODEL, team_id=team.id, what=f"in team {team.name}"
        )
        if session.exec(select(MLModel).where(MLModel.name == fields["name"])).first():
            raise Conflict(
                f"A model named {fields['name']!r} already exists; register a new "
                "version of it instead, or choose another name."
            )
        model = MLModel(team_id=team.id or 0, owner_id=actor.user_id, **fields)
        model.model_card = {"purpose": fields["purpose"]}
        session.add(model)
        session.flush()
        audit.record(
            session,
            actor,
            "model.created",
            object_type="model",
            object_id=model.id,
            model_id=model.id,
            summary=f"Model {model.name} created in team {team.name}",
            details={k: v for k, v in fields.items() if k != "purpose"},
        )
        return model


def not_visible(name_or_id: str | int) -> NotFound:
    """The one answer for a model that is absent or belongs to a team the actor cannot see."""
    if isinstance(name_or_id, int):
        return NotFound(f"No model with id {name_or_id} is visible to you.")
    return NotFound(
        f"No model named {name_or_id!r} is visible to you. Check the name on the Models page."
    )


def scoped(stmt: Any, scope: frozenset[int] | None, team_column: Any = None) -> Any:
    """`stmt` restricted in SQL to the teams of `scope` (None: every team)."""
    if scope is None:
        return stmt
    return stmt.where(col(team_column if team_column is not None else MLModel.team_id).in_(scope))


def scoped_events(stmt: Any, scope: frozenset[int] | None) -> Any:
    """Audit events restricted in SQL to those of models in `scope`'s teams (None: all)."""
    if scope is None:
        return stmt
    visible = select(MLModel.id).where(col(MLModel.team_id).in_(scope))
    return stmt.where(col(AuditEvent.model_id).in_(visible))


def get_model(
    session: Session,
    actor: Principal,
    name_or_id: str | int,
    *,
    permission: Permission | None = None,
    what: str = "",
) -> MLModel:
    """The model if the actor may see it, else NotFound, worded the same whether it is absent
    or another team's. With `permission`, the actor must hold it somewhere before the lookup
    (so a refusal does not depend on what exists) and in the model's team after it.
    `what` may name the model as {model}."""
    current = refresh(session, actor)
    if permission is not None:
        label = what.format(model=name_or_id)
        require(session, current, permission, what=label, anywhere=True)
    if isinstance(name_or_id, int):
        stmt = select(MLModel).where(MLModel.id == name_or_id)
    else:
        stmt = select(MLModel).where(MLModel.name == name_or_id)
    model = session.exec(scoped(stmt, readable_team_ids(current))).first()
    if model is None:
        raise not_visible(name_or_id)
    if permission is not None:
        require(
            session,
            current,
            permission,
            team_id=model.team_id,
            what=what.format(model=model.name),
            model_id=model.id,
        )
    return model


def model_row(session: Session, name_or_id: str | int) -> MLModel:
    """The model whoever owns it: for the system's own work (demo seed, maintenance, jobs)."""
    return get_model(session, SYSTEM, name_or_id)


def lock_model(session: Session, model_id: int) -> MLModel:
    """The model row locked for this transaction, as it is once the lock is held."""
    return session.exec(
        select(MLModel)
        .where(MLModel.id == model_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def get_version(session: Session, model: MLModel, number: int | None = None) -> ModelVersion:
    stmt = select(ModelVersion).where(ModelVersion.model_id == model.id)
    if number is None:
        stmt = stmt.order_by(col(ModelVersion.number).desc()).limit(1)
    else:
        stmt = stmt.where(ModelVersion.number == number)
    version = session.exec(stmt).first()
    if version is None:
        which = "any version" if number is None else f"version {number}"
        raise NotFound(f"Model {model.name} has no {which}.")
    return version


def versions_of(session: Session, model_id: int) -> list[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id)
    return list(session.exec(stmt.order_by(col(ModelVersion.number).desc())).all())


def list_models(
    session: Session, actor: Principal, *, include_archived: bool = False
) -> list[MLModel]:
    stmt = scoped(select(MLModel), visible_teams(session, actor))
    if not include_archived:
        stmt = stmt.where(col(MLModel.archived_at).is_(None))
    return list(session.exec(stmt.order_by(col(MLModel.name))).all())


def update_card(
    db: Database, actor: Principal, model_id: int, card: Mapping[str, str], *, row_version: int
) -> MLModel:
    cleaned = {
        key: validation.plain_text(
            card.get(key, ""), f"model card section {key!r}", max_length=5000
        )
        for key in CARD_SECTIONS
    }
    with unit_of_work(db, actor) as session:
        found = get_model(
            session,
            actor,
            model_id,
            permission=Permission.EDIT_MODEL,
            what="edit the card of {model}",
        )
        model = lock_model(session, found.id or 0)
        _expect_row_version(model, row_version)
        changed = sorted(k for k in CARD_SECTIONS if model.model_card.get(k, "") != cleaned[k])
        model.model_card = cleaned
        model.purpose = cleaned["purpose"]
        _touch(model)
        session.add(model)
        audit.record(
            session,
            actor,
            "model.card_updated",
            object_type="model",
            object_id=model.id,
            model_id=model.id,
            summary=f"Model card of {model.name} edited: " + (", ".join(changed) or "no change"),
            details={"sections": changed},
        )
        return model


@dataclass(frozen=True)
class ModelChanges:
    """Settings of a model a person may change after creating it; None leaves one as it is."""

    card: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    risk_tier: str | None = None
    purpose: str | None = None
    goal_metric: str | None = None
    goal_operator: str | None = None
    goal_target: float | None = None
    goal_description: str | None = None
    owner: str | None = None  # the new owner's email


# Settings whose change can drop a requirement: a checklist that stops applying (tags), a
# looser goal. They wait for a compliance officer and reopen the gate when confirmed.
GOAL_FIELDS = ("goal_metric", "goal_operator", "goal_target")


def _checked_changes(changes: ModelChanges) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if changes.risk_tier is not None:
        raise InvalidInput(
            "The risk tier changes on its own, with a reason: a lower tier weakens the approval "
            "policy and waits for a compliance officer or a second admin (set_risk_tier)."
        )
    if changes.goal_operator is not None:
        if changes.goal_operator not in GOAL_OPERATORS:
            raise InvalidInput(f"The goal comparison must be one of {', '.join(GOAL_OPERATORS)}.")
        fields["goal_operator"] = changes.goal_operator
    texts = {
        "purpose": ("purpose", 2000),
        "goal_metric": ("goal metric", 40),
        "goal_description": ("goal description", 300),
    }
    for name, (label, limit) in texts.items():
        value = getattr(changes, name)
        if value is not None:
            fields[name] = validation.plain_text(value, label, max_length=limit)
    if changes.goal_target is not None:
        fields["goal_target"] = float(changes.goal_target)
    if changes.tags is not None:
        fields["tags"] = clean_tags(changes.tags)
    if changes.card is not None:
        unknown = sorted(set(changes.card) - set(CARD_SECTIONS))
        if unknown:
            raise InvalidInput(
                f"{unknown[0]!r} is not a model card section; use {', '.join(CARD_SECTIONS)}."
            )
        fields["model_card"] = {
            key: validation.plain_text(text, f"model card section {key!r}", max_length=5000)
            for key, text in changes.card.items()
        }
    return fields


def _merge_card(model: MLModel, fields: dict[str, Any]) -> None:
    """Card sections merge into the card; the purpose lives both on the model and the card."""
    if "model_card" in fields:
        fields["model_card"] = {**model.model_card, **fields["model_card"]}
    card_purpose = fields.get("model_card", {}).get("purpose")
    if "purpose" in fields:
        card = fields.get("model_card", model.model_card)
        fields["model_card"] = {**card, "purpose": fields["purpose"]}
    elif card_purpose is not None:
        fields["purpose"] = card_purpose


def update_model(
    db: Database, actor: Principal, model_name: str, edits: ModelChanges, *, reason: str = ""
) -> MLModel | PendingChange:
    """Edit a model's card sections, tags, purpose, goal or owner; one audit event names every
    field that changed. A change that can drop a requirement (tags that take a checklist away,
    the goal) waits for a compliance officer of the model's team and is returned as the
    pending change; the other fields take effect at once."""
    fields = _checked_changes(edits)
    why = validation.plain_text(reason, "reason", max_length=500)
    with unit_of_work(db, actor) as session:
        found = get_model(
            session, actor, model_name, permission=Permission.EDIT_MODEL, what="edit {model}"
        )
        model = lock_model(session, found.id or 0)
        if model.archived_at is not None:
            raise InvalidTransition(f"{model.name} is archived; it can no longer be edited.")
        if edits.owner is not None:
            fields["owner_id"] = _owner_id(session, edits.owner)
        _merge_card(model, fields)
        dropping = [] if changes.acts_alone(actor) else _dropping(session, model, fields)
        held = {name: fields.pop(name) for name in dropping}
        if held and not why:
            raise InvalidInput(
                f"Say why {', '.join(held)} of {model.name} change{'s' if len(held) == 1 else ''}"
                ": the change can drop a requirement, so a compliance officer confirms it."
            )
        _apply_fields(session, actor, model, fields)
        if not held:
            return model
        payload = {
            "model_id": model.id,
            "fields": held,
            "before": {k: getattr(model, k) for k in held},
            "reason": why,
        }
        summary = f"{model.name}: change {', '.join(held)}: {why}"
        return changes.propose(session, actor, changes.METADATA, payload, summary)


def _owner_id(session: Session, email: str) -> int:
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.is_active:
        raise InvalidInput(
            f"No active person has the email {email!r}; the owner must be someone who can sign in."
        )
    return user.id or 0


def _dropping(session: Session, model: MLModel, fields: dict[str, Any]) -> list[str]:
    """The fields among `fields` whose change can drop a requirement of this model."""
    from core.checklists import applicable_templates
    from core.services.compliance.templates import stored_templates

    held = [k for k in GOAL_FIELDS if k in fields and fields[k] != getattr(model, k)]
    if "tags" in fields and fields["tags"] != model.tags:
        templates = stored_templates(session)
        before = {t.key for t in applicable_templates(templates, model.risk_tier, model.tags)}
        after = {t.key for t in applicable_templates(templates, model.risk_tier, fields["tags"])}
        if before - after:
            held.append("tags")
    return held


def _apply_fields(
    session: Session,
    actor: Principal,
    model: MLModel,
    fields: dict[str, Any],
    note: str = "",
) -> list[str]:
    before = {name: getattr(model, name) for name in fields}
    changed = sorted(k for k, v in fields.items() if getattr(model, k) != v)
    for name, value in fields.items():
        setattr(model, name, value)
    _touch(model)
    session.add(model)
    audit.record(
        session,
        actor,
        "model.updated",
        object_type="model",
        object_id=model.id,
        model_id=model.id,
        summary=f"{model.name} edited: " + (", ".join(changed) or "no change") + note,
        details={
            "changed": changed,
            "before": {k: before[k] for k in changed},
            "after": {k: fields[k] for k in changed},
        },
    )
    return changed


def reopen_gate(session: Session, actor: Principal, model: MLModel, why: str) -> list[int]:
    """After a setting that can drop a requirement changed: every version still on its way to
    or in production is judged again under the new settings; each gets an audit event (the
    timeline shows it) saying the gate was reopened and why."""
    numbers = []
    for version in versions_of(session, model.id or 0):
        if version.state in (VersionState.REJECTED, VersionState.ARCHIVED):
            continue
        numbers.append(version.number)
        audit.record(
            session,
            actor,
            "gate.reopened",
            object_type="version",
            object_id=version.id,
            model_id=model.id,
            summary=f"Gate of {model.name} v{version.number} reopened: {why}; what production "
            "needs is judged again under the new settings.",
            details={"reason": why},
        )
    return numbers


def pending_changes(db: Database, actor: Principal, model_name: str) -> list[changes.ChangeView]:
    """The changes of this model's settings waiting for confirmation."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        return changes.pending_for_model(session, model.id or 0)


@changes.applies(changes.METADATA)
def _apply_metadata(
    session: Session, proposer: Principal, confirmer: Principal, payload: dict[str, Any]
) -> str:
    model = lock_model(session, payload["model_id"])
    if "version_id" in payload:
        from core.services.versions import apply_threshold

        return apply_threshold(session, proposer, confirmer, model, payload)
    moved = [k for k, v in payload["before"].items() if getattr(model, k) != v]
    if moved:
        raise Conflict(
            f"{', '.join(moved)} of {model.name} changed after this was proposed. Refuse this "
            "change and propose again if it is still wanted."
        )
    fields = dict(payload["fields"])
    changed = _apply_fields(
        session,
        confirmer,
        model,
        fields,
        f" (confirmed by a compliance officer): {payload['reason']}",
    )
    reopen_gate(session, confirmer, model, f"{', '.join(changed)} changed ({payload['reason']})")
    return f"{model.name}: {', '.join(changed)} changed; the gate was reopened"


def archive_model(db: Database, actor: Principal, model_id: int | str, reason: str) -> MLModel:
    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    with unit_of_work(db, actor) as session:
        found = get_model(
            session, actor, model_id, permission=Permission.ARCHIVE, what="archive {model}"
        )
        model = lock_model(session, found.id or 0)
        if model.archived_at is not None:
            raise Conflict(f"{model.name} is already archived.")
        live = session.exec(
            select(Deployment).where(
                Deployment.model_id == model.id, col(Deployment.live_until).is_(None)
            )
        ).first()
        if live is not None:
            raise InvalidInput(
                f"{model.name} is live in {live.environment}; roll it back or retire it there "
                "before archiving."
            )
        model.archived_at = utcnow()
        _touch(model)
        session.add(model)
        audit.record(
            session,
            actor,
            "model.archived",
            object_type="model",
            object_id=model.id,
            model_id=model.id,
            summary=f"Model {model.name} archived: {why}",
        )
        return model


def _expect_row_version(obj: MLModel | ModelVersion, row_version: int) -> None:
    if obj.row_version != row_version:
        raise Conflict(
            "Someone else changed this while you were editing. Reload the page to see their "
            "change, then try again."
        )


def _touch(obj: MLModel | ModelVersion) -> None:
    obj.row_version += 1
    obj.updated_at = utcnow()


def version_counts(session: Session, actor: Principal) -> dict[str, int]:
    stmt = select(ModelVersion.state, func.count()).join(
        MLModel, col(MLModel.id) == col(ModelVersion.model_id)
    )
    stmt = scoped(stmt, visible_teams(session, actor))
    rows = session.exec(stmt.group_by(ModelVersion.state)).all()
    return {state: int(n) for state, n in rows}


def state_label(state: str) -> str:
    return {
        VersionState.REGISTERED: "Registered",
        VersionState.IN_REVIEW: "In review",
        VersionState.CHANGES_REQUESTED: "Changes requested",
        VersionState.APPROVED: "Approved",
        VersionState.REJECTED: "Rejected",
        VersionState.ARCHIVED: "Archived",
    }.get(VersionState(state), state)


def archive_version(
    db: Database, actor: Principal, model_name: str, number: int, reason: str
) -> ModelVersion:
    from core.workflow import Action, next_state

    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.ARCHIVE,
            what="archive versions of {model}",
        )
        version = get_version(session, model, number)
        live = session.exec(
            select(Deployment).where(
                Deployment.version_id == version.id, col(Deployment.live_until).is_(None)
            )
        ).first()
        if live is not None:
            raise InvalidInput(
                f"v{number} is live in {live.environment}; promote another version or roll "
                "back before archiving it."
            )
        version.state = next_state(version.state, Action.ARCHIVE)
        _touch(version)
        session.add(version)
        audit.record(
            session,
            actor,
            "version.archived",
            object_type="version",
            object_id=version.id,
            model_id=model.id,
            summary=f"{model.name} v{number} archived: {why}",
        )
        return version


RISK_ORDER = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2}


def set_risk_tier(
    db: Database, actor: Principal, model_name: str, tier: str, reason: str, *, row_version: int
) -> MLModel | PendingChange:
    """Raise a model's risk tier at once; a lower tier (a lighter policy) waits for a second
    admin to confirm it, unless the operator makes the change."""
    why = validation.plain_text(reason, "reason", max_length=500, required=True)
    if tier not in RiskTier._value2member_map_:
        raise InvalidInput(f"{tier!r} is not a risk tier. Use low, medium or high.")
    with unit_of_work(db, actor) as session:
        found = get_model(
            session,
            actor,
            model_name,
            permission=Permission.EDIT_MODEL,
            what="change the risk tier of {model}",
        )
        model = lock_model(session, found.id or 0)
        _expect_row_version(model, row_version)
        if tier == model.risk_tier:
            raise InvalidInput(f"{model.name} is already {tier} risk; nothing to change.")
        if RISK_ORDER[RiskTier(tier)] < RISK_ORDER[RiskTier(model.risk_tier)]:
            if not changes.acts_alone(actor):
                payload = {
                    "model_id": model.id,
                    "from": model.risk_tier,
                    "to": tier,
                    "row_version": model.row_version,
                    "reason": why,
                }
                summary = f"{model.name}: risk tier {model.risk_tier} -> {tier}: {why}"
                return changes.propose(session, actor, changes.RISK_LOWERED, payload, summary)
        return _apply_tier(session, actor, model, tier, why)


def _apply_tier(
    session: Session,
    actor: Principal,
    model: MLModel,
    tier: str,
    why: str,
    proposed_by: int | None = None,
) -> MLModel:
    before = model.risk_tier
    model.risk_tier = tier
    _touch(model)
    session.add(model)
    audit.record(
        session,
        actor,
        "model.risk_tier_changed",
        object_type="model",
        object_id=model.id,
        model_id=model.id,
        summary=f"{model.name}: risk tier {before} -> {tier}: {why}"
        + (" (confirmed by a second admin)" if proposed_by else ""),
        details={"before": before, "after": tier, "reason": why, "proposed_by": proposed_by},
    )
    return model


@changes.applies(changes.RISK_LOWERED)
def _apply_risk_lowered(
    session: Session, proposer: Principal, confirmer: Principal, payload: dict[str, Any]
) -> str:
    model = lock_model(session, payload["model_id"])
    if model.risk_tier != payload["from"] or model.row_version != payload["row_version"]:
        raise Conflict(
            f"{model.name} changed after this was proposed (it is now {model.risk_tier} risk). "
            "Refuse this change and propose again if it is still wanted."
        )
    _apply_tier(session, confirmer, model, payload["to"], payload["reason"], proposer.user_id)
    reopen_gate(
        session,
        confirmer,
        model,
        f"risk tier {payload['from']} -> {payload['to']} ({payload['reason']})",
    )
    return f"{model.name} is now {payload['to']} risk; the gate was reopened"
