"""Compliance: checklist templates, item work with evidence, electronic sign-offs, the gate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core import audit, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import ROLE_PERMISSIONS, SYSTEM, Permission, Principal, require
from core.checklists import (
    DEFAULT_TEMPLATE_DIR,
    EVIDENCE_HINTS,
    ChecklistTemplate,
    applicable_templates,
    load_templates,
    parse_template,
    parse_template_json,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, QuorumError
from core.models import (
    ChecklistItem,
    ChecklistTemplateRecord,
    Evidence,
    MLModel,
    ModelVersion,
    Notification,
    Signoff,
    User,
    VersionState,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.portfolio import notify
from core.services.registry import get_model, get_version
from core.services.reviews import policy_for

MEANINGS = ("validated", "approved for production", "business accepted", "compliance reviewed")
STATUSES = ("open", "met", "not_applicable")
STATUS_LABELS = {"open": "Open", "met": "Met", "not_applicable": "Not applicable"}
EVIDENCE_KINDS = EVIDENCE_HINTS
LINK_KINDS = tuple(k for k in EVIDENCE_KINDS if k != "document")
EXPIRY_NOTICE_DAYS = 30
MAX_EXPIRY_DAYS = 3660
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
SIGNATURE, REVOCATION = "signature", "revocation"
QUEUE_STATES = (VersionState.IN_REVIEW, VersionState.APPROVED)


# --- templates ------------------------------------------------------------------------------


def sync_templates(db: Database, directory: Path = DEFAULT_TEMPLATE_DIR) -> list[str]:
    """Copy the template files into the store; templates edited in the app are kept as they are."""
    files = load_templates(directory)
    changed: list[str] = []
    with db.write() as session:
        stored = {r.key: r for r in session.exec(select(ChecklistTemplateRecord))}
        for template in files:
            record = stored.get(template.key)
            body = template.to_dict()
            if record is not None and (record.source != "file" or record.body == body):
                continue
            if record is None:
                record = ChecklistTemplateRecord(key=template.key, name=template.name, body=body)
            else:
                record.name, record.body = template.name, body
                record.row_version += 1
                record.updated_at = utcnow()
            session.add(record)
            changed.append(template.key)
        if changed:
            audit.record(
                session,
                SYSTEM,
                "checklist_template.synced",
                object_type="checklist_template",
                object_id=",".join(changed),
                summary="Checklist templates loaded from files: " + ", ".join(changed),
            )
    return changed


def stored_templates(session: Session) -> list[ChecklistTemplate]:
    """The templates the app uses: the stored ones, or the files when none are stored yet."""
    records = session.exec(select(ChecklistTemplateRecord)).all()
    if not records:
        return load_templates()
    parsed = [parse_template(r.body, f"template {r.key}") for r in records]
    return sorted(parsed, key=lambda t: t.key)


@dataclass(frozen=True)
class TemplateRow:
    template: ChecklistTemplate
    source: str
    row_version: int
    updated_at: datetime | None


def list_templates(db: Database) -> list[TemplateRow]:
    with db.read() as session:
        records = {r.key: r for r in session.exec(select(ChecklistTemplateRecord))}
        rows = []
        for template in stored_templates(session):
            record = records.get(template.key)
            rows.append(
                TemplateRow(
                    template,
                    record.source if record else "file",
                    record.row_version if record else 0,
                    record.updated_at if record else None,
                )
            )
        return rows


def save_template(
    db: Database, actor: Principal, text: str, *, row_version: int | None = None
) -> ChecklistTemplateRecord:
    """Add or replace a template from its JSON text; `row_version` guards an edit."""
    template = parse_template_json(text, "The template")
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.MANAGE_POLICIES, what="edit checklist templates")
        record = session.exec(
            select(ChecklistTemplateRecord).where(ChecklistTemplateRecord.key == template.key)
        ).first()
        if record is not None and row_version is not None and record.row_version != row_version:
            raise Conflict(
                f"Someone else changed the template {template.key!r} meanwhile. Reload it, "
                "apply your edit again and save."
            )
        created = record is None
        if record is None:
            record = ChecklistTemplateRecord(key=template.key, name=template.name)
        else:
            record.row_version += 1
        record.name, record.body, record.source = template.name, template.to_dict(), "app"
        record.updated_by_id, record.updated_at = actor.user_id, utcnow()
        session.add(record)
        session.flush()
        audit.record(
            session,
            actor,
            "checklist_template.created" if created else "checklist_template.edited",
            object_type="checklist_template",
            object_id=template.key,
            summary=f"Checklist template {template.name} ({template.key}) "
            + ("added" if created else "edited")
            + f" with {len(template.items)} items",
            details={"version": template.version, "items": [i.key for i in template.items]},
        )
        return record


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
    session: Session, version: ModelVersion, template: ChecklistTemplate
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
    return [_template_checklist(session, version, t) for t in applicable_for(session, model)]


def checklists(db: Database, model_name: str, number: int) -> list[TemplateChecklist]:
    """The checklists that apply to this version, with each item's state and evidence."""
    with db.read() as session:
        model = get_model(session, model_name)
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


def _require_work(session: Session, actor: Principal, model: MLModel, what: str) -> None:
    require(
        session,
        actor,
        Permission.COMPLIANCE_WORK,
        team_id=model.team_id,
        what=f"{what} of {model.name}",
        model_id=model.id,
    )


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
    row_version: int,
) -> ChecklistItem:
    """Set an item's status, owner and notes; `row_version` is what the editor saw (0: new)."""
    if status not in STATUSES:
        raise InvalidInput(f"{status!r} is not an item status; use open, met or not_applicable.")
    text = validation.plain_text(notes, "notes", max_length=5000)
    reason = validation.plain_text(
        na_reason, "reason it does not apply", max_length=1000, required=status == "not_applicable"
    )
    with unit_of_work(db, actor) as session:
        model = get_model(session, model_name)
        _require_work(session, actor, model, "work on the checklists")
        version = get_version(session, model, number)
        row = _item_row(session, model, version, template_key, item_key)
        if row.row_version != row_version:
            raise Conflict(
                f"Someone else changed the item {item_key!r} meanwhile. Reload the page to see "
                "their change, then edit again."
            )
        if owner_id is not None and session.get(User, owner_id) is None:
            raise NotFound(f"No person with id {owner_id} to own this item; pick another owner.")
        before = {"status": row.status, "owner_id": row.owner_id}
        row.status, row.owner_id, row.notes = status, owner_id, text
        row.na_reason = reason if status == "not_applicable" else ""
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
            f"{STATUS_LABELS[status].lower()}" + (f" ({reason})" if row.na_reason else ""),
            details={"before": before, "after": {"status": status, "owner_id": owner_id}},
        )
        return row


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
        if not document:
            raise InvalidInput("Choose a document to upload; the file is empty or missing.")
        if len(document) > MAX_DOCUMENT_BYTES:
            raise InvalidInput(
                f"The document is {len(document) // (1024 * 1024)} MB; the limit is "
                f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."
            )
        if not name:
            raise InvalidInput("Give the document a file name.")
    elif not ref:
        raise InvalidInput(
            f"Say which {kind.replace('_', ' ')} this evidence points to (for example "
            "'v3 evaluation' or a review comment)."
        )
    with read_as(db, actor) as session:
        model = get_model(session, model_name)
        _require_work(session, actor, model, "add evidence to the checklists")
    blob = (store or default_store()).put(document, kind="documents") if document else None
    try:
        with unit_of_work(db, actor) as session:
            model = get_model(session, model_name)
            _require_work(session, actor, model, "add evidence to the checklists")
            version = get_version(session, model, number)
            row = _item_row(session, model, version, template_key, item_key)
            if row.id is None:
                row.row_version = 1
                session.add(row)
                session.flush()
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
    db: Database, evidence_id: int, store: ArtifactStore | None = None
) -> tuple[str, bytes]:
    """An uploaded document's file name and bytes, verified against its stored SHA-256."""
    with db.read() as session:
        row = session.get(Evidence, evidence_id)
    if row is None or row.document_key is None:
        raise NotFound("That evidence has no stored document.")
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


# --- sign-offs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignoffView:
    signoff: Signoff
    status: str  # valid, expired, revoked, superseded, stale
    problem: str
    revocation: Signoff | None = None

    @property
    def counts(self) -> bool:
        return self.status == "valid"

    @property
    def line(self) -> str:
        s = self.signoff
        return (
            f"{s.meaning} — signed by {s.printed_name} ({s.role.replace('_', ' ')}) on "
            f"{_utc(s.signed_at)}"
        )


def _utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _aware(when: datetime | None) -> datetime | None:
    from datetime import UTC

    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def signoff_views(
    session: Session, version: ModelVersion, *, now: datetime | None = None
) -> list[SignoffView]:
    """Every signature on the version, newest first, with whether it still counts and why not."""
    moment = now or utcnow()
    rows = list(
        session.exec(
            select(Signoff).where(Signoff.version_id == version.id).order_by(col(Signoff.id))
        )
    )
    revoked = {r.supersedes_id: r for r in rows if r.kind == REVOCATION}
    superseded = {r.supersedes_id for r in rows if r.kind == SIGNATURE and r.supersedes_id}
    current_evidence = evidence_hash(session, version)
    views = []
    for s in (r for r in rows if r.kind == SIGNATURE):
        status, problem = _signature_status(
            s, version, current_evidence, revoked, superseded, moment
        )
        views.append(SignoffView(s, status, problem, revoked.get(s.id)))
    return list(reversed(views))


def _signature_status(
    s: Signoff,
    version: ModelVersion,
    current_evidence: str,
    revoked: dict[int | None, Signoff],
    superseded: set[int],
    moment: datetime,
) -> tuple[str, str]:
    if s.id in revoked:
        r = revoked[s.id]
        return "revoked", f"revoked by {r.printed_name} on {_utc(r.signed_at)}: {r.reason}"
    if s.id in superseded:
        return "superseded", "replaced by a newer signature of the same meaning by the same person"
    expires = _aware(s.expires_at)
    if expires is not None and expires <= moment:
        return "expired", f"expired on {_utc(expires)}"
    if s.artifact_sha256 != version.artifact_sha256:
        return "stale", "the model file changed after signing"
    if s.evidence_sha256 != current_evidence:
        return "stale", "the checklist evidence or item states changed after signing"
    return "valid", ""


def _signing_role(current: Principal, team_id: int) -> str:
    roles = sorted(
        r.value for r in current.roles(team_id) if Permission.SIGN_OFF in ROLE_PERMISSIONS[r]
    )
    non_admin = [r for r in roles if r != "admin"]
    return (non_admin or roles or ["?"])[0]


def _verify_artifact(version: ModelVersion, store: ArtifactStore) -> None:
    try:
        store.get(version.artifact_key, sha256=version.artifact_sha256)
    except QuorumError as error:
        raise InvalidInput(
            f"Sign-off refused: the stored model file of v{version.number} no longer matches "
            "the SHA-256 recorded at registration, so there is nothing trustworthy to sign. "
            "Ask an admin to investigate; register the model again if the file was replaced.",
            details=[error.user_message],
        ) from error


def sign(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    meaning: str,
    typed_name: str,
    expires_days: int | None = None,
    *,
    store: ArtifactStore | None = None,
) -> Signoff:
    """An electronic signature bound to the version's artifact and evidence hashes."""
    if meaning not in MEANINGS:
        raise InvalidInput(
            f"{meaning!r} is not a sign-off meaning; use one of: {', '.join(MEANINGS)}."
        )
    typed = validation.plain_text(typed_name, "typed full name", max_length=120, required=True)
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"Expiry must be between 1 and {MAX_EXPIRY_DAYS} days from today.")
    with unit_of_work(db, actor) as session:
        model = get_model(session, model_name)
        current = require(
            session,
            actor,
            Permission.SIGN_OFF,
            team_id=model.team_id,
            what=f"{model.name}",
            model_id=model.id,
        )
        version = get_version(session, model, number)
        user = session.get(User, actor.user_id)
        if (
            user is None
            or " ".join(typed.split()).casefold() != " ".join(user.name.split()).casefold()
        ):
            raise InvalidInput(
                "Sign-off refused: the name you typed does not match your full name as Quorum "
                "holds it. Type your full name exactly as shown on your profile to confirm."
            )
        _verify_artifact(version, store or default_store())
        evidence = evidence_hash(session, version)
        earlier = [
            v
            for v in signoff_views(session, version)
            if v.signoff.signer_id == actor.user_id and v.signoff.meaning == meaning
        ]
        _refuse_replay(earlier, version, evidence)
        now = utcnow()
        previous = next((v for v in earlier if v.status not in ("revoked", "superseded")), None)
        signoff = Signoff(
            version_id=version.id or 0,
            kind=SIGNATURE,
            meaning=meaning,
            signer_id=actor.user_id,
            printed_name=user.name,
            role=_signing_role(current, model.team_id),
            artifact_sha256=version.artifact_sha256,
            evidence_sha256=evidence,
            signed_at=now,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
            supersedes_id=previous.signoff.id if previous else None,
        )
        session.add(signoff)
        session.flush()
        audit.record(
            session,
            actor,
            "signoff.signed",
            object_type="signoff",
            object_id=signoff.id,
            model_id=model.id,
            summary=f"{user.name} signed {model.name} v{version.number} as '{meaning}'"
            + (f", valid until {_utc(signoff.expires_at)}" if signoff.expires_at else "")
            + (f" (replaces signature #{signoff.supersedes_id})" if previous else ""),
            details={
                "printed_name": user.name,
                "role": signoff.role,
                "meaning": meaning,
                "artifact_sha256": version.artifact_sha256,
                "evidence_sha256": evidence,
                "signed_at": signoff.signed_at.isoformat(),
            },
        )
        return signoff


def _refuse_replay(earlier: list[SignoffView], version: ModelVersion, evidence: str) -> None:
    for view in earlier:
        s = view.signoff
        same = s.artifact_sha256 == version.artifact_sha256 and s.evidence_sha256 == evidence
        if same and view.counts:
            raise Conflict(
                f"Sign-off refused: you already signed v{version.number} as '{s.meaning}' on "
                f"{_utc(s.signed_at)} for these same files and evidence, and that signature "
                "still counts. Nothing to sign again."
            )


def revoke(db: Database, actor: Principal, signoff_id: int, reason: str) -> Signoff:
    """Revoke a signature by adding a revocation record that points at it."""
    why = validation.plain_text(reason, "reason for revoking", max_length=1000, required=True)
    with unit_of_work(db, actor) as session:
        target = session.get(Signoff, signoff_id)
        if target is None or target.kind != SIGNATURE:
            raise NotFound(f"There is no signature #{signoff_id} to revoke.")
        version = session.get(ModelVersion, target.version_id)
        assert version is not None
        model = get_model(session, version.model_id)
        current = require(
            session,
            actor,
            Permission.SIGN_OFF,
            team_id=model.team_id,
            what=f"revoke sign-offs of {model.name}",
            model_id=model.id,
        )
        if target.signer_id != actor.user_id:
            _require_work(session, actor, model, "revoke someone else's sign-off")
        already = session.exec(
            select(Signoff).where(Signoff.supersedes_id == target.id, Signoff.kind == REVOCATION)
        ).first()
        if already is not None:
            raise Conflict(
                f"Signature #{signoff_id} was already revoked by {already.printed_name} on "
                f"{_utc(already.signed_at)}."
            )
        user = session.get(User, actor.user_id)
        revocation = Signoff(
            version_id=target.version_id,
            kind=REVOCATION,
            meaning=target.meaning,
            signer_id=actor.user_id,
            printed_name=user.name if user else actor.name,
            role=_signing_role(current, model.team_id),
            artifact_sha256=version.artifact_sha256,
            evidence_sha256=evidence_hash(session, version),
            reason=why,
            supersedes_id=target.id,
        )
        session.add(revocation)
        session.flush()
        audit.record(
            session,
            actor,
            "signoff.revoked",
            object_type="signoff",
            object_id=revocation.id,
            model_id=model.id,
            summary=f"{revocation.printed_name} revoked {target.printed_name}'s "
            f"'{target.meaning}' sign-off of {model.name} v{version.number}: {why}",
            details={"revoked_signoff": target.id, "reason": why},
        )
        return revocation


def signoffs(db: Database, model_name: str, number: int) -> list[SignoffView]:
    with db.read() as session:
        model = get_model(session, model_name)
        return signoff_views(session, get_version(session, model, number))


def remind_expiring(
    db: Database, *, now: datetime | None = None, within_days: int = EXPIRY_NOTICE_DAYS
) -> int:
    """Inbox reminders to model owners for signatures expiring soon; never twice for one."""
    moment = now or utcnow()
    horizon = moment + timedelta(days=within_days)
    created = 0
    with db.write() as session:
        candidates = session.exec(
            select(Signoff).where(
                Signoff.kind == SIGNATURE,
                col(Signoff.expires_at).is_not(None),
                col(Signoff.expires_at) <= horizon,
                col(Signoff.expires_at) > moment,
            )
        ).all()
        for s in candidates:
            created += _remind(session, s, moment)
    return created


def _remind(session: Session, s: Signoff, moment: datetime) -> int:
    version = session.get(ModelVersion, s.version_id)
    if version is None:
        return 0
    views = {v.signoff.id: v for v in signoff_views(session, version, now=moment)}
    if s.id not in views or views[s.id].status != "valid":
        return 0
    model = session.get(MLModel, version.model_id)
    assert model is not None
    link = f"pages/6_Compliance.py?model={model.name}&version={version.number}&signoff={s.id}"
    exists = session.exec(
        select(Notification).where(
            Notification.kind == "signoff_expiring", Notification.link == link
        )
    ).first()
    if exists is not None:
        return 0
    notify(
        session,
        {model.owner_id},
        "signoff_expiring",
        f"'{s.meaning}' sign-off of {model.name} v{version.number} expires on "
        f"{_utc(s.expires_at or moment)[:10]}",
        body=f"Signed by {s.printed_name} on {_utc(s.signed_at)}. Arrange revalidation and a "
        "new sign-off before it expires.",
        link=link,
        model_id=model.id,
        version_id=version.id,
    )
    audit.record(
        session,
        SYSTEM,
        "signoff.expiry_reminded",
        object_type="signoff",
        object_id=s.id,
        model_id=model.id,
        summary=f"Reminded the owner of {model.name} that the '{s.meaning}' sign-off of "
        f"v{version.number} expires on {_utc(s.expires_at or moment)}",
    )
    return 1


# --- the gate, status and the queue ---------------------------------------------------------


def production_gate(session: Session, model: MLModel, version: ModelVersion) -> list[str]:
    """What the approval policy still needs before production, in plain words; [] = open."""
    policy = policy_for(session, model.risk_tier)
    missing: list[str] = []
    templates = {t.key: t for t in stored_templates(session)}
    for key in policy.required_checklists:
        template = templates.get(key)
        if template is None:
            missing.append(
                f"checklist {key!r} is required by the {model.risk_tier}-risk policy but no such "
                "template exists; an admin must add it or change the policy"
            )
            continue
        checklist = _template_checklist(session, version, template)
        open_items = checklist.required_open
        if open_items:
            missing.append(
                f"checklist '{template.name}': {len(open_items)} of {checklist.required_total} "
                "required items not met or marked not applicable with a reason ("
                + ", ".join(i.key for i in open_items)
                + ")"
            )
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
        missing.append(f"sign-off '{meaning}' missing" + (f" ({why})" if why else ""))
    return missing


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
    required_checklists: list[str] = field(default_factory=list)
    required_signoffs: list[str] = field(default_factory=list)


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


def version_compliance(db: Database, model_name: str, number: int) -> VersionCompliance:
    """Status by framework, sign-offs, what expires soon, and what the gate still needs."""
    with db.read() as session:
        model = get_model(session, model_name)
        version = get_version(session, model, number)
        views = signoff_views(session, version)
        policy = policy_for(session, model.risk_tier)
        return VersionCompliance(
            model=model,
            version=version,
            frameworks=[_framework(c) for c in version_checklists(session, model, version)],
            signoffs=views,
            expiring=_expiring(views, utcnow()),
            gate=production_gate(session, model, version),
            evidence_sha256=evidence_hash(session, version),
            required_checklists=list(policy.required_checklists),
            required_signoffs=list(policy.required_signoffs),
        )


@dataclass(frozen=True)
class QueueRow:
    model: str
    number: int
    state: str
    risk_tier: str
    open_items: int
    waiting_for: list[str]


def compliance_queue(db: Database) -> list[QueueRow]:
    """Versions in review or approved whose checklists are incomplete or lack sign-offs."""
    with db.read() as session:
        rows = session.exec(
            select(ModelVersion, MLModel)
            .join(MLModel, col(MLModel.id) == ModelVersion.model_id)
            .where(col(ModelVersion.state).in_(list(QUEUE_STATES)))
            .where(col(MLModel.archived_at).is_(None))
            .order_by(col(MLModel.name), col(ModelVersion.number))
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


def meanings_for(principal: Principal, team_id: int | None) -> tuple[str, ...]:
    return MEANINGS if principal.can(Permission.SIGN_OFF, team_id) else ()


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


# --- the timeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str  # registration, model, review, comment, decision, sign-off, deployment, alert, ...
    version: int | None
    actor: str
    summary: str


_FROM_TABLES = ("comment.", "decision.", "signoff.", "deployment.", "alert.", "retraining.")
_SKIPPED = ("permission.", "checklist.", "checklist_template.")


def _audit_kind(action: str) -> str:
    if action == "version.registered":
        return "registration"
    if action == "version.submitted":
        return "review"
    if action == "pack.exported":
        return "export"
    return action.split(".", 1)[0]


def timeline(db: Database, model_name: str, *, limit: int = 2000) -> list[TimelineEntry]:
    """One chronological list of what happened to a model, oldest first."""
    with db.read() as session:
        model = get_model(session, model_name)
        return model_timeline(session, model, limit=limit)


def model_timeline(session: Session, model: MLModel, *, limit: int = 2000) -> list[TimelineEntry]:
    from core.models import Alert, AuditEvent, Comment, Decision, Deployment, RetrainingTask

    names = _names(session)
    numbers = {
        v.id: v.number
        for v in session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id))
    }
    ids = list(numbers)
    entries: list[TimelineEntry] = []
    for event in session.exec(
        select(AuditEvent)
        .where(AuditEvent.model_id == model.id)
        .order_by(col(AuditEvent.seq).desc())
        .limit(limit)
    ):
        if event.action.startswith(_FROM_TABLES + _SKIPPED):
            continue
        number = (
            numbers.get(int(event.object_id))
            if event.object_type == "version" and event.object_id.isdigit()
            else None
        )
        entries.append(
            TimelineEntry(
                event.created_at,
                _audit_kind(event.action),
                number,
                event.actor_label.split(" <")[0],
                event.summary,
            )
        )
    for c in session.exec(select(Comment).where(col(Comment.version_id).in_(ids))):
        entries.append(
            TimelineEntry(
                c.created_at,
                "comment",
                numbers.get(c.version_id),
                names.get(c.author_id, "?"),
                c.body[:300],
            )
        )
    for d in session.exec(select(Decision).where(col(Decision.version_id).in_(ids))):
        entries.append(
            TimelineEntry(
                d.created_at,
                "decision",
                numbers.get(d.version_id),
                names.get(d.reviewer_id, "?"),
                f"{d.kind.replace('_', ' ')} (round {d.review_round})"
                + (f": {d.reason}" if d.reason else ""),
            )
        )
    for s in session.exec(select(Signoff).where(col(Signoff.version_id).in_(ids))):
        entries.append(_signoff_entry(s, numbers.get(s.version_id)))
    for dep in session.exec(select(Deployment).where(Deployment.model_id == model.id)):
        entries.append(
            TimelineEntry(
                dep.live_from,
                "deployment",
                numbers.get(dep.version_id),
                names.get(dep.actor_id, "?"),
                f"{dep.action} to {dep.environment}" + (f": {dep.reason}" if dep.reason else ""),
            )
        )
    for a in session.exec(select(Alert).where(Alert.model_id == model.id)):
        entries.append(
            TimelineEntry(
                a.created_at,
                "alert",
                numbers.get(a.version_id),
                "monitoring",
                f"{a.environment}: {a.message}",
            )
        )
    for t in session.exec(select(RetrainingTask).where(RetrainingTask.model_id == model.id)):
        entries.append(
            TimelineEntry(
                t.created_at,
                "retraining",
                numbers.get(t.version_id),
                "monitoring",
                f"retraining {t.status}: {t.reason}",
            )
        )
    entries.sort(key=lambda e: (_aware(e.when) or e.when, e.kind))
    return entries


def _signoff_entry(s: Signoff, number: int | None) -> TimelineEntry:
    if s.kind == REVOCATION:
        text = f"revoked sign-off #{s.supersedes_id} '{s.meaning}': {s.reason}"
    else:
        text = f"signed '{s.meaning}' as {s.role.replace('_', ' ')} at {_utc(s.signed_at)}"
        if s.expires_at:
            text += f", expires {_utc(s.expires_at)}"
    return TimelineEntry(s.signed_at, "sign-off", number, s.printed_name, text)


# --- the approval pack ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedPack:
    filename: str
    mime: str
    data: bytes
    fingerprint: str


PACK_FORMATS = {"pdf": "application/pdf", "html": "text/html"}


def export_pack(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    fmt: str,
    *,
    store: ArtifactStore | None = None,
) -> ExportedPack:
    """The approval pack of a version as PDF or HTML; the export and its fingerprint are audited."""
    from core import reports

    kind = (fmt or "").strip().lower().lstrip(".")
    if kind not in PACK_FORMATS:
        raise InvalidInput(f"{fmt!r} is not a pack format; use pdf or html.")
    with read_as(db, actor) as session:
        model = get_model(session, model_name)
        require(
            session,
            actor,
            Permission.EXPORT_REPORTS,
            team_id=model.team_id,
            what=f"of {model.name}",
            model_id=model.id,
        )
    pack = reports.build_pack(db, model_name, number, generated_by=actor.label, store=store)
    data = reports.render_pdf(pack) if kind == "pdf" else reports.render_html(pack).encode()
    with unit_of_work(db, actor) as session:
        model = get_model(session, model_name)
        require(
            session,
            actor,
            Permission.EXPORT_REPORTS,
            team_id=model.team_id,
            what=f"of {model.name}",
            model_id=model.id,
        )
        version = get_version(session, model, number)
        audit.record(
            session,
            actor,
            "pack.exported",
            object_type="version",
            object_id=version.id,
            model_id=model.id,
            summary=f"Approval pack of {model.name} v{number} exported as {kind.upper()} "
            f"(fingerprint {pack.fingerprint[:16]}…)",
            details={"fingerprint": pack.fingerprint, "format": kind, "bytes": len(data)},
        )
    return ExportedPack(
        f"{model_name}-v{number}-approval-pack.{kind}", PACK_FORMATS[kind], data, pack.fingerprint
    )
