"""Model versions: register (multipart), read, compare with the champion, submit for review."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from core import evaluation
from core.api import shapes
from core.api.deps import Caller, CallerDep
from core.api.idempotency import request_hash, run_once
from core.errors import InvalidInput, NotFound
from core.services import compare, model_view, reviews, versions

router = APIRouter(tags=["versions"])


class Submit(BaseModel):
    note: str = ""


def version_json(caller: Caller, model: str, number: int) -> dict[str, Any]:
    detail = model_view.model_detail(
        caller.db, caller.principal, model, caller.settings.environments
    )
    view = next((v for v in detail.versions if v.version.number == number), None)
    if view is None:
        raise NotFound(f"Model {model} has no version {number}.")
    return shapes.version(detail.model.name, view)


def _tags(text: str) -> dict[str, str]:
    if not text.strip():
        return {}
    try:
        tags = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput(
            'The field tags must be a JSON object such as {"data": "2026-q3"}.'
        ) from None
    if not isinstance(tags, dict):
        raise InvalidInput('The field tags must be a JSON object such as {"data": "2026-q3"}.')
    return {str(k): str(v) for k, v in tags.items()}


def split_names(text: str) -> list[str] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise InvalidInput(f"The field submit must be true or false, not {text!r}.")
    return value in ("true", "1", "yes")


@router.post("/models/{model}/versions", status_code=201)
def register_version(
    model: str,
    caller: CallerDep,
    model_file: Annotated[UploadFile, File(description="the .skops, .joblib or .pkl file")],
    eval_file: Annotated[UploadFile, File(description="evaluation data, CSV or Parquet")],
    target: Annotated[str, Form()] = "",
    sensitive: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    code_ref: Annotated[str, Form()] = "",
    tags: Annotated[str, Form(description="a JSON object")] = "",
    submit: Annotated[str, Form(description="true to submit for review at once")] = "false",
    features: Annotated[
        str,
        Form(
            description="comma-separated feature names, in training order, for a model saved without them"
        ),
    ] = "",
    decision_threshold: Annotated[
        str, Form(description="binary classifiers: the positive class's probability to predict it")
    ] = "",
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    model_bytes, eval_bytes = model_file.file.read(), eval_file.file.read()
    fields = {
        "target": target,
        "sensitive": sensitive,
        "notes": notes,
        "code_ref": code_ref,
        "tags": tags,
        "submit": submit,
        "features": features,
        "decision_threshold": decision_threshold,
        "model_filename": model_file.filename,
        "eval_filename": eval_file.filename,
    }
    digest = request_hash(f"register:{model}", fields, {"model": model_bytes, "eval": eval_bytes})

    def work() -> dict[str, Any]:
        upload = versions.VersionUpload(
            model=model,
            model_file=model_bytes,
            model_filename=model_file.filename or "model",
            eval_file=eval_bytes,
            eval_filename=eval_file.filename or "evaluation.csv",
            target=target or None,
            sensitive=sensitive or None,
            notes=notes,
            code_ref=code_ref,
            tags=_tags(tags),
            features=split_names(features),
            decision_threshold=evaluation.check_threshold(decision_threshold),
        )
        then_submit = _flag(submit)
        created = versions.register_version(caller.db, caller.principal, upload, store=caller.store)
        if then_submit:
            reviews.submit_for_review(caller.db, caller.principal, model, created.number)
        return version_json(caller, model, created.number)

    return run_once(caller, idempotency_key, digest, 201, work)


@router.get("/models/{model}/versions/{n}")
def read_version(model: str, n: int, caller: CallerDep) -> dict[str, Any]:
    return version_json(caller, model, n)


@router.get("/models/{model}/versions/{n}/artifact")
def artifact(model: str, n: int, caller: CallerDep) -> Response:
    """The version's stored file, as registered (verified against its SHA-256 first). The
    client loads it in its own process with the same safe loader; the server never does."""
    version, data = versions.artifact_of(caller.db, caller.principal, model, n, store=caller.store)
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{model}-v{n}.{version.artifact_format}"',
            "X-Artifact-SHA256": version.artifact_sha256,
        },
    )


@router.get("/models/{model}/versions/{n}/compare")
def compare_version(model: str, n: int, caller: CallerDep) -> dict[str, Any]:
    result = compare.compare_with_champion(
        caller.db, caller.principal, model, n, store=caller.store
    )
    if result is None:
        return {
            "champion": None,
            "basis": "no version is live in production and this version has no parent",
            "rows": [],
            "summary": ["There is no champion to compare with yet."],
        }
    return {
        "champion": result.champion,
        "basis": result.champion_basis,
        "rows": [
            {
                "metric": row["name"],
                "label": row["label"],
                "candidate": row["candidate"],
                "champion": row["champion"],
                "delta": row["delta"],
                "better": row["better"],
                "sentence": row["sentence"],
            }
            for row in result.rows
        ],
        "summary": [row["sentence"] for row in result.rows]
        + [s for s in (result.goal_candidate, result.goal_champion) if s],
        "features_added": result.features_added,
        "features_removed": result.features_removed,
        "params_changed": result.params_changed,
    }


@router.post("/models/{model}/versions/{n}/submit")
def submit(model: str, n: int, body: Submit, caller: CallerDep) -> dict[str, Any]:
    reviews.submit_for_review(caller.db, caller.principal, model, n, note=body.note)
    return version_json(caller, model, n)
