"""Production data: predictions and late labels in, the monitoring report and alerts out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, UploadFile
from pydantic import BaseModel

from core.api.deps import Caller, CallerDep
from core.api.idempotency import request_hash, run_once
from core.services import monitoring

router = APIRouter(tags=["monitoring"])


class VoidBody(BaseModel):
    reason: str


class WindowAggregates(BaseModel):
    """Per-window aggregates computed outside Quorum on the version's reference profile."""

    environment: str = "production"
    version: int
    profile_sha256: str
    kind: Literal["predictions", "labels"] = "predictions"
    name: str = "spark job"
    windows: list[dict[str, Any]]


class AlertStatus(BaseModel):
    status: Literal["acknowledged", "resolved"]
    note: str = ""


def _batch(result: monitoring.IngestResult) -> dict[str, Any]:
    return {
        "batch": result.batch_id,
        "model": result.model,
        "environment": result.environment,
        "version": result.version,
        "kind": result.kind,
        "rows": result.n_rows,
        "windows": [day.isoformat() for day in result.windows],
        "alerts": result.alerts,
        "retraining_task": result.retraining_task_id,
        "message": result.message,
    }


def _ingest(
    caller: Caller,
    model: str,
    upload: UploadFile,
    environment: str,
    key: str | None,
    kind: str,
    run: Callable[..., monitoring.IngestResult],
) -> Any:
    data = upload.file.read()
    name = upload.filename or "upload.csv"
    fields = {"environment": environment, "filename": name}
    digest = request_hash(f"{kind}:{model}", fields, {"file": data})

    def work() -> dict[str, Any]:
        result = run(
            caller.db, caller.principal, model, data, env=environment, source="api", filename=name
        )
        return _batch(result)

    return run_once(caller, key, digest, 201, work)


@router.post("/models/{model}/predictions", status_code=201)
def ingest_predictions(
    model: str,
    caller: CallerDep,
    file: Annotated[UploadFile, File(description="CSV or Parquet of predictions")],
    environment: Annotated[str, Form()] = "production",
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    return _ingest(
        caller, model, file, environment, idempotency_key, "predictions", monitoring.ingest
    )


@router.post("/models/{model}/labels", status_code=201)
def ingest_labels(
    model: str,
    caller: CallerDep,
    file: Annotated[UploadFile, File(description="CSV or Parquet of prediction_id, label")],
    environment: Annotated[str, Form()] = "production",
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    return _ingest(
        caller, model, file, environment, idempotency_key, "labels", monitoring.ingest_labels
    )


def _voided(result: monitoring.VoidResult) -> dict[str, Any]:
    return {
        "batch": result.batch_id,
        "kind": result.kind,
        "rows": result.rows,
        "windows": [day.isoformat() for day in result.windows],
        "closed_incidents": result.closed,
        "message": result.message,
    }


@router.post("/batches/{batch_id}/void")
def void_batch(batch_id: int, body: VoidBody, caller: CallerDep) -> dict[str, Any]:
    """Void a prediction or label batch with a reason: its rows leave every window, which is
    recomputed from the rows that remain; the same file may then be sent again. Audited."""
    return _voided(monitoring.void_batch(caller.db, caller.principal, None, batch_id, body.reason))


@router.post("/models/{model}/batches/{batch_id}/void")
def void_model_batch(
    model: str, batch_id: int, body: VoidBody, caller: CallerDep
) -> dict[str, Any]:
    return _voided(monitoring.void_batch(caller.db, caller.principal, model, batch_id, body.reason))


@router.get("/models/{model}/monitoring/reference")
def reference(model: str, caller: CallerDep, environment: str = "production") -> dict[str, Any]:
    """The live version's reference profile and window, for a job that aggregates elsewhere."""
    return monitoring.reference(caller.db, caller.principal, model, environment).to_dict()


@router.post("/models/{model}/aggregates", status_code=201)
def ingest_aggregates(
    model: str,
    body: WindowAggregates,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    """Aggregates built outside Quorum (Spark); the same aggregates are stored once."""
    fields = body.model_dump()
    digest = request_hash(f"aggregates:{model}", fields, {})
    sent = monitoring.Aggregates(
        version=body.version,
        profile_sha256=body.profile_sha256,
        windows=body.windows,
        kind=body.kind,
        name=body.name,
    )

    def work() -> dict[str, Any]:
        result = monitoring.ingest_aggregates(
            caller.db, caller.principal, model, sent, env=body.environment
        )
        return _batch(result)

    return run_once(caller, idempotency_key, digest, 201, work)


@router.get("/models/{model}/monitoring/report")
def report(
    model: str, caller: CallerDep, environment: str = "production", window: date | None = None
) -> dict[str, Any]:
    return monitoring.report(caller.db, caller.principal, model, environment, window)


def _alert(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "metric": a.metric,
        "window_start": a.window,
        "status": a.status,
        "message": a.message,
        "value": a.value,
        "threshold": a.threshold,
        "version": a.version,
    }


@router.get("/models/{model}/alerts")
def alerts(
    model: str,
    caller: CallerDep,
    status: Literal["open", "all"] = "open",
    environment: str | None = None,
) -> list[dict[str, Any]]:
    rows = monitoring.alerts(
        caller.db, caller.principal, model, environment, open_only=status == "open"
    )
    return [_alert(a) for a in rows]


@router.patch("/alerts/{alert_id}")
def set_alert(alert_id: int, body: AlertStatus, caller: CallerDep) -> dict[str, Any]:
    a = monitoring.set_alert_status(caller.db, caller.principal, alert_id, body.status, body.note)
    return {
        "id": a.id,
        "kind": a.kind,
        "metric": a.metric,
        "window_start": a.window_start.date(),
        "status": a.status,
        "message": a.message,
    }
