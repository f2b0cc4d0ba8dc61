"""Services' way into the sandbox: open a version's artifact in its own worker, score a
frame with it, and record every refusal or failure inside the sandbox as an audit event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlmodel import Session, col, select

from core import audit
from core.artifacts import ArtifactStore, default_store
from core.auth import Principal
from core.db import Database
from core.errors import InvalidInput, SandboxFailure
from core.models import AllowedPattern, MLModel, ModelVersion, Task
from core.sandbox.client import CACHE, Predictions, Sandbox


def allowed_patterns(session: Session) -> list[str]:
    """Regular expressions an administrator has allowed in uploaded models, exactly."""
    rows = session.exec(
        select(AllowedPattern.pattern).where(col(AllowedPattern.revoked_at).is_(None))
    )
    return sorted(rows.all())


def record_failure(
    db: Database,
    actor: Principal | None,
    model: MLModel,
    error: InvalidInput,
    *,
    action: str,
    artifact: bytes | None = None,
    sha256: str = "",
    filename: str = "",
) -> None:
    """One audit event for a refusal or a failure inside the sandbox (its own transaction)."""
    failure = isinstance(error, SandboxFailure)
    details: dict[str, Any] = {
        "sha256": sha256 or (hashlib.sha256(artifact).hexdigest() if artifact is not None else ""),
        "size": len(artifact) if artifact is not None else None,
        "filename": filename[:255],
        "action": action,
        "message": error.user_message[:500],
        "details": [str(d)[:300] for d in error.details[:20]],
    }
    if isinstance(error, SandboxFailure):
        details |= {"step": error.step, "kind": error.kind}
    with db.write() as session:
        audit.record(
            session,
            actor,
            "sandbox.failed" if failure else "artifact.refused",
            object_type="model",
            object_id=model.id,
            model_id=model.id,
            summary=f"{'Sandbox failure' if failure else 'Model file refused'} for {model.name} "
            f"({action}): {error.user_message[:300]}",
            details=details,
        )


@contextmanager
def audited(
    db: Database,
    actor: Principal | None,
    model: MLModel,
    action: str,
    *,
    artifact: bytes | None = None,
    sha256: str = "",
    filename: str = "",
) -> Iterator[None]:
    """Run sandbox work; a refusal or sandbox failure is audited, then raised as it was."""
    try:
        yield
    except InvalidInput as error:
        if _from_sandbox(error):
            record_failure(
                db,
                actor,
                model,
                error,
                action=action,
                artifact=artifact,
                sha256=sha256,
                filename=filename,
            )
        raise


def _from_sandbox(error: InvalidInput) -> bool:
    return getattr(error, "from_sandbox", False) or isinstance(error, SandboxFailure)


def version_sandbox(
    version: ModelVersion, patterns: list[str], store: ArtifactStore | None = None
) -> Sandbox:
    """A loaded worker for a stored version (hash-checked), reused between calls."""

    def load() -> Sandbox:
        data = (store or default_store()).get(version.artifact_key, sha256=version.artifact_sha256)
        box = Sandbox.for_artifact(data, filename=version.original_filename or "")
        box.allowed_patterns = patterns
        try:
            box.check()
        except BaseException:
            box.close()
            raise
        return box

    return CACHE.get(f"{version.artifact_sha256}:{','.join(patterns)}", load)


def predict(box: Sandbox, frame: pd.DataFrame, features: list[str], task: str) -> Predictions:
    return box.predict(frame[features], proba=task != Task.REGRESSION)
