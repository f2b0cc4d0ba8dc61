"""Review: submission, decisions under the approval policy, discussion with @mentions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, validation
from core.auth import ROLE_PERMISSIONS, Permission, Principal, load_grants, require
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    ROLE_LABELS,
    ApprovalPolicy,
    Comment,
    Decision,
    DecisionKind,
    Evaluation,
    MLModel,
    ModelVersion,
    RiskTier,
    Role,
    RoleGrant,
    User,
    VersionState,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.portfolio import notify
from core.services.registry import get_model, get_version
from core.workflow import Action, next_state

DEFAULT_POLICIES: dict[str, tuple[int, tuple[Role, ...]]] = {
    RiskTier.LOW: (1, (Role.REVIEWER,)),
    RiskTier.MEDIUM: (1, (Role.REVIEWER,)),
    RiskTier.HIGH: (2, (Role.REVIEWER, Role.COMPLIANCE)),
}
MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9._%+-]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")
_ACTION = {
    DecisionKind.APPROVE: Action.APPROVE,
    DecisionKind.REQUEST_CHANGES: Action.REQUEST_CHANGES,
    DecisionKind.REJECT: Action.REJECT,
}


# --- approval policy ----------------------------------------------------------------------


def policy_for(session: Session, risk_tier: str) -> ApprovalPolicy:
    stored = session.exec(select(ApprovalPolicy).where(ApprovalPolicy.risk_tier == risk_tier))
    policy = stored.first()
    if policy is not None:
        return policy
    count, roles = DEFAULT_POLICIES[RiskTier(risk_tier)]
    return ApprovalPolicy(
        risk_tier=risk_tier,
        min_approvals=count,
        required_roles=[r.value for r in roles],
        row_version=0,
    )


def update_policy(
    db: Database,
    actor: Principal,
    risk_tier: str,
    *,
    min_approvals: int,
    required_roles: list[str],
    required_checklists: list[str] | None = None,
    required_signoffs: list[str] | None = None,
    row_version: int,
) -> ApprovalPolicy:
    if risk_tier not in RiskTier._value2member_map_:
        raise InvalidInput(f"{risk_tier!r} is not a risk tier; use low, medium or high.")
    if not 1 <= min_approvals <= 10:
        raise InvalidInput("The number of approvals must be between 1 and 10.")
    roles = sorted({Role(r).value for r in required_roles if r in Role._value2member_map_})
    if len(roles) != len(set(required_roles)):
        raise InvalidInput("Required roles must be among: " + ", ".join(r.value for r in Role))
    if len(roles) > min_approvals:
        raise InvalidInput(
            f"{len(roles)} roles must be among the approvers, but only {min_approvals} "
            "approvals are needed; raise the number of approvals or require fewer roles."
        )
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="edit approval policies")
        policy = policy_for(session, risk_tier)
        if policy.row_version != row_version:
            raise Conflict("Someone else changed this policy meanwhile. Reload and try again.")
        before = {"min_approvals": policy.min_approvals, "required_roles": policy.required_roles}
        policy.min_approvals = min_approvals
        policy.required_roles = roles
        policy.required_checklists = sorted(set(required_checklists or []))
        policy.required_signoffs = sorted(set(required_signoffs or []))
        policy.updated_by_id = actor.user_id
        policy.updated_at = utcnow()
        policy.row_version += 1
        session.add(policy)
        audit.record(
            session,
            actor,
            "policy.updated",
            object_type="policy",
            object_id=risk_tier,
            summary=f"Approval policy for {risk_tier} risk: {min_approvals} approvals, roles "
            + (", ".join(roles) or "any"),
            details={
                "before": before,
                "after": {"min_approvals": min_approvals, "required_roles": roles},
            },
        )
        return policy


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
    ev = session.exec(
        select(Evaluation)
        .where(Evaluation.version_id == version.id)
        .order_by(col(Evaluation.id).desc())
    ).first()
    return ev.dataset_sha256 if ev else ""


def policy_status(session: Session, model: MLModel, version: ModelVersion) -> PolicyStatus:
    policy = policy_for(session, model.risk_tier)
    approvals = session.exec(
        select(Decision).where(
            Decision.version_id == version.id,
            Decision.review_round == version.review_round,
            Decision.kind == DecisionKind.APPROVE,
        )
    ).all()
    eval_hash = current_evaluation_hash(session, version)
    names = user_names(session, {d.reviewer_id for d in approvals})
    valid: list[Decision] = []
    stale: list[Decision] = []
    for d in approvals:
        fresh = d.artifact_sha256 == version.artifact_sha256 and d.evaluation_sha256 == eval_hash
        (valid if fresh else stale).append(d)
    roles_present = {r for d in valid for r in d.roles}
    return PolicyStatus(
        needed=policy.min_approvals,
        counted=[names.get(d.reviewer_id, "?") for d in valid],
        missing_roles=[r for r in policy.required_roles if r not in roles_present],
        stale=[names.get(d.reviewer_id, "?") for d in stale],
    )


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
        model = get_model(session, model_name)
        require(
            session,
            actor,
            Permission.SUBMIT_REVIEW,
            team_id=model.team_id,
            what=f"submit {model.name} for review",
            model_id=model.id,
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
    model = get_model(session, model_name)
    current = require(
        session,
        actor,
        Permission.DECIDE,
        team_id=model.team_id,
        what=f"of {model.name}",
        model_id=model.id,
    )
    version = _locked_version(session, model, number)
    _expect(version, row_version)
    if version.registered_by_id == actor.user_id:
        raise InvalidInput(
            "You registered this version, so you cannot decide on it (separation of duties). "
            "Ask another reviewer."
        )
    _refuse_repeat(session, version, actor)
    target = next_state(version.state, _ACTION[kind])
    decision = Decision(
        version_id=version.id or 0,
        review_round=version.review_round,
        reviewer_id=actor.user_id,
        roles=sorted(
            r.value
            for r in current.roles(model.team_id)
            if Permission.DECIDE in ROLE_PERMISSIONS[r]
        ),
        kind=kind,
        reason=why,
        artifact_sha256=version.artifact_sha256,
        evaluation_sha256=current_evaluation_hash(session, version),
    )
    session.add(decision)
    session.flush()
    status = policy_status(session, model, version)
    if kind != DecisionKind.APPROVE or status.satisfied:
        _touch(version, target)
    else:
        version.row_version += 1
    session.add(version)
    _after_decision(session, actor, model, version, kind, why, status)
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
    if kind != DecisionKind.APPROVE:
        notify(
            session,
            {version.registered_by_id},
            "changes_requested" if kind == DecisionKind.REQUEST_CHANGES else "rejected",
            f"{actor.name} {label} {model.name} v{version.number}",
            body=why,
            link=f"pages/3_Reviews.py?model={model.name}&version={version.number}",
            model_id=model.id,
            version_id=version.id,
        )
    _close_review_requests(session, actor, version)


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
        model = get_model(session, model_name)
        require(
            session,
            actor,
            Permission.COMMENT,
            team_id=model.team_id,
            what=f"comment on {model.name}",
            model_id=model.id,
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
        mentioned = mentioned_users(session, text) - {actor.user_id}
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


def comments_of(db: Database, model_name: str, number: int) -> list[CommentView]:
    with db.read() as session:
        model = get_model(session, model_name)
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
        grants = load_grants(session, actor.user_id)
        me = Principal(actor.user_id, actor.email, actor.name, grants)
        rows = session.exec(
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(ModelVersion.state == VersionState.IN_REVIEW)
            .order_by(col(ModelVersion.updated_at))
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
        return [
            QueueItem(
                model.name,
                version.number,
                names.get(version.registered_by_id, "?"),
                version.updated_at.strftime("%Y-%m-%d %H:%M"),
                policy_status(session, model, version).explain(),
            )
            for version, model in rows
            if me.can(Permission.DECIDE, model.team_id)
            and version.registered_by_id != me.user_id
            and (version.id, version.review_round) not in mine
        ]


@dataclass(frozen=True)
class DecisionView:
    decision: Decision
    reviewer: str
    counts: bool


def review_detail(
    db: Database, model_name: str, number: int
) -> tuple[MLModel, ModelVersion, PolicyStatus, list[DecisionView]]:
    with db.read() as session:
        model = get_model(session, model_name)
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
