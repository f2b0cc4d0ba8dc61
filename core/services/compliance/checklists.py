"""Checklist items of a version: status, owner, notes and evidence."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core import audit, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import Permission, Principal, visible_teams
from core.checklists import (
    ChecklistItemTemplate,
    ChecklistTemplate,
    Crosswalk,
    applicable_templates,
    load_crosswalks,
    load_templates,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    ChecklistItem,
    Evidence,
    MLModel,
    ModelVersion,
    User,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.compliance.common import (
    EVIDENCE_KINDS,
    MAX_DOCUMENT_BYTES,
    STATUS_LABELS,
    STATUSES,
)
from core.services.compliance.templates import stored_templates
from core.services.registry import get_model, get_version, scoped

# --- checklist state ------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceView:
    id: int
    kind: str
    reference: str
    filename: str
    document_sha256: str | None
    added_by: str
    created_at: datetime


@dataclass(frozen=True)
class ItemView:
    template_key: str
    key: str
    section: str
    title: str
    guidance: str
    evidence_hint: str
    required: bool
    status: str
    owner_id: int | None
    owner: str
    notes: str
    na_reason: str
    row_version: int
    evidence: list[EvidenceView]
    also: tuple[str, ...] = ()  # "also satisfies ...; source: ..." from the shipped crosswalks

    @property
    def done(self) -> bool:
        return self.status == "met" or (self.status == "not_applicable" and bool(self.na_reason))


@dataclass(frozen=True)
class TemplateChecklist:
    key: str
    name: str
    version: str
    items: list[ItemView]

    @property
    def required_open(self) -> list[ItemView]:
        return [i for i in self.items if i.required and not i.done]

    @property
    def required_total(self) -> int:
        return sum(1 for i in self.items if i.required)

    @property
    def complete(self) -> bool:
        return not self.required_open


def _template_checklist(
    session: Session,
    version: ModelVersion,
    template: ChecklistTemplate,
    applicable: list[ChecklistTemplate] | None = None,
) -> TemplateChecklist:
    rows = {
        r.item_key: r
        for r in session.exec(
            select(ChecklistItem).where(
                ChecklistItem.version_id == version.id,
                ChecklistItem.template_key == template.key,
            )
        )
    }
    evidence = _evidence_by_item(session, [r.id or 0 for r in rows.values()])
    names = _names(session)
    items = []
    for spec in template.items:
        row = rows.get(spec.key)
        items.append(
            ItemView(
                template_key=template.key,
                key=spec.key,
                section=spec.section,
                title=spec.title,
                guidance=spec.guidance,
                evidence_hint=spec.evidence_hint,
                required=spec.required,
                status=row.status if row else "open",
                owner_id=row.owner_id if row else None,
                owner=names.get(row.owner_id, "") if row and row.owner_id else "",
                notes=row.notes if row else "",
                na_reason=row.na_reason if row else "",
                row_version=row.row_version if row else 0,
                evidence=[_evidence_view(e, names) for e in evidence.get(row.id or 0, [])]
                if row
                else [],
                also=tuple(
                    f"Also satisfies {target.name}, {item.section}: {item.title}; source: "
                    f"{walk.source.title} ({walk.says})"
                    for walk, target, item in mapped_items(applicable or [], template.key, spec.key)
                ),
            )
        )
    return TemplateChecklist(template.key, template.name, template.version, items)


def _evidence_by_item(session: Session, item_ids: list[int]) -> dict[int, list[Evidence]]:
    if not item_ids:
        return {}
    grouped: dict[int, list[Evidence]] = {}
    stmt = select(Evidence).where(col(Evidence.item_id).in_(item_ids)).order_by(col(Evidence.id))
    for row in session.exec(stmt):
        grouped.setdefault(row.item_id, []).append(row)
    return grouped


def _evidence_view(row: Evidence, names: dict[int | None, str]) -> EvidenceView:
    return EvidenceView(
        row.id or 0,
        row.kind,
        row.reference,
        row.filename,
        row.document_sha256,
        names.get(row.added_by_id, "?"),
        row.created_at,
    )


def _names(session: Session) -> dict[int | None, str]:
    return {u.id: u.name for u in session.exec(select(User))}


def applicable_for(session: Session, model: MLModel) -> list[ChecklistTemplate]:
    return applicable_templates(stored_templates(session), model.risk_tier, model.tags)


def version_checklists(
    session: Session, model: MLModel, version: ModelVersion
) -> list[TemplateChecklist]:
    applicable = applicable_for(session, model)
    return [_template_checklist(session, version, t, applicable) for t in applicable]


def checklists(
    db: Database, actor: Principal, model_name: str, number: int
) -> list[TemplateChecklist]:
    """The checklists that apply to this version, with each item's state and evidence."""
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        return version_checklists(session, model, version)


def _template_of(session: Session, model: MLModel, template_key: str) -> ChecklistTemplate:
    for template in applicable_for(session, model):
        if template.key == template_key:
            return template
    raise NotFound(
        f"The checklist {template_key!r} does not apply to {model.name} (risk tier "
        f"{model.risk_tier}); pick one of the checklists shown for this version."
    )


def _has_evidence(session: Session, row: ChecklistItem) -> bool:
    if row.id is None:
        return False
    return session.exec(select(Evidence.id).where(Evidence.item_id == row.id)).first() is not None


def _item_row(
    session: Session, model: MLModel, version: ModelVersion, template_key: str, item_key: str
) -> ChecklistItem:
    _template_of(session, model, template_key).item(item_key)
    row = session.exec(
        select(ChecklistItem)
        .where(
            ChecklistItem.version_id == version.id,
            ChecklistItem.template_key == template_key,
            ChecklistItem.item_key == item_key,
        )
        .with_for_update()
    ).first()
    if row is None:
        row = ChecklistItem(
            version_id=version.id or 0, template_key=template_key, item_key=item_key, row_version=0
        )
    return row


def _stored_item_row(
    session: Session, model: MLModel, version: ModelVersion, template_key: str, item_key: str
) -> ChecklistItem:
    """The item's row, written first if it has none yet (evidence needs its id)."""
    row = _item_row(session, model, version, template_key, item_key)
    if row.id is None:
        row.row_version = 1
        session.add(row)
        session.flush()
    return row


def update_item(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    template_key: str,
    item_key: str,
    *,
    status: str,
    owner_id: int | None = None,
    notes: str = "",
    na_reason: str = "",
    no_evidence_reason: str = "",
    row_version: int,
) -> ChecklistItem:
    """Set an item's status, owner and notes; `row_version` is what the editor saw (0: new).
    An item is met only with evidence, or with `no_evidence_reason` saying why none is needed;
    it does not apply only with `na_reason`. The reason is kept in the item's reason column."""
    if status not in STATUSES:
        raise InvalidInput(f"{status!r} is not an item status; use open, met or not_applicable.")
    text = validation.plain_text(notes, "notes", max_length=5000)
    reason = validation.plain_text(
        na_reason, "reason it does not apply", max_length=1000, required=status == "not_applicable"
    )
    unneeded = validation.plain_text(
        no_evidence_reason, "reason no evidence is needed", max_length=1000
    )
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.COMPLIANCE_WORK,
            what="work on the checklists of {model}",
        )
        version = get_version(session, model, number)
        row = _item_row(session, model, version, template_key, item_key)
        if row.row_version != row_version:
            raise Conflict(
                f"Someone else changed the item {item_key!r} meanwhile. Reload the page to see "
                "their change, then edit again."
            )
        if owner_id is not None and session.get(User, owner_id) is None:
            raise NotFound(f"No person with id {owner_id} to own this item; pick another owner.")
        if status == "met" and not unneeded and not _has_evidence(session, row):
            raise InvalidInput(
                f"Item {item_key!r} cannot be met without evidence. Add evidence to it first, "
                "or write why it needs none."
            )
        before = {"status": row.status, "owner_id": row.owner_id}
        row.status, row.owner_id, row.notes = status, owner_id, text
        row.na_reason = {"not_applicable": reason, "met": unneeded}.get(status, "")
        row.updated_by_id, row.updated_at = actor.user_id, utcnow()
        row.row_version += 1
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "checklist.item_updated",
            object_type="checklist_item",
            object_id=row.id,
            model_id=model.id,
            summary=f"{model.name} v{version.number}: {template_key}/{item_key} set to "
            f"{STATUS_LABELS[status].lower()}" + (f" ({row.na_reason})" if row.na_reason else ""),
            details={"before": before, "after": {"status": status, "owner_id": owner_id}},
        )
        return row


def check_document(document: bytes | None, name: str) -> None:
    """Refuse an empty or oversized evidence document, or one without a file name."""
    if not document:
        raise InvalidInput("Choose a document to upload; the file is empty or missing.")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"The document is {len(document) // (1024 * 1024)} MB; the limit is "
            f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."
        )
    if not name:
        raise InvalidInput("Give the document a file name.")


def add_evidence(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    template_key: str,
    item_key: str,
    *,
    kind: str,
    reference: str = "",
    document: bytes | None = None,
    filename: str = "",
    store: ArtifactStore | None = None,
) -> Evidence:
    """Link something already in Quorum, or store an uploaded document with its SHA-256."""
    if kind not in EVIDENCE_KINDS:
        raise InvalidInput(
            f"{kind!r} is not an evidence kind; use one of {', '.join(EVIDENCE_KINDS)}."
        )
    ref = validation.plain_text(reference, "evidence reference", max_length=300)
    name = validation.plain_text(filename, "file name", max_length=255)
    if kind == "document":
        check_document(document, name)
    elif not ref:
        raise InvalidInput(
            f"Say which {kind.replace('_', ' ')} this evidence points to (for example "
            "'v3 evaluation' or a review comment)."
        )
    with read_as(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.COMPLIANCE_WORK,
            what="add evidence to the checklists of {model}",
        )
    blob = (store or default_store()).put(document, kind="documents") if document else None
    try:
        with unit_of_work(db, actor) as session:
            model = get_model(
                session,
                actor,
                model_name,
                permission=Permission.COMPLIANCE_WORK,
                what="add evidence to the checklists of {model}",
            )
            version = get_version(session, model, number)
            row = _stored_item_row(session, model, version, template_key, item_key)
            evidence = Evidence(
                item_id=row.id or 0,
                kind=kind,
                reference=ref or name,
                document_key=blob.key if blob else None,
                document_sha256=blob.sha256 if blob else None,
                filename=name if blob else "",
                added_by_id=actor.user_id,
            )
            session.add(evidence)
            session.flush()
            audit.record(
                session,
                actor,
                "checklist.evidence_added",
                object_type="evidence",
                object_id=evidence.id,
                model_id=model.id,
                summary=f"{model.name} v{version.number}: evidence for {template_key}/{item_key}"
                f" ({kind.replace('_', ' ')}: {evidence.reference})",
                details={"sha256": evidence.document_sha256, "kind": kind},
            )
            return evidence
    except BaseException:
        if blob is not None:
            (store or default_store()).delete(blob.key)
        raise


def evidence_document(
    db: Database, actor: Principal, evidence_id: int, store: ArtifactStore | None = None
) -> tuple[str, bytes]:
    """An uploaded document's file name and bytes, verified against its stored SHA-256."""
    with read_as(db, actor) as session:
        stmt = (
            select(Evidence)
            .join(ChecklistItem, col(ChecklistItem.id) == col(Evidence.item_id))
            .join(ModelVersion, col(ModelVersion.id) == col(ChecklistItem.version_id))
            .join(MLModel, col(MLModel.id) == col(ModelVersion.model_id))
            .where(Evidence.id == evidence_id)
        )
        row = session.exec(scoped(stmt, visible_teams(session, actor))).first()
    if row is None or row.document_key is None:
        raise NotFound("No stored document of that evidence is visible to you.")
    data = (store or default_store()).get(row.document_key, sha256=row.document_sha256)
    return row.filename, data


def evidence_hash(session: Session, version: ModelVersion) -> str:
    """SHA-256 over the version's evidence set and item states, in a canonical order."""
    rows = session.exec(select(ChecklistItem).where(ChecklistItem.version_id == version.id)).all()
    evidence = _evidence_by_item(session, [r.id or 0 for r in rows])
    states = []
    for row in rows:
        items = sorted(
            [e.kind, e.reference, e.document_sha256 or ""] for e in evidence.get(row.id or 0, [])
        )
        if row.status == "open" and not items:
            continue
        states.append([row.template_key, row.item_key, row.status, row.na_reason, items])
    payload = json.dumps(sorted(states), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


# --- evidence once, many frameworks -----------------------------------------------------------


@functools.cache
def shipped_crosswalks() -> tuple[Crosswalk, ...]:
    """The crosswalk pairs shipped with the templates (checked against the shipped ones)."""
    return tuple(load_crosswalks(load_templates()))


def mapped_items(
    applicable: list[ChecklistTemplate], template_key: str, item_key: str
) -> list[tuple[Crosswalk, ChecklistTemplate, ChecklistItemTemplate]]:
    """The items of the applicable templates that a cited crosswalk maps this item to."""
    by_key = {t.key: t for t in applicable}
    found = []
    for walk in shipped_crosswalks():
        other = walk.other(template_key, item_key)
        target = by_key.get(other[0]) if other else None
        if other is None or target is None:
            continue
        item = next((i for i in target.items if i.key == other[1]), None)
        if item is not None:  # an admin may have removed it from the stored template
            found.append((walk, target, item))
    return found


def apply_to_mapped(
    db: Database, actor: Principal, model_name: str, number: int, evidence_id: int
) -> list[str]:
    """Attach a copy of one item's evidence to each item a cited crosswalk maps it to, in the
    checklists that apply to this version; returns 'template/item' of each item it reached."""
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.COMPLIANCE_WORK,
            what="add evidence to the checklists of {model}",
        )
        version = get_version(session, model, number)
        evidence = session.get(Evidence, evidence_id)
        row = session.get(ChecklistItem, evidence.item_id) if evidence else None
        if evidence is None or row is None or row.version_id != version.id:
            raise NotFound(
                f"Evidence #{evidence_id} is not on a checklist of {model.name} v{version.number}; "
                "pick evidence shown on this version."
            )
        targets = mapped_items(applicable_for(session, model), row.template_key, row.item_key)
        if not targets:
            raise InvalidInput(
                f"No published crosswalk maps {row.template_key}/{row.item_key} to an item of "
                f"the checklists of {model.name}; add evidence to other items yourself."
            )
        reached = []
        for walk, template, item in targets:
            target = _stored_item_row(session, model, version, template.key, item.key)
            if _holds(session, target, evidence):
                continue
            copy = Evidence(
                item_id=target.id or 0,
                kind=evidence.kind,
                reference=evidence.reference,
                document_key=evidence.document_key,
                document_sha256=evidence.document_sha256,
                filename=evidence.filename,
                added_by_id=actor.user_id,
            )
            session.add(copy)
            session.flush()
            audit.record(
                session,
                actor,
                "checklist.evidence_applied",
                object_type="evidence",
                object_id=copy.id,
                model_id=model.id,
                summary=f"{model.name} v{version.number}: evidence #{evidence.id} of "
                f"{row.template_key}/{row.item_key} also applied to {template.key}/{item.key} "
                f"({walk.source.title})",
                details={
                    "from_evidence": evidence.id,
                    "source": walk.source.cite(),
                    "says": walk.says,
                },
            )
            reached.append(f"{template.key}/{item.key}")
        return reached


def _holds(session: Session, row: ChecklistItem, evidence: Evidence) -> bool:
    if row.id is None:
        return False
    same = select(Evidence.id).where(
        Evidence.item_id == row.id,
        Evidence.kind == evidence.kind,
        Evidence.reference == evidence.reference,
        Evidence.document_sha256 == evidence.document_sha256,
    )
    return session.exec(same).first() is not None
