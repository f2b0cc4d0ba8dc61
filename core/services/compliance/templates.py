"""Checklist templates: loaded from data/checklists, stored, edited by admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from core import audit
from core.auth import SYSTEM, Permission, Principal, require
from core.checklists import (
    DEFAULT_TEMPLATE_DIR,
    ChecklistTemplate,
    load_templates,
    parse_template,
    parse_template_json,
)
from core.db import Database
from core.errors import Conflict
from core.models import (
    ChecklistTemplateRecord,
    utcnow,
)
from core.services import unit_of_work

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
