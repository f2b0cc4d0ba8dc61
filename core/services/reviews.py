"""Review: submission, decisions under the approval policy, discussion with @mentions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core import audit, policy, validation
from core.auth import (
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    readable_team_ids,
    refresh,
    require,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    ROLE_LABELS,
    ApprovalPolicyVersion,
    Comment,
    Decision,
    DecisionKind,
    Evaluation,
    MLModel,
    ModelVersion,
    PendingChange,
    RiskTier,
    Role,
    RoleGrant,
    User,
    VersionState,
    utcnow,
)
from core.policy import PolicyFields
from core.services import changes, read_as, unit_of_work
from core.services.portfolio import notify
from core.services.registry import get_model, get_version, scoped
from core.workflow import Action, next_state

MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9._%+-]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")
_ACTION = {
    DecisionKind.APPROVE: Action.APPROVE,
    DecisionKind.REQUEST_CHANGES: Action.REQUEST_CHANGES,
    DecisionKind.REJECT: Action.REJECT,
}


# --- approval policy ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInForce:
    """One version of a tier's approval policy: stored (version >= 1) or the built-in
    defaults (version 0, never stored)."""

    risk_tier: str
    version: int
    fields: PolicyFields
    version_id: int | None = None
    created_by_id: int | None = None
    confirmed_by_id: int | None = None
    created_at: datetime | None = None
    reason: str = ""

    @property
    def min_approvals(self) -> int:
        return self.fields.min_approvals

    @property
    def required_roles(self) -> list[str]:
        return self.fields.required_roles

    @property
    def required_checklists(self) -> list[str]:
        return self.fields.required_checklists

    @property
    def required_signoffs(self) -> list[str]:
        return self.fields.required_signoffs

    @property
    def row_version(self) -> int:
        """What an editor saw: a change is refused if another was saved meanwhile."""
        return self.version

    @property
    def label(self) -> str:
        return f"{self.risk_tier}-risk policy v{self.version}" + (
            " (built-in defaults)" if self.version == 0 else ""
        )


def _in_force(row: ApprovalPolicyVersion) -> PolicyInForce:
    return PolicyInForce(
        risk_tier=row.risk_tier,
        version=row.version,
        fields=policy.from_document(row.fields, row.schema_version, row.risk_tier),
        version_id=row.id,
        created_by_id=row.created_by_id,
        confirmed_by_id=row.confirmed_by_id,
        created_at=row.created_at,
        reason=row.reason,
    )


def _check_tier(risk_tier: str) -> str:
    if risk_tier not in RiskTier._value2member_map_:
        raise InvalidInput(f"{risk_tier!r} is not a risk tier; use low, medium or high.")
    return risk_tier


def policy_for(session: Session, risk_tier: str) -> PolicyInForce:
    """The policy in force for a tier: its latest version, or the built-in defaults."""
    row = session.exec(
        select(ApprovalPolicyVersion)
        .where(ApprovalPolicyVersion.risk_tier == _check_tier(risk_tier))
        .order_by(col(ApprovalPolicyVersion.version).desc())
        .limit(1)
    ).first()
    if row is None:
        return PolicyInForce(risk_tier, 0, policy.defaults(risk_tier))
    return _in_force(row)


def policy_by_id(session: Session, version_id: int | None, risk_tier: str) -> PolicyInForce:
    """A stored policy version, or the built-in defaults for `version_id` None."""
    row = session.get(ApprovalPolicyVersion, version_id) if version_id is not None else None
    if row is None:
        return PolicyInForce(risk_tier, 0, policy.defaults(risk_tier))
    return _in_force(row)


def policy_versions(session: Session, risk_tier: str) -> list[PolicyInForce]:
    """Every version of a tier's policy, oldest first, starting from the built-in defaults."""
    rows = session.exec(
        select(ApprovalPolicyVersion)
        .where(ApprovalPolicyVersion.risk_tier == _check_tier(risk_tier))
        .order_by(col(ApprovalPolicyVersion.version))
    ).all()
    return [PolicyInForce(risk_tier, 0, policy.defaults(risk_tier))] + [_in_force(r) for r in rows]


def policy_history(db: Database, risk_tier: str) -> list[PolicyInForce]:
    """Every version of a tier's policy, oldest first (for the admin page and packs)."""
    with db.read() as session:
        return policy_versions(session, risk_tier)


def policies(db: Database) -> list[PolicyInForce]:
    """The policy in force for each risk tier (what the admin editor starts from)."""
    with db.read() as session:
        return [policy_for(session, tier.value) for tier in RiskTier]


def check_policy(
    session: Session, risk_tier: str, values: Mapping[str, Any]
) -> tuple[PolicyInForce, PolicyFields]:
    """The policy in force and the new fields: the current values with `values` applied,
    each checked against core.policy's schema."""
    from core.services.compliance.templates import stored_templates

    current = policy_for(session, _check_tier(risk_tier))
    merged = current.fields.as_document() | dict(values)
    templates = stored_templates(session)
    fields = policy.check(merged, risk_tier, tuple(t.key for t in templates))
    for template in templates:
        tiers = template.applies_when.get("risk_tiers", [])
        if template.key in fields.required_checklists and tiers and risk_tier not in tiers:
            raise InvalidInput(
                f"The checklist '{template.name}' applies only to {', '.join(tiers)}-risk "
                f"models, so a {risk_tier}-risk model could never fill it in; remove it from "
                f"the {risk_tier}-risk policy or add {risk_tier} to the checklist's risk tiers."
            )
    return current, fields


def policy_warnings(db: Database, risk_tier: str, required_checklists: list[str]) -> list[str]:
    """Required checklists that apply to none of the tier's current models (their tags do not
    match), in plain words; the gate asks them only of models they apply to."""
    from core.services.compliance.templates import stored_templates

    with db.read() as session:
        models = session.exec(
            select(MLModel).where(
                MLModel.risk_tier == _check_tier(risk_tier), col(MLModel.archived_at).is_(None)
            )
        ).all()
        templates = {t.key: t for t in stored_templates(session)}
    warnings = []
    for key in required_checklists:
        template = templates.get(key)
        if template is None or any(template.applies_to(m.risk_tier, m.tags) for m in models):
            continue
        wanted = template.applies_when.get("tags_any", {})
        tags = "; ".join(f"{tag}={' or '.join(values)}" for tag, values in wanted.items())
        warnings.append(
            f"The checklist '{template.name}' applies only to models tagged {tags or '(none)'}; "
            f"none of the {len(models)} {risk_tier}-risk model(s) is, so it is required of "
            "none of them today."
        )
    return warnings


def update_policy(
    db: Database,
    actor: Principal,
    risk_tier: str,
    *,
    row_version: int,
    reason: str = "",
    **values: Any,
) -> PolicyInForce | PendingChange:
    """Propose a new version of a tier's policy (fields not given keep their value); it takes
    effect when another admin confirms it (the operator's change takes effect at once). The
    old version stays; decisions and sign-offs name the version they were judged under."""
    why = validation.plain_text(reason, "reason", max_length=500)
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="edit approval policies")
        if changes.acts_alone(actor):
            return apply_policy(session, actor, risk_tier, values, row_version, why)
        current, fields = check_policy(session, risk_tier, values)
        _expect_policy_version(current, row_version)
        changed = policy.changes(current.fields, fields)
        if not changed:
            raise InvalidInput(f"Nothing would change in the {current.label}.")
        payload = {
            "risk_tier": risk_tier,
            "values": fields.as_document(),
            "row_version": row_version,
            "reason": why,
            "changed": changed,
        }
        summary = f"{current.label} -> v{current.version + 1}: change " + ", ".join(changed)
        return changes.propose(session, actor, changes.POLICY_UPDATE, payload, summary)


@changes.applies(changes.POLICY_UPDATE)
def _apply_policy_change(
    session: Session, proposer: Principal, confirmer: Principal, payload: dict[str, Any]
) -> str:
    saved = apply_policy(
        session,
        proposer,
        payload["risk_tier"],
        payload["values"],
        payload["row_version"],
        payload.get("reason", ""),
        confirmed_by=confirmer,
    )
    return f"{saved.label} is in force"


def _expect_policy_version(current: PolicyInForce, row_version: int) -> None:
    if current.version != row_version:
        raise Conflict(
            f"Someone else saved version {current.version} of the {current.risk_tier}-risk "
            "policy meanwhile. Reload to see it, then make your change again."
        )


def apply_policy(
    session: Session,
    actor: Principal,
    risk_tier: str,
    values: Mapping[str, Any],
    row_version: int,
    why: str,
    *,
    confirmed_by: Principal | None = None,
) -> PolicyInForce:
    """Insert the next policy version and audit every field before and after."""
    current, fields = check_policy(session, risk_tier, values)
    _expect_policy_version(current, row_version)
    row = ApprovalPolicyVersion(
        risk_tier=risk_tier,
        version=current.version + 1,
        schema_version=policy.SCHEMA_VERSION,
        fields=fields.as_document(),
        reason=why,
        created_by_id=actor.user_id or None,
        confirmed_by_id=confirmed_by.user_id if confirmed_by else None,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            f"Another version of the {risk_tier}-risk policy was saved at the same moment. "
            "Reload and make your change again."
        ) from None
    changed = policy.changes(current.fields, fields)
    audit.record(
        session,
        confirmed_by or actor,
        "policy.updated",
        object_type="policy",
        object_id=f"{risk_tier}/v{row.version}",
        summary=f"Approval policy for {risk_tier} risk: version {current.version} -> "
        f"{row.version}; changed " + (", ".join(changed) or "nothing"),
        details={
            "risk_tier": risk_tier,
            "from_version": current.version,
            "to_version": row.version,
            "policy_version_id": row.id,
            "schema_version": policy.SCHEMA_VERSION,
            "proposed_by": actor.user_id,
            "confirmed_by": confirmed_by.user_id if confirmed_by else None,
            "reason": why,
            "before": current.fields.as_document(),
            "after": fields.as_document(),
            "changed": changed,
        },
    )
    return _in_force(row)


@dataclass(frozen=True)
class PolicyStatus:
    needed: int
    counted: list[str]
    missing_roles: list[str]
    stale: list[str] = field(default_factory=list)

    @property
    def satisfied(self) -> bool:
        return len(self.counted) >= self.needed and not self.missing_roles

    def explain(self) -> list[str]:
        given = len(self.counted)
        count = (
            f"{given} approvals ({self.needed} required)"
            if given > self.needed
            else f"{given} of {self.needed} approvals"
        )
        lines = [count + (f": {', '.join(self.counted)}" if self.counted else "")]
        if self.missing_roles:
            labels = [ROLE_LABELS[Role(r)].lower() for r in self.missing_roles]
            lines.append("still needs an approval from a " + " and a ".join(labels))
        if self.stale:
            lines.append("not counted because the files changed since: " + ", ".join(self.stale))
        return lines


def user_names(session: Session, user_ids: set[int]) -> dict[int | None, str]:
    """Names of just these people (never the whole user table)."""
    if not user_ids:
        return {}
    rows = session.exec(select(User.id, User.name).where(col(User.id).in_(sorted(user_ids))))
    return dict(rows.all())


def current_evaluation_hash(session: Session, version: ModelVersion) -> str:
    return _evaluation_hashes(session, [version.id or 0]).get(version.id or 0, "")


def _evaluation_hashes(session: Session, version_ids: list[int]) -> dict[int, str]:
    """The dataset hash of each version's newest evaluation (the hash column only: the
    evaluation's results and reference profile are large)."""
    newest = (
        select(func.max(Evaluation.id))
        .where(col(Evaluation.version_id).in_(version_ids))
        .group_by(col(Evaluation.version_id))
    )
    rows = session.exec(
        select(Evaluation.version_id, Evaluation.dataset_sha256).where(
            col(Evaluation.id).in_(newest)
        )
    ).all()
    return dict(rows)


def policy_status(
    session: Session, model: MLModel, version: ModelVersion, *, review_round: int | None = None
) -> PolicyStatus:
    """How the approvals of a round (the version's current one unless named) meet the policy."""
    number = version.review_round if review_round is None else review_round
    return policy_statuses(session, [(model, version, number)])[0]


def policy_statuses(
    session: Session, items: list[tuple[MLModel, ModelVersion, int]]
) -> list[PolicyStatus]:
    """`policy_status` of each (model, version, review round), in a fixed number of queries
    however many (a review queue, the Home board)."""
    if not items:
        return []
    policies = {tier: policy_for(session, tier) for tier in {m.risk_tier for m, _v, _r in items}}
    ids = sorted({v.id or 0 for _m, v, _r in items})
    approvals: dict[tuple[int, int], list[Decision]] = {}
    for d in session.exec(
        select(Decision)
        .where(col(Decision.version_id).in_(ids), Decision.kind == DecisionKind.APPROVE)
        .order_by(col(Decision.id))
    ):
        approvals.setdefault((d.version_id, d.review_round), []).append(d)
    hashes = _evaluation_hashes(session, ids)
    names = user_names(session, {d.reviewer_id for ds in approvals.values() for d in ds})
    found = []
    for model, version, number in items:
        policy = policies[model.risk_tier]
        eval_hash = hashes.get(version.id or 0, "")
        valid: list[Decision] = []
        stale: list[Decision] = []
        for d in approvals.get((version.id or 0, number), []):
            fresh = (
                d.artifact_sha256 == version.artifact_sha256 and d.evaluation_sha256 == eval_hash
            )
            (valid if fresh else stale).append(d)
        roles_present = {r for d in valid for r in d.roles}
        found.append(
            PolicyStatus(
                needed=policy.min_approvals,
                counted=[names.get(d.reviewer_id, "?") for d in valid],
                missing_roles=[r for r in policy.required_roles if r not in roles_present],
                stale=[names.get(d.reviewer_id, "?") for d in stale],
            )
        )
    return found


# --- submission and decisions ---------------------------------------------------------------


def _locked_version(session: Session, model: MLModel, number: int) -> ModelVersion:
    version = get_version(session, model, number)
    return session.exec(
        select(ModelVersion)
        .where(ModelVersion.id == version.id)
        .with_for_update()
        .execution_options(populate_existing=True)  # the row as it is once the lock is held
    ).one()


def _expect(version: ModelVersion, row_version: int | None) -> None:
    if row_version is not None and version.row_version != row_version:
        raise Conflict(
            f"v{version.number} changed while you were looking at it (someone else acted on "
            "it). Reload the page to see the current state, then decide again."
        )


def _touch(version: ModelVersion, state: str) -> None:
    version.state = state
    version.row_version += 1
    version.updated_at = utcnow()


def submit_for_review(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    *,
    note: str = "",
    row_version: int | None = None,
) -> ModelVersion:
    text = validation.plain_text(note, "note", max_length=2000)
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.SUBMIT_REVIEW,
            what="submit {model} for review",
        )
        version = _locked_version(session, model, number)
        _expect(version, row_version)
        _touch(version, next_state(version.state, Action.SUBMIT))
        version.review_round += 1
        session.add(version)
        reviewers = _people_who_can(session, Permission.DECIDE, model.team_id)
        notify(
            session,
            reviewers - {version.registered_by_id},
            "review_requested",
            f"Review {model.name} v{version.number}",
            body=text,
            link=f"pages/3_Reviews.py?model={model.name}&version={version.number}",
            model_id=model.id,
            version_id=version.id,
        )
        audit.record(
            session,
            actor,
            "version.submitted",
            object_type="version",
            object_id=version.id,
            model_id=model.id,
            summary=f"{model.name} v{version.number} submitted for review "
            f"(round {version.review_round})" + (f": {text}" if text else ""),
        )
        return version


def decide(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    kind: DecisionKind | str,
    reason: str = "",
    *,
    row_version: int | None = None,
) -> Decision:
    decision_kind = _decision_kind(kind)
    why = validation.plain_text(
        reason, "reason", max_length=5000, required=decision_kind != DecisionKind.APPROVE
    )
    try:
        with unit_of_work(db, actor) as session:
            return _decide(session, actor, model_name, number, decision_kind, why, row_version)
    except IntegrityError:
        raise Conflict(
            "You already decided on this version in this review round; your earlier decision "
            "stands. Reload the page to see it."
        ) from None


def _decision_kind(kind: DecisionKind | str) -> DecisionKind:
    value = str(kind).strip().lower().replace("-", "_").replace(" ", "_")
    if value not in DecisionKind._value2member_map_:
        raise InvalidInput("A decision is approve, request_changes or reject.")
    return DecisionKind(value)


def _decide(
    session: Session,
    actor: Principal,
    model_name: str,
    number: int,
    kind: DecisionKind,
    why: str,
    row_version: int | None,
) -> Decision:
    model = get_model(
        session,
        actor,
        model_name,
        permission=Permission.DECIDE,
        what="of {model}",
    )
    current = refresh(session, actor)
    version = _locked_version(session, model, number)
    _expect(version, row_version)
    if version.registered_by_id == actor.user_id:
        raise InvalidInput(
            "You registered this version, so you cannot decide on it (separation of duties). "
            "Ask another reviewer."
        )
    _refuse_repeat(session, version, actor)
    from core.services import revalidation

    if revalidation.open_round(session, version) is not None:
        return revalidation.decide_round(session, actor, model, version, kind, why)
    target = next_state(version.state, _ACTION[kind])
    decision = new_decision(session, current, model, version, kind, why)
    status = policy_status(session, model, version)
    if kind != DecisionKind.APPROVE or status.satisfied:
        _touch(version, target)
    else:
        version.row_version += 1
    session.add(version)
    _after_decision(session, actor, model, version, kind, why, status)
    return decision


def new_decision(
    session: Session,
    current: Principal,
    model: MLModel,
    version: ModelVersion,
    kind: DecisionKind,
    why: str,
) -> Decision:
    """Insert the decision of the version's current round, bound to the hashes it saw."""
    decision = Decision(
        version_id=version.id or 0,
        review_round=version.review_round,
        reviewer_id=current.user_id,
        roles=sorted(
            r.value
            for r in current.roles(model.team_id)
            if Permission.DECIDE in ROLE_PERMISSIONS[r]
        ),
        kind=kind,
        reason=why,
        artifact_sha256=version.artifact_sha256,
        evaluation_sha256=current_evaluation_hash(session, version),
        policy_version_id=policy_for(session, model.risk_tier).version_id,
    )
    session.add(decision)
    session.flush()
    return decision


def _refuse_repeat(session: Session, version: ModelVersion, actor: Principal) -> None:
    earlier = session.exec(
        select(Decision).where(
            Decision.version_id == version.id,
            Decision.review_round == version.review_round,
            Decision.reviewer_id == actor.user_id,
        )
    ).first()
    if earlier is not None:
        raise Conflict(
            f"You already chose '{earlier.kind.replace('_', ' ')}' on v{version.number} in this "
            "review round; one decision per person per round."
        )


def _after_decision(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    kind: DecisionKind,
    why: str,
    status: PolicyStatus,
) -> None:
    label = {
        DecisionKind.APPROVE: "approved",
        DecisionKind.REQUEST_CHANGES: "requested changes on",
        DecisionKind.REJECT: "rejected",
    }[kind]
    outcome = ""
    if kind == DecisionKind.APPROVE:
        outcome = (
            " — approval policy met, version approved"
            if status.satisfied
            else " — " + "; ".join(status.explain())
        )
    if kind != DecisionKind.APPROVE or status.satisfied:  # an approval is news once it decides
        notify(
            session,
            {version.registered_by_id},
            {
                DecisionKind.APPROVE: "approved",
                DecisionKind.REQUEST_CHANGES: "changes_requested",
                DecisionKind.REJECT: "rejected",
            }[kind],
            f"{actor.name} {label} {model.name} v{version.number}{outcome}"[:200],
            body=why,
            link=f"pages/3_Reviews.py?model={model.name}&version={version.number}",
            model_id=model.id,
            version_id=version.id,
        )
    _close_review_requests(session, actor, version)
    session.flush()  # every row lock before the audit chain's lock, which comes last
    audit.record(
        session,
        actor,
        f"decision.{kind.value}",
        object_type="version",
        object_id=version.id,
        model_id=model.id,
        summary=f"{actor.name} {label} {model.name} v{version.number}{outcome}"
        + (f": {why}" if why else ""),
        details={
            "artifact_sha256": version.artifact_sha256,
            "round": version.review_round,
            "state": version.state,
        },
    )


def _close_review_requests(session: Session, actor: Principal, version: ModelVersion) -> None:
    from core.models import Notification

    targets = [actor.user_id]
    if version.state != VersionState.IN_REVIEW:
        targets = []  # everyone's request is handled once the review ends
    stmt = select(Notification).where(
        Notification.version_id == version.id,
        Notification.kind == "review_requested",
        col(Notification.read_at).is_(None),
    )
    if targets:
        stmt = stmt.where(col(Notification.user_id).in_(targets))
    for note in session.exec(stmt):
        note.read_at = utcnow()
        session.add(note)


def _people_who_can(session: Session, permission: Permission, team_id: int) -> set[int]:
    grants = session.exec(
        select(RoleGrant).where((col(RoleGrant.team_id).is_(None)) | (RoleGrant.team_id == team_id))
    ).all()
    active = {u.id for u in session.exec(select(User).where(col(User.is_active)))}
    return {
        g.user_id
        for g in grants
        if g.user_id in active
        and Role(g.role) != Role.ADMIN
        and permission in ROLE_PERMISSIONS[Role(g.role)]
    }


def _people_who_see(session: Session, team_id: int) -> set[int]:
    grants = session.exec(
        select(RoleGrant.user_id).where(
            (col(RoleGrant.team_id).is_(None)) | (RoleGrant.team_id == team_id)
        )
    ).all()
    return set(grants)


def decisions_of(session: Session, version_id: int) -> list[Decision]:
    stmt = select(Decision).where(Decision.version_id == version_id)
    return list(session.exec(stmt.order_by(col(Decision.created_at))))


# --- discussion ----------------------------------------------------------------------------


def add_comment(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    body: str,
    *,
    anchor: str = "",
    parent_id: int | None = None,
) -> Comment:
    text = validation.plain_text(body, "comment", max_length=5000, required=True)
    pin = validation.plain_text(anchor, "pinned metric or chart", max_length=120)
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.COMMENT,
            what="comment on {model}",
        )
        version = get_version(session, model, number)
        if parent_id is not None:
            parent = session.get(Comment, parent_id)
            if parent is None or parent.version_id != version.id:
                raise NotFound("The comment you reply to is not on this version.")
        comment = Comment(
            version_id=version.id or 0,
            author_id=actor.user_id,
            body=text,
            anchor=pin,
            parent_id=parent_id,
        )
        session.add(comment)
        session.flush()
        # only people who may see the model hear of it: a mention never leaks another team's work
        mentioned = (mentioned_users(session, text) - {actor.user_id}) & _people_who_see(
            session, model.team_id
        )
        notify(
            session,
            mentioned,
            "mention",
            f"{actor.name} mentioned you on {model.name} v{version.number}",
            body=text[:300],
            link=f"pages/3_Reviews.py?model={model.name}&version={version.number}",
            model_id=model.id,
            version_id=version.id,
        )
        audit.record(
            session,
            actor,
            "comment.added",
            object_type="comment",
            object_id=comment.id,
            model_id=model.id,
            summary=f"{actor.name} commented on {model.name} v{version.number}"
            + (f" about {pin}" if pin else ""),
            details={"mentions": sorted(mentioned), "length": len(text)},
        )
        return comment


def mentioned_users(session: Session, text: str) -> set[int]:
    handles = {h.lower().rstrip(".") for h in MENTION.findall(text)}
    if not handles:
        return set()
    found = set()
    for user in session.exec(select(User).where(col(User.is_active))):
        local = user.email.split("@")[0].lower()
        if user.email.lower() in handles or local in handles:
            found.add(user.id or 0)
    return found


@dataclass(frozen=True)
class CommentView:
    comment: Comment
    author: str


def comments_of(db: Database, actor: Principal, model_name: str, number: int) -> list[CommentView]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        rows = session.exec(
            select(Comment)
            .where(Comment.version_id == version.id)
            .order_by(col(Comment.created_at))
        ).all()
        names = user_names(session, {c.author_id for c in rows})
        return [CommentView(c, names.get(c.author_id, "?")) for c in rows]


# --- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    model: str
    number: int
    registered_by: str
    submitted: str
    status: list[str]


def review_queue(db: Database, actor: Principal) -> list[QueueItem]:
    """Versions in review that this person may decide on and has not decided on yet."""
    with read_as(db, actor) as session:
        me = refresh(session, actor)
        if me.service:  # a service account never decides, so nothing waits for it
            return []
        stmt = (
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(ModelVersion.state == VersionState.IN_REVIEW)
        )
        rows = session.exec(
            scoped(stmt, readable_team_ids(me)).order_by(col(ModelVersion.updated_at))
        ).all()
        names = user_names(session, {v.registered_by_id for v, _ in rows})
        mine = {
            (version_id, review_round)
            for version_id, review_round in session.exec(
                select(Decision.version_id, Decision.review_round).where(
                    Decision.reviewer_id == me.user_id,
                    col(Decision.version_id).in_([v.id for v, _ in rows]),
                )
            )
        }
        waiting = [
            (version, model)
            for version, model in rows
            if me.can(Permission.DECIDE, model.team_id)
            and version.registered_by_id != me.user_id
            and (version.id, version.review_round) not in mine
        ]
        statuses = policy_statuses(session, [(m, v, v.review_round) for v, m in waiting])
        return [
            QueueItem(
                model.name,
                version.number,
                names.get(version.registered_by_id, "?"),
                version.updated_at.strftime("%Y-%m-%d %H:%M"),
                status.explain(),
            )
            for (version, model), status in zip(waiting, statuses, strict=True)
        ]


@dataclass(frozen=True)
class DecisionView:
    decision: Decision
    reviewer: str
    counts: bool


def review_detail(
    db: Database, actor: Principal, model_name: str, number: int
) -> tuple[MLModel, ModelVersion, PolicyStatus, list[DecisionView]]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        status = policy_status(session, model, version)
        eval_hash = current_evaluation_hash(session, version)
        decisions = decisions_of(session, version.id or 0)
        names = user_names(session, {d.reviewer_id for d in decisions})
        views = [
            DecisionView(
                d,
                names.get(d.reviewer_id, "?"),
                d.review_round == version.review_round
                and d.artifact_sha256 == version.artifact_sha256
                and d.evaluation_sha256 == eval_hash,
            )
            for d in decisions
        ]
        return model, version, status, views
