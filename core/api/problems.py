"""Errors as RFC 9457 problem details, with the same plain sentence the pages show."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    QuorumError,
)

PROBLEM_TYPE = "https://quorum.dev/problems/"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("quorum.api")

STATUS_OF: list[tuple[type[QuorumError], int]] = [
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (InvalidInput, 422),
]
TITLES = {
    400: "Malformed request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    500: "Server error",
}


def status_for(error: QuorumError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(error, kind)), 400)


def problem(status: int, detail: str, code: str, errors: list[Any] | None = None) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors or [],
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _quorum_error(_request: Request, error: QuorumError) -> JSONResponse:
    return problem(status_for(error), error.user_message, error.code, error.details)


def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    issues = list(error.errors())
    if any(issue.get("type") == "json_invalid" for issue in issues):
        return problem(
            400, "The request body is not valid JSON; send a JSON object.", "malformed_request"
        )
    lines = [_describe(issue) for issue in issues]
    return problem(
        422,
        "The request is incomplete or has a value of the wrong kind: " + "; ".join(lines) + ".",
        "invalid_input",
        lines,
    )


def _describe(issue: dict[str, Any]) -> str:
    where = [str(part) for part in issue.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(where) or "body"
    return f"{field}: {issue.get('msg', 'invalid')}"


def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 404:
        detail = "There is no such address in the API; see /api/v1/docs for the endpoints."
        return problem(404, detail, "not_found")
    if error.status_code == 405:
        return problem(
            405, "This address does not accept that method; see /api/v1/docs.", "method_not_allowed"
        )
    if error.status_code == 400:
        return problem(
            400, "The request body could not be read; check its format.", "malformed_request"
        )
    return problem(error.status_code, str(error.detail), "http_error")


def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error in the API", exc_info=error)
    return problem(
        500,
        "Something went wrong on the server; nothing was changed. Try again, and tell an "
        "admin if it happens again.",
        "server_error",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuorumError, _quorum_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
