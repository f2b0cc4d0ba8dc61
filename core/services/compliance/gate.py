"""The production gate: what policy and compliance still require, and the compliance queue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, select

from core.auth import Principal, refresh, visible_teams
from core.db import Database
from core.models import (
    MLModel,
    ModelVersion,
    Signoff,
    User,
    utcnow,
)
from core.policy import CARD_SECTIONS
from core.services import read_as
from core.services.compliance.checklists import (
    TemplateChecklist,
    _template_checklist,
    evidence_hash,
    version_checklists,
)
from core.services.compliance.common import EXPIRY_NOTICE_DAYS, MEANINGS, QUEUE_STATES
from core.services.compliance.signoffs import (
    SignoffView,
    _aware,
    _utc,
    signing_roles,
    signoff_views,
)
from core.services.compliance.templates import stored_templates
from core.services.registry import get_model, get_version, scoped
from core.services.reviews import PolicyInForce, policy_for

# --- the gate, status and the queue ---------------------------------------------------------

MODEL_CARD_PAGE = "/Models"  # the Models page; its "Model card" tab is where sections are written


def card_link(model_name: str) -> str:
    """Where a model's card is written: the Models page opened on that model."""
    return f"{MODEL_CARD_PAGE}?model={quote(model_name, safe='')}"


def card_gaps(model: MLModel, required: Iterable[str]) -> list[str]:
    """The required model-card sections that are empty, in order."""
    wanted = set(required)
    return [
        key
        for key in CARD_SECTIONS
        if key in wanted and not str(model.model_card.get(key) or "").strip()
    ]


def card_gap_message(model: MLModel, key: str) -> str:
    return (
        f"model card section '{key.replace('_', ' ')}' is empty; write it on the Models page, "
        f"Model card tab: {card_link(model.name)}"
    )


@dataclass(frozen=True)
class GateItem:
    """One thing the gate still needs; for a checklist, the keys of its open items (each a
    deep link: the Compliance page opens the checklist on that item)."""

    text: str
    template: str | None = None
    items: tuple[str, ...] = ()


def production_gate(session: Session, model: MLModel, version: ModelVersion) -> list[str]:
    """What the approval policy still needs before production, in plain words; [] = open."""
    return [g.text for g in gate_items(session, model, version)]


def gate_items(session: Session, model: MLModel, version: ModelVersion) -> list[GateItem]:
    """What the approval policy still needs before production; a required checklist that does
    not apply to this model (its tier or tags) is never asked for: it cannot be filled in."""
    policy = policy_for(session, model.risk_tier)
    missing: list[GateItem] = []
    templates = {t.key: t for t in stored_templates(session)}
    for key in policy.required_checklists:
        template = templates.get(key)
        if template is None:
            missing.append(
                GateItem(
                    f"checklist {key!r} is required by the {model.risk_tier}-risk policy but no "
                    "such template exists; an admin must add it or change the policy"
                )
            )
            continue
        if not template.applies_to(model.risk_tier, model.tags):
            continue
        checklist = _template_checklist(session, version, template)
        open_items = checklist.required_open
        if open_items:
            missing.append(
                GateItem(
                    f"checklist '{template.name}': {len(open_items)} of "
                    f"{checklist.required_total} required items not met or marked not "
                    "applicable with a reason (" + ", ".join(i.key for i in open_items) + ")",
                    template.key,
                    tuple(i.key for i in open_items),
                )
            )
    for key in card_gaps(model, policy.fields.required_card_sections):
        missing.append(GateItem(card_gap_message(model, key)))
    views = signoff_views(session, version) if policy.required_signoffs else []
    for meaning in policy.required_signoffs:
        mine = [v for v in views if v.signoff.meaning == meaning]
        if any(v.counts for v in mine):
            continue
        why = "; ".join(
            f"{v.signoff.printed_name}'s signature is {v.status}: {v.problem}"
            for v in mine
            if v.status != "superseded"
        )
        missing.append(GateItem(f"sign-off '{meaning}' missing" + (f" ({why})" if why else "")))
    from core.services.findings import blocking_findings

    return missing + [GateItem(line) for line in blocking_findings(session, model, version)]


@dataclass(frozen=True)
class FrameworkStatus:
    key: str
    name: str
    required_total: int
    done: int
    open_items: list[str]

    @property
    def complete(self) -> bool:
        return not self.open_items

    @property
    def label(self) -> str:
        if self.complete:
            return "complete"
        return f"{len(self.open_items)} open items"


@dataclass(frozen=True)
class VersionCompliance:
    model: MLModel
    version: ModelVersion
    frameworks: list[FrameworkStatus]
    signoffs: list[SignoffView]
    expiring: list[SignoffView]
    gate: list[str]
    evidence_sha256: str
    gate_items: list[GateItem] = field(default_factory=list)
    required_checklists: list[str] = field(default_factory=list)
    required_signoffs: list[str] = field(default_factory=list)
    policy_label: str = ""
    signable: tuple[str, ...] = ()  # meanings the reader may sign on this version


def _framework(checklist: TemplateChecklist) -> FrameworkStatus:
    open_items = [i.key for i in checklist.required_open]
    return FrameworkStatus(
        checklist.key,
        checklist.name,
        checklist.required_total,
        checklist.required_total - len(open_items),
        open_items,
    )


def _expiring(views: Iterable[SignoffView], now: datetime) -> list[SignoffView]:
    horizon = now + timedelta(days=EXPIRY_NOTICE_DAYS)
    return [
        v
        for v in views
        if v.counts and v.signoff.expires_at and (_aware(v.signoff.expires_at) or now) <= horizon
    ]


def version_compliance(
    db: Database, actor: Principal, model_name: str, number: int
) -> VersionCompliance:
    """Status by framework, sign-offs, what expires soon, and what the gate still needs."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        views = signoff_views(session, version)
        policy = policy_for(session, model.risk_tier)
        current = refresh(session, actor)
        items = gate_items(session, model, version)
        return VersionCompliance(
            model=model,
            version=version,
            frameworks=[_framework(c) for c in version_checklists(session, model, version)],
            signoffs=views,
            expiring=_expiring(views, utcnow()),
            gate=[g.text for g in items],
            gate_items=items,
            evidence_sha256=evidence_hash(session, version),
            required_checklists=list(policy.required_checklists),
            required_signoffs=list(policy.required_signoffs),
            policy_label=policy.label,
            signable=()
            if version.registered_by_id == actor.user_id
            else meanings_for(current, model.team_id, policy),
        )


@dataclass(frozen=True)
class QueueRow:
    model: str
    number: int
    state: str
    risk_tier: str
    open_items: int
    waiting_for: list[str]


def compliance_queue(db: Database, actor: Principal) -> list[QueueRow]:
    """Versions the actor may see, in review or approved, whose checklists are incomplete or
    lack sign-offs."""
    with read_as(db, actor) as session:
        stmt = (
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(col(ModelVersion.state).in_(list(QUEUE_STATES)))
            .where(col(MLModel.archived_at).is_(None))
        )
        rows = session.exec(
            scoped(stmt, visible_teams(session, actor)).order_by(
                col(MLModel.name), col(ModelVersion.number)
            )
        ).all()
        queue = []
        for version, model in rows:
            frameworks = [_framework(c) for c in version_checklists(session, model, version)]
            waiting = [f"{f.name}: {f.label}" for f in frameworks if not f.complete]
            gate_signoffs = [g for g in production_gate(session, model, version) if "sign-off" in g]
            if not any(v.counts for v in signoff_views(session, version)):
                gate_signoffs = gate_signoffs or ["no sign-off that still counts"]
            waiting += gate_signoffs
            if waiting:
                queue.append(
                    QueueRow(
                        model.name,
                        version.number,
                        version.state,
                        model.risk_tier,
                        sum(len(f.open_items) for f in frameworks),
                        waiting,
                    )
                )
        return queue


def meanings_for(principal: Principal, team_id: int, judged: PolicyInForce) -> tuple[str, ...]:
    """The meanings the principal may sign in this team under the policy in force."""
    return tuple(m for m in MEANINGS if signing_roles(principal, team_id, judged, m))


def people(db: Database) -> list[tuple[int, str]]:
    """Active people who may own a checklist item."""
    with db.read() as session:
        users = session.exec(select(User).where(col(User.is_active)).order_by(col(User.name)))
        return [(u.id or 0, u.name) for u in users]


def signer_view(s: Signoff) -> dict[str, Any]:
    """The printed record of a signature or revocation, as every view and export shows it."""
    return {
        "id": s.id,
        "kind": s.kind,
        "meaning": s.meaning,
        "printed_name": s.printed_name,
        "role": s.role,
        "signed_at_utc": _utc(s.signed_at),
        "expires_at_utc": _utc(s.expires_at) if s.expires_at else "",
        "artifact_sha256": s.artifact_sha256,
        "evidence_sha256": s.evidence_sha256,
        "reason": s.reason,
        "supersedes_id": s.supersedes_id,
    }
