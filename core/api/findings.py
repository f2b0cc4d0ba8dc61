"""Findings (raise, answer, close, re-open) and periodic revalidation of live versions."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from core.api.deps import CallerDep
from core.errors import InvalidInput
from core.services import findings, revalidation

router = APIRouter(tags=["findings"])


class FindingIn(BaseModel):
    severity: Literal["low", "medium", "high"]
    text: str
    owner: str  # the owner's e-mail address or user id
    due_on: date
    anchor: str = ""


class AnswerIn(BaseModel):
    note: str
    row_version: int | None = None


class StatusIn(BaseModel):
    note: str = ""
    row_version: int | None = None


class RevalidationIn(BaseModel):
    reason: str = ""


@router.get("/models/{model}/findings")
def model_findings(
    model: str, caller: CallerDep, version: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    rows = findings.findings(caller.db, caller.principal, model, version, status=status)
    return [f.as_dict() for f in rows]


@router.post("/models/{model}/versions/{n}/findings", status_code=201)
def raise_finding(model: str, n: int, body: FindingIn, caller: CallerDep) -> dict[str, Any]:
    made = findings.raise_finding(
        caller.db,
        caller.principal,
        model,
        n,
        severity=body.severity,
        text=body.text,
        owner=body.owner,
        due_on=body.due_on,
        anchor=body.anchor,
    )
    return findings.finding(caller.db, caller.principal, made.id or 0).as_dict()


@router.get("/findings/mine")
def my_findings(caller: CallerDep) -> list[dict[str, Any]]:
    return [f.as_dict() for f in findings.my_findings(caller.db, caller.principal)]


@router.get("/findings/{finding_id}")
def one_finding(finding_id: int, caller: CallerDep) -> dict[str, Any]:
    return findings.finding(caller.db, caller.principal, finding_id).as_dict()


@router.post(
    "/findings/{finding_id}/answer",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": AnswerIn.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "note": {"type": "string"},
                            "file": {"type": "string", "format": "binary"},
                        },
                        "required": ["note"],
                    }
                },
            }
        }
    },
)
async def answer(finding_id: int, request: Request, caller: CallerDep) -> dict[str, Any]:
    """The owner's remediation note (JSON `{"note"}`), or a note with a document (multipart)."""
    note, document, filename, row_version = await _answer_input(request)
    await run_in_threadpool(
        findings.answer_finding,
        caller.db,
        caller.principal,
        finding_id,
        note,
        document=document,
        filename=filename,
        row_version=row_version,
        store=caller.store,
    )
    return findings.finding(caller.db, caller.principal, finding_id).as_dict()


async def _answer_input(request: Request) -> tuple[str, bytes | None, str, int | None]:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is not None and not isinstance(upload, UploadFile):
            raise InvalidInput("Send the evidence document as the multipart field 'file'.")
        data = await upload.read() if upload is not None else None
        return str(form.get("note") or ""), data, upload.filename or "" if upload else "", None
    try:
        body = AnswerIn.model_validate_json(await request.body())
    except ValidationError:
        raise InvalidInput(
            'Send the answer as JSON {"note": ...} or a multipart form with note and file.'
        ) from None
    return body.note, None, "", body.row_version


@router.post("/findings/{finding_id}/close")
def close(finding_id: int, body: StatusIn, caller: CallerDep) -> dict[str, Any]:
    findings.close_finding(
        caller.db, caller.principal, finding_id, body.note, row_version=body.row_version
    )
    return findings.finding(caller.db, caller.principal, finding_id).as_dict()


@router.post("/findings/{finding_id}/reopen")
def reopen(finding_id: int, body: StatusIn, caller: CallerDep) -> dict[str, Any]:
    findings.reopen_finding(
        caller.db, caller.principal, finding_id, body.note, row_version=body.row_version
    )
    return findings.finding(caller.db, caller.principal, finding_id).as_dict()


@router.get("/revalidations")
def overview(caller: CallerDep) -> list[dict[str, Any]]:
    return [r.as_dict() for r in revalidation.revalidation_overview(caller.db, caller.principal)]


@router.get("/models/{model}/versions/{n}/revalidations")
def rounds(model: str, n: int, caller: CallerDep) -> list[dict[str, Any]]:
    return [
        r.as_dict() for r in revalidation.revalidation_rounds(caller.db, caller.principal, model, n)
    ]


@router.post("/models/{model}/versions/{n}/revalidations", status_code=201)
def start(model: str, n: int, body: RevalidationIn, caller: CallerDep) -> dict[str, Any]:
    row = revalidation.start_revalidation(caller.db, caller.principal, model, n, body.reason)
    return {"model": model, "version": n, "round": row.review_round, "status": row.status}
