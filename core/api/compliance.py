"""Compliance: checklists and evidence, electronic sign-offs, and the approval pack."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from core import packs
from core.api.deps import CallerDep
from core.errors import InvalidInput, NotFound
from core.models import Signoff
from core.services import compliance

router = APIRouter(tags=["compliance"])


class ItemEdit(BaseModel):
    status: Literal["open", "met", "not_applicable"] | None = None
    notes: str | None = None
    na_reason: str | None = None
    owner_id: int | None = None
    row_version: int | None = None


class EvidenceLink(BaseModel):
    kind: str
    reference: str


class SignIn(BaseModel):
    meaning: str
    typed_name: str
    role: str = ""
    reason: str = ""
    expires_in_days: int | None = None


class RevokeIn(BaseModel):
    reason: str


def _evidence(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "reference": e.reference,
        "filename": e.filename,
        "document_sha256": e.document_sha256,
        "added_by": e.added_by,
        "created_at": e.created_at,
    }


def _item(i: Any) -> dict[str, Any]:
    return {
        "key": i.key,
        "section": i.section,
        "title": i.title,
        "required": i.required,
        "status": i.status,
        "owner": i.owner,
        "owner_id": i.owner_id,
        "notes": i.notes,
        "na_reason": i.na_reason,
        "row_version": i.row_version,
        "evidence": [_evidence(e) for e in i.evidence],
    }


def _find_item(caller: Any, model: str, n: int, template: str, item: str) -> Any:
    for checklist in compliance.checklists(caller.db, caller.principal, model, n):
        if checklist.key == template:
            for row in checklist.items:
                if row.key == item:
                    return row
            raise NotFound(f"The checklist {template!r} has no item {item!r}.")
    raise NotFound(f"No checklist {template!r} applies to {model} v{n}.")


@router.get("/models/{model}/versions/{n}/checklists")
def checklists(model: str, n: int, caller: CallerDep) -> list[dict[str, Any]]:
    return [
        {
            "template": c.key,
            "name": c.name,
            "version": c.version,
            "complete": c.complete,
            "items": [_item(i) for i in c.items],
        }
        for c in compliance.checklists(caller.db, caller.principal, model, n)
    ]


@router.patch("/models/{model}/versions/{n}/checklists/{template}/{item}")
def edit_item(
    model: str, n: int, template: str, item: str, body: ItemEdit, caller: CallerDep
) -> dict[str, Any]:
    current = _find_item(caller, model, n, template, item)
    compliance.update_item(
        caller.db,
        caller.principal,
        model,
        n,
        template,
        item,
        status=body.status or current.status,
        owner_id=body.owner_id if "owner_id" in body.model_fields_set else current.owner_id,
        notes=current.notes if body.notes is None else body.notes,
        na_reason=current.na_reason if body.na_reason is None else body.na_reason,
        row_version=current.row_version if body.row_version is None else body.row_version,
    )
    return _item(_find_item(caller, model, n, template, item))


@router.post(
    "/models/{model}/versions/{n}/checklists/{template}/{item}/evidence",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": EvidenceLink.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def add_evidence(
    model: str, n: int, template: str, item: str, request: Request, caller: CallerDep
) -> dict[str, Any]:
    """A link (JSON `{"kind", "reference"}`) or a document (multipart `file`)."""
    kind, reference, document, filename = await _evidence_input(request)
    await run_in_threadpool(
        compliance.add_evidence,
        caller.db,
        caller.principal,
        model,
        n,
        template,
        item,
        kind=kind,
        reference=reference,
        document=document,
        filename=filename,
        store=caller.store,
    )
    row = await run_in_threadpool(_find_item, caller, model, n, template, item)
    return _evidence(row.evidence[-1]) if row.evidence else {}


async def _evidence_input(request: Request) -> tuple[str, str, bytes | None, str]:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Send the document as the multipart field 'file'.")
        return (
            "document",
            str(form.get("reference") or ""),
            await upload.read(),
            upload.filename or "",
        )
    try:
        link = EvidenceLink.model_validate_json(await request.body())
    except ValidationError:
        raise InvalidInput(
            'Send evidence as JSON {"kind": ..., "reference": ...} or a multipart file.'
        ) from None
    return link.kind, link.reference, None, ""


def _signoff(view: Any) -> dict[str, Any]:
    s: Signoff = view.signoff if hasattr(view, "signoff") else view
    return {
        "id": s.id,
        "kind": s.kind,
        "meaning": s.meaning,
        "printed_name": s.printed_name,
        "role": s.role,
        "signed_at": s.signed_at,
        "artifact_sha256": s.artifact_sha256,
        "evidence_sha256": s.evidence_sha256,
        "expires_at": s.expires_at,
        "reason": s.reason,
        "supersedes": s.supersedes_id,
        "status": getattr(view, "status", None),
        "problem": getattr(view, "problem", ""),
    }


@router.get("/models/{model}/versions/{n}/signoffs")
def signoffs(model: str, n: int, caller: CallerDep) -> list[dict[str, Any]]:
    return [_signoff(v) for v in compliance.signoffs(caller.db, caller.principal, model, n)]


@router.post("/models/{model}/versions/{n}/signoffs", status_code=201)
def sign(model: str, n: int, body: SignIn, caller: CallerDep) -> dict[str, Any]:
    made = compliance.sign(
        caller.db,
        caller.principal,
        model,
        n,
        body.meaning,
        body.typed_name,
        body.expires_in_days,
        store=caller.store,
    )
    return _signoff(made)


@router.post("/signoffs/{signoff_id}/revoke", status_code=201)
def revoke(signoff_id: int, body: RevokeIn, caller: CallerDep) -> dict[str, Any]:
    return _signoff(compliance.revoke(caller.db, caller.principal, signoff_id, body.reason))


@router.get("/models/{model}/versions/{n}/pack")
def pack(model: str, n: int, caller: CallerDep, format: str = "pdf") -> Response:
    exported = packs.export_pack(caller.db, caller.principal, model, n, format, store=caller.store)
    return Response(
        exported.data,
        media_type=exported.mime,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "X-Pack-Fingerprint": exported.fingerprint,
        },
    )
